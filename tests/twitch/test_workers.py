"""Three `clipwatch sync` processes on one PostgreSQL and one Redis share 30 channels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET
from tests.conftest import TEST_SECRET, free_port
from tests.twitch.test_kill_resume import _empty, query

CLIPWATCH = str(Path(sys.executable).parent / "clipwatch")
DEADLINE_S = 240.0
CHANNELS = 30
POINTS_PER_MINUTE = 400  # small enough that the three run into it together


def test_three_workers_share_channels_and_budget(
    postgresql_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    _empty(postgresql_url)
    port = free_port()
    specs = [arg for i in range(CHANNELS) for arg in ("--channel", f"chan{i:02d}:40")]
    sim = subprocess.Popen(
        [
            CLIPWATCH,
            "simulate",
            "twitch",
            "--port",
            str(port),
            "--seed",
            "11",
            "--years",
            "0.1",
            "--points-per-minute",
            str(POINTS_PER_MINUTE),
            *specs,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CLIPWATCH_DATABASE_URL": postgresql_url,
        "CLIPWATCH_REDIS_URL": redis_url,
        "CLIPWATCH_REDIS_KEY_PREFIX": redis_prefix,
        "CLIPWATCH_SECRET_KEY": TEST_SECRET,
        "CLIPWATCH_TWITCH_CLIENT_ID": CLIENT_ID,
        "CLIPWATCH_TWITCH_CLIENT_SECRET": CLIENT_SECRET,
        "CLIPWATCH_TWITCH_API_URL": f"{base}/helix",
        "CLIPWATCH_TWITCH_AUTH_URL": f"{base}/oauth2",
        "CLIPWATCH_TWITCH_POINTS_PER_MINUTE": str(POINTS_PER_MINUTE),
        "CLIPWATCH_LOG_FORMAT": "json",
        "CLIPWATCH_LOG_LEVEL": "info",
    }
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                if httpx.get(f"{base}/_sim/channels", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert sim.poll() is None, "simulator exited"
            assert time.monotonic() < deadline
            time.sleep(0.05)  # polling interval while waiting on the condition above
        logins = [f"chan{i:02d}" for i in range(CHANNELS)]
        added = subprocess.run(
            [CLIPWATCH, "channels", "add", *logins],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert added.returncode == 0, added.stderr

        workers = [
            subprocess.Popen(
                [CLIPWATCH, "sync", "--backfill"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [w.communicate(timeout=DEADLINE_S) for w in workers]
        for worker, (_, err) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, err[-2000:]

        # No channel in two workers' hands at once.
        steps: dict[str, list[tuple[datetime, datetime, int]]] = {}
        for number, (_, err) in enumerate(outputs):
            for line in err.splitlines():
                if '"sync_channel_done"' in line:
                    event = json.loads(line)
                    steps.setdefault(event["channel_id"], []).append(
                        (
                            datetime.fromisoformat(event["started"]),
                            datetime.fromisoformat(event["ended"]),
                            number,
                        )
                    )
        assert len(steps) == CHANNELS
        assert len({n for spans in steps.values() for *_, n in spans}) == 3  # all three worked
        for spans in steps.values():
            for a in spans:
                for b in spans:
                    if a[2] != b[2]:
                        assert a[1] <= b[0] or b[1] <= a[0], (a, b)

        # Every clip stored once; at most the one 429 that revealed the limit.
        truth: set[str] = set()
        for channel in httpx.get(f"{base}/_sim/channels").json()["data"]:
            ids = httpx.get(f"{base}/_sim/truth", params={"broadcaster_id": channel["id"]})
            truth |= set(ids.json()["ids"])
        stored = [row[0] for row in query(postgresql_url, "SELECT id FROM clip")]
        assert len(stored) == len(set(stored))
        assert set(stored) == truth
        requests = httpx.get(f"{base}/_sim/requests").json()
        assert len(requests["requests"]) > POINTS_PER_MINUTE  # the budget was really in play
        assert requests["rate_limited"] <= 1
    finally:
        sim.terminate()
        sim.wait(timeout=15)


def test_worker_command_runs_passes(sqlite_url: str, tmp_path: Path) -> None:
    _empty(sqlite_url)
    port = free_port()
    sim = subprocess.Popen(
        [
            CLIPWATCH,
            "simulate",
            "twitch",
            "--port",
            str(port),
            "--seed",
            "4",
            "--years",
            "0.2",
            "--channel",
            "solo:300:1",
            "--points-per-minute",
            "100000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CLIPWATCH_DATABASE_URL": sqlite_url,
        "CLIPWATCH_SECRET_KEY": TEST_SECRET,
        "CLIPWATCH_TWITCH_CLIENT_ID": CLIENT_ID,
        "CLIPWATCH_TWITCH_CLIENT_SECRET": CLIENT_SECRET,
        "CLIPWATCH_TWITCH_API_URL": f"{base}/helix",
        "CLIPWATCH_TWITCH_AUTH_URL": f"{base}/oauth2",
        "CLIPWATCH_LOG_FORMAT": "json",
    }
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                if httpx.get(f"{base}/_sim/channels", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert sim.poll() is None, "simulator exited"
            assert time.monotonic() < deadline
            time.sleep(0.05)  # polling interval while waiting on the condition above
        run = {"env": env, "cwd": tmp_path, "capture_output": True, "text": True, "timeout": 120}
        assert (
            subprocess.run([CLIPWATCH, "channels", "add", "solo"], check=False, **run).returncode
            == 0
        )
        worker = subprocess.run(
            [CLIPWATCH, "worker", "--passes", "2", "--interval", "10"], check=False, **run
        )
        assert worker.returncode == 0, worker.stderr[-2000:]
        assert worker.stderr.count('"sync_pass_done"') == 2
        channel_id = httpx.get(f"{base}/_sim/channels").json()["data"][0]["id"]
        truth = set(
            httpx.get(f"{base}/_sim/truth", params={"broadcaster_id": channel_id}).json()["ids"]
        )
        assert {row[0] for row in query(sqlite_url, "SELECT id FROM clip")} == truth
        listed = subprocess.run([CLIPWATCH, "channels", "list"], check=False, **run)
        assert "complete" in listed.stdout
    finally:
        sim.terminate()
        sim.wait(timeout=15)
