"""`clipwatch sync` and `clipwatch worker` processes sharing channels and the Twitch budget."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.processes import CLIPWATCH, twitch_simulator
from tests.twitch.test_kill_resume import empty, query

DEADLINE_S = 240.0
CHANNELS = 30
POINTS_PER_MINUTE = 200  # small enough that the three run into it together


@pytest.mark.slow
def test_three_workers_share_channels_and_budget(
    postgresql_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    empty(postgresql_url)
    specs = [arg for i in range(CHANNELS) for arg in ("--channel", f"chan{i:02d}:40")]
    with twitch_simulator(
        "--seed", "11", "--years", "0.1", "--points-per-minute", str(POINTS_PER_MINUTE), *specs
    ) as twitch:
        env = twitch.env(
            postgresql_url,
            CLIPWATCH_REDIS_URL=redis_url,
            CLIPWATCH_REDIS_KEY_PREFIX=redis_prefix,
            CLIPWATCH_TWITCH_POINTS_PER_MINUTE=str(POINTS_PER_MINUTE),
            CLIPWATCH_LOG_FORMAT="json",
            CLIPWATCH_LOG_LEVEL="info",
        )
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
        stored = [row[0] for row in query(postgresql_url, "SELECT id FROM clip")]
        assert len(stored) == len(set(stored))
        assert set(stored) == twitch.truth()
        requests = httpx.get(f"{twitch.base}/_sim/requests").json()
        made = len(requests["requests"])
        assert made > POINTS_PER_MINUTE, made  # the budget was really in play
        assert requests["rate_limited"] <= 1


def test_worker_command_runs_passes(sqlite_url: str, tmp_path: Path) -> None:
    empty(sqlite_url)
    with twitch_simulator(
        "--seed", "4", "--years", "0.2", "--channel", "solo:300:1", "--points-per-minute", "100000"
    ) as twitch:
        env = twitch.env(sqlite_url, CLIPWATCH_LOG_FORMAT="json")
        run: dict[str, Any] = {
            "env": env,
            "cwd": tmp_path,
            "capture_output": True,
            "text": True,
            "timeout": 120,
        }
        assert (
            subprocess.run([CLIPWATCH, "channels", "add", "solo"], check=False, **run).returncode
            == 0
        )
        worker = subprocess.run(
            [CLIPWATCH, "worker", "--passes", "2", "--interval", "10"], check=False, **run
        )
        assert worker.returncode == 0, worker.stderr[-2000:]
        assert worker.stderr.count('"sync_pass_done"') == 2
        assert {row[0] for row in query(sqlite_url, "SELECT id FROM clip")} == twitch.truth()
        listed = subprocess.run([CLIPWATCH, "channels", "list"], check=False, **run)
        assert "complete" in listed.stdout
