"""Pooled PostgreSQL connections are pinged only after PING_AFTER_IDLE_S idle (db/engine.py),
not on every checkout: a PostgreSQL of the test's own (tests/scaled/cluster.py) restarted
under a pooled connection.

- Idle past the bound, the dead connection is found by its ping and replaced: the first
  statement after the restart succeeds (what `pool_pre_ping` gave).
- Used a moment ago, it is not pinged: the first statement meets the dead connection and fails
  as "database unavailable" (a 503 in the API); that disconnect recycles the pool, so the next
  one succeeds. A restart takes longer than the bound, so this needs a restart faster than
  any seen; the test lengthens the bound instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from clipwatch.api.errors import database_unavailable
from clipwatch.config import load_settings
from clipwatch.db import engine as engine_module
from clipwatch.db.engine import PING_AFTER_IDLE_S, create_engine
from tests.conftest import TEST_SECRET
from tests.scaled.cluster import Postgres


@pytest.fixture
async def own_postgres() -> AsyncIterator[tuple[Postgres, AsyncEngine]]:
    pg = Postgres()
    try:
        await asyncio.to_thread(pg.init)
        engine = create_engine(
            load_settings(database_url=pg.url, secret_key=TEST_SECRET, db_pool_size=1)
        )
        try:
            yield pg, engine
        finally:
            await engine.dispose()
    finally:
        await asyncio.to_thread(pg.destroy)


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_an_idle_connection_is_pinged_and_replaced_after_a_restart(
    own_postgres: tuple[Postgres, AsyncEngine],
) -> None:
    pg, engine = own_postgres
    before = await _backend_pid(engine)
    checked_in = time.monotonic()
    await asyncio.to_thread(pg.restart)
    idle = time.monotonic() - checked_in
    if idle < PING_AFTER_IDLE_S:  # the idle time under test, not a wait for a result
        await asyncio.sleep(PING_AFTER_IDLE_S - idle)
    after = await _backend_pid(engine)  # no error: the ping found the dead connection
    assert after != before


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    own_postgres: tuple[Postgres, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    pg, engine = own_postgres
    # A restart faster than the bound: here, a bound longer than the restart.
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 3600.0)
    before = await _backend_pid(engine)
    await asyncio.to_thread(pg.restart)
    with pytest.raises(DBAPIError) as failed:
        await _backend_pid(engine)
    assert database_unavailable(failed.value)
    after = await _backend_pid(engine)  # the disconnect recycled the pool
    assert after != before
