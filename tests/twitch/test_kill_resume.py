"""`kill -9` in the middle of `clipwatch sync --backfill`, then a restart: exact, no re-reads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from sqlalchemy import text

from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET
from tests.conftest import TEST_SECRET, empty_tables, free_port

CLIPWATCH = str(Path(sys.executable).parent / "clipwatch")
DEADLINE_S = 120.0


async def _query(url: str, sql: str) -> list[Any]:
    engine = create_engine(load_settings(database_url=url, secret_key=TEST_SECRET))
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql))).all())
    finally:
        await engine.dispose()


def query(url: str, sql: str) -> list[Any]:
    return asyncio.run(_query(url, sql))


def _empty(url: str) -> None:
    async def run() -> None:
        engine = create_engine(load_settings(database_url=url, secret_key=TEST_SECRET))
        try:
            await empty_tables(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_kill_9_mid_backfill_then_resume(database_url: str, tmp_path: Path) -> None:
    _empty(database_url)
    port = free_port()
    sim = subprocess.Popen(
        [
            CLIPWATCH,
            "simulate",
            "twitch",
            "--port",
            str(port),
            "--seed",
            "5",
            "--channel",
            "bigstreamer:20000:4",
            "--points-per-minute",
            "1000000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CLIPWATCH_DATABASE_URL": database_url,
        "CLIPWATCH_SECRET_KEY": TEST_SECRET,
        "CLIPWATCH_TWITCH_CLIENT_ID": CLIENT_ID,
        "CLIPWATCH_TWITCH_CLIENT_SECRET": CLIENT_SECRET,
        "CLIPWATCH_TWITCH_API_URL": f"{base}/helix",
        "CLIPWATCH_TWITCH_AUTH_URL": f"{base}/oauth2",
        "CLIPWATCH_LOG_LEVEL": "warning",
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
        channel_id = httpx.get(f"{base}/_sim/channels").json()["data"][0]["id"]
        added = subprocess.run(
            [CLIPWATCH, "channels", "add", "bigstreamer"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert added.returncode == 0, added.stderr

        first = subprocess.Popen(
            [CLIPWATCH, "sync", "--backfill"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Wait until some windows are stored, then kill it without warning.
        start: datetime | None = None
        while True:
            rows = query(database_url, "SELECT backfill_done_until FROM channel_sync")
            done = rows[0][0] if rows else None
            if isinstance(done, str):
                done = datetime.fromisoformat(done)
            if done is not None and start is None:
                start = done
            if start is not None and done is not None and (done - start).days >= 60:
                break
            assert first.poll() is None, "the backfill ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)  # polling interval while waiting on the condition above
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        rows = query(
            database_url, "SELECT backfill_done_until, backfill_completed_at FROM channel_sync"
        )
        killed_at, completed = rows[0]
        if isinstance(killed_at, str):
            killed_at = datetime.fromisoformat(killed_at)
        assert completed is None
        requests_before = len(httpx.get(f"{base}/_sim/requests").json()["requests"])

        second = subprocess.run(
            [CLIPWATCH, "sync", "--backfill"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
            check=False,
        )
        assert second.returncode == 0, second.stderr

        truth = set(
            httpx.get(f"{base}/_sim/truth", params={"broadcaster_id": channel_id}).json()["ids"]
        )
        stored = [r[0] for r in query(database_url, "SELECT id FROM clip")]
        assert len(stored) == len(set(stored))
        assert set(stored) == truth
        assert len(truth) == 20_000
        after = httpx.get(f"{base}/_sim/requests").json()["requests"][requests_before:]
        windows = [parse_qs(q) for path, q in after if path == "/helix/clips" and "started_at" in q]
        assert windows
        for window in windows:
            started = datetime.fromisoformat(window["started_at"][0])
            assert started >= killed_at.replace(tzinfo=started.tzinfo), window
    finally:
        sim.terminate()
        sim.wait(timeout=15)
