"""`kill -9` in the middle of `clipwatch sync --backfill`, then a restart: exact, no re-reads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
from sqlalchemy import text

from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine
from tests.conftest import TEST_SECRET, empty_tables
from tests.processes import CLIPWATCH, twitch_simulator

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


def empty(url: str) -> None:
    async def run() -> None:
        engine = create_engine(load_settings(database_url=url, secret_key=TEST_SECRET))
        try:
            await empty_tables(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def test_kill_9_mid_backfill_then_resume(database_url: str, tmp_path: Path) -> None:
    empty(database_url)
    with twitch_simulator(
        "--seed", "5", "--channel", "bigstreamer:20000:4", "--points-per-minute", "1000000"
    ) as twitch:
        env = twitch.env(database_url, CLIPWATCH_LOG_LEVEL="warning")
        run: dict[str, Any] = {"env": env, "cwd": tmp_path, "capture_output": True, "text": True}
        added = subprocess.run(
            [CLIPWATCH, "channels", "add", "bigstreamer"], timeout=60, check=False, **run
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
        deadline = time.monotonic() + DEADLINE_S
        start: datetime | None = None
        while True:
            rows = query(database_url, "SELECT backfill_done_until FROM channel_sync")
            done = _moment(rows[0][0]) if rows else None
            start = start or done
            if start is not None and done is not None and (done - start).days >= 60:
                break
            assert first.poll() is None, "the backfill ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)  # polling interval while waiting on the condition above
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        killed_at, completed = query(
            database_url, "SELECT backfill_done_until, backfill_completed_at FROM channel_sync"
        )[0]
        killed_at = _moment(killed_at)
        assert killed_at is not None
        assert completed is None
        requests_before = len(httpx.get(f"{twitch.base}/_sim/requests").json()["requests"])

        second = subprocess.run(
            [CLIPWATCH, "sync", "--backfill"], timeout=DEADLINE_S, check=False, **run
        )
        assert second.returncode == 0, second.stderr

        truth = twitch.truth()
        stored = [r[0] for r in query(database_url, "SELECT id FROM clip")]
        assert len(stored) == len(set(stored))
        assert set(stored) == truth
        assert len(truth) == 20_000
        after = httpx.get(f"{twitch.base}/_sim/requests").json()["requests"][requests_before:]
        windows = [parse_qs(q) for path, q in after if path == "/helix/clips" and "started_at" in q]
        assert windows
        for window in windows:
            started = datetime.fromisoformat(window["started_at"][0])
            assert started >= killed_at.replace(tzinfo=started.tzinfo), window
