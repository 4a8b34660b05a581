"""A task cancelled in the middle of a statement leaves no lock behind (db/engine.py).

SQLAlchemy throws such a connection away. On SQLite, closed with its transaction open, it
became a "zombie" that kept the write lock while the cancel's traceback lived: the cancelled
task's own clean-up (a `finally` that writes, as the sync step's lease release does) then
waited out the busy timeout, and so did every other writer. `serve` took 35 s to stop.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from clipwatch.config import Settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope

BUSY_MS = 1500


@pytest.fixture
async def engine(settings: Settings, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    quick = settings.model_copy(update={"sqlite_busy_timeout_ms": BUSY_MS})
    url = None
    if settings.database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'probe.db'}"
    engine = create_engine(quick, url=url)
    try:
        yield engine
    finally:
        await engine.dispose()


class Gate:
    """A statement that blocks on the database's side until the test lets it go."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def hold(self) -> int:
        self.started.set()
        self.release.wait(10)
        return 1


async def test_a_write_in_the_cancelled_tasks_finally_is_not_blocked(
    engine: AsyncEngine,
) -> None:
    sessionmaker = create_sessionmaker(engine)
    gate = Gate()
    sqlite = engine.dialect.name == "sqlite"
    key = random.randrange(1, 2**31)
    if sqlite:

        @event.listens_for(engine.sync_engine, "connect")
        def _gate(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.create_function("cw_gate", 0, gate.hold)

        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE probe (n INTEGER)"))
        take_lock = text("INSERT INTO probe VALUES (1)")
        held = text("SELECT cw_gate()")
        write = text("INSERT INTO probe VALUES (2) RETURNING n")
    else:
        take_lock = text(f"SELECT pg_advisory_xact_lock({key})")
        held = text("SELECT pg_sleep(10)")
        write = text(f"SELECT pg_try_advisory_xact_lock({key})")

    outcome: dict[str, Any] = {}

    async def step() -> None:
        try:
            async with session_scope(sessionmaker) as session:
                await session.execute(take_lock)
                if not sqlite:
                    gate.started.set()
                await session.execute(held)
        finally:  # as sync_step releases its lease after a cancelled step
            began = time.monotonic()
            try:
                async with session_scope(sessionmaker) as session:
                    outcome["value"] = (await session.execute(write)).scalar()
            except Exception as exc:
                outcome["error"] = repr(exc)
            outcome["seconds"] = time.monotonic() - began

    task = asyncio.create_task(step())
    assert await asyncio.to_thread(gate.started.wait, 10), "the held statement never started"
    task.cancel()
    gate.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "error" not in outcome, outcome
    assert outcome["seconds"] < BUSY_MS / 1000 / 2, outcome
    # Written (SQLite); the cancelled transaction's lock was let go (PostgreSQL).
    assert outcome["value"] == (2 if sqlite else True)
