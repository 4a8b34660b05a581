"""Engine construction and the one transaction scope that commits."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import structlog
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool, Pool
from sqlalchemy.util.concurrency import await_, in_greenlet

from clipwatch.config import Settings
from clipwatch.db.search import row_matches
from clipwatch.monitoring.metrics import track_engine

log = structlog.get_logger("clipwatch.db")


def create_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    """An async engine for the configured database, tuned per dialect."""
    url = url or settings.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            poolclass=NullPool if database in ("", ":memory:") else None,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
        )
        busy_ms = settings.sqlite_busy_timeout_ms

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            cursor.execute("PRAGMA cache_size=-131072")  # 128 MiB page cache per connection
            cursor.execute("PRAGMA mmap_size=1073741824")
            cursor.close()
            dbapi_conn.create_function("cw_match", 4, row_matches, deterministic=True)

        event.listen(engine.sync_engine, "invalidate", _roll_back_before_closing)
        if settings.metrics_enabled:
            track_engine(engine)
        return engine
    # force_custom_plan: asyncpg prepares every statement, and from its 6th run PostgreSQL may
    # switch to a generic plan that ignores the parameters' values; for the search that plan
    # ANDs a whole index (views 0..100: 993k of 1M rows) with the text index, 145 ms instead of
    # the custom plan's 7 ms (bench/web.py, docs/search.md). Planning each run costs far less.
    server_settings = {
        "application_name": "clipwatch",
        "jit": "off",
        "plan_cache_mode": "force_custom_plan",
    }
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        connect_args={
            "server_settings": server_settings,
            "timeout": settings.db_pool_timeout,
        },
    )
    event.listen(engine.sync_engine.pool, "checkin", _note_idle)
    event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle)
    if settings.metrics_enabled:
        track_engine(engine)
    return engine


# A pooled connection idle this long is pinged before use (a round trip, and asyncpg's ping is
# three: BEGIN, `;`, ROLLBACK). SQLAlchemy's `pool_pre_ping` pinged on every checkout: on a busy
# serve that was the most round trips of an uncached search (docs/search.md). A connection used
# less than this ago needs none: a database that went away since then failed the statement that
# used it, and that disconnect recycled the whole pool; restarting PostgreSQL takes longer.
PING_AFTER_IDLE_S = 1.0
_IDLE_SINCE = "clipwatch.idle_since"


def _note_idle(_dbapi_conn: Any, record: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """A connection idle for PING_AFTER_IDLE_S or more is pinged; a dead one is replaced
    (DisconnectionError makes the pool connect afresh, up to three times)."""
    idle_since = record.info.get(_IDLE_SINCE)
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return  # new, or used a moment ago
    try:
        dbapi_conn.ping()
    except Exception as exc:  # any failure: this connection is not to be trusted
        raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc


def _roll_back_before_closing(dbapi_conn: Any, _record: Any, _exception: Any) -> None:
    """A SQLite connection SQLAlchemy throws away (a task cancelled mid-statement) rolls back
    first, on its own thread, before SQLAlchemy closes it.

    Closed with its transaction open, sqlite3 leaves a "zombie" that keeps the transaction and
    its write lock for as long as a cursor of it lives, and the cancel's traceback keeps one:
    every other write then waited out the busy timeout. The worker's own clean-up after a
    cancelled sync step (a `finally` that releases the channel's lease) waited for itself,
    and `serve` took 35 s to stop after a SIGTERM during a backfill (a CI run's time-out).
    """
    if not in_greenlet():  # the garbage collector's clean-up: nothing may be awaited there
        return
    try:
        await_(asyncio.shield(dbapi_conn.driver_connection.rollback()))
    except Exception as exc:  # closed regardless; the rollback was only courtesy
        log.warning("sqlite_rollback_before_close_failed", error=f"{type(exc).__name__}: {exc}")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def create_reading_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for requests that only read (`api.deps.reads_only`), from the same pool.

    On PostgreSQL they run in autocommit: no BEGIN and COMMIT around an uncached search's one
    or two statements, two of its four round trips (+9 % uncached searches/s at 1M clips,
    docs/search.md). Nothing is lost: at READ COMMITTED each statement takes its own snapshot
    inside a transaction too. For asyncpg the setting is the driver's alone (no round trip to
    set or reset it). A write made through one (a sign-in's "last used" touch) commits by
    itself. SQLite keeps its transactions: there a BEGIN is not a round trip.
    """
    if engine.dialect.name != "postgresql":
        return create_sessionmaker(engine)
    return create_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))


@asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: commits when the block ends cleanly, rolls back otherwise.

    This is the only place in clipwatch that commits; services flush at most. After the
    commit, the cache attached to the engine learns what the transaction changed (`touch`).
    """
    async with sessionmaker() as session:
        async with session.begin():
            yield session
        touched: set[str] | None = session.info.pop(_TOUCHED, None)
        if touched:
            cache = _caches.get(session.bind.pool)  # type: ignore[union-attr]
            if cache is not None:
                await cache.bump(touched)


class Invalidates(Protocol):
    async def bump(self, deps: Iterable[str]) -> None: ...


_TOUCHED = "clipwatch.cache.touched"
# Keyed by the pool: an engine and its variants with other options (the reading sessions')
# share one.
_caches: weakref.WeakKeyDictionary[Pool, Invalidates] = weakref.WeakKeyDictionary()


def attach_cache(engine: AsyncEngine, cache: Invalidates) -> None:
    """Writes committed through `engine`, or a variant of it with other execution options,
    bump generations in `cache` (clipwatch.cache)."""
    _caches[engine.pool] = cache


def touch(session: AsyncSession, *deps: str) -> None:
    """Note that this transaction changes what cached answers depending on `deps` show:
    `clips`, `catalog`, `sync`, or `ch:<channel id>` (docs/cache.md)."""
    session.info.setdefault(_TOUCHED, set()).update(deps)
