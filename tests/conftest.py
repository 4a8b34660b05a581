"""Shared fixtures. Every database test runs on SQLite and on a fresh PostgreSQL database.

PostgreSQL: one database per test run (created here, dropped at the end), migrated once;
tables are emptied before each test. Outside CI an unreachable server skips its tests;
with CI=true it fails them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.api.app import create_app
from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings, load_settings
from clipwatch.db.engine import attach_cache, create_engine, create_sessionmaker
from clipwatch.db.migrate import upgrade_database

IN_CI = os.environ.get("CI", "").lower() in ("true", "1")
POSTGRES_ADMIN_URL = os.environ.get(
    "CLIPWATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_SECRET = "test-secret-key-for-cursors"
TABLES = (
    "clip_tag",
    "tag",
    "collection_item",
    "collection",
    "audit_entry",
    "hidden_clip",
    "favourite",
    "forum_thread",
    "discord_link_code",
    "discord_guild_link",
    "eventsub_subscription",
    "twitch_user_token",
    "stream",
    "channel_live",
    "incident_note",
    "incident",
    "alert_state",
    "alert_group",
    "lease",
    "error_group",
    "worker_task",
    "clip_absence",
    "clip_quarantine",
    "delivery",
    "notification_route",
    "channel_sync",
    "user_preferences",
    "user_session",
    "api_token",
    "app_user",
    "clip",
    "game",
    "channel",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `slow` (a minute or more) first: pytest-xdist hands out tests in this
    order, so the long ones start at once and the workers end together instead of one
    running a long test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable


def unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is unreachable, and CI must not skip it")
    pytest.skip(f"{what} is unreachable")


async def _migrate(url: str) -> None:
    engine = create_engine(load_settings(database_url=url, secret_key=TEST_SECRET))
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    name = f"clipwatch_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL} ({exc})")
    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    rendered = url.render_as_string(hide_password=False)
    asyncio.run(_migrate(rendered))
    yield rendered
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "clipwatch.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(_migrate(url))
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # No route's webhook is fetched at save unless a test turns it on (its simulator's URL).
    return load_settings(
        database_url=database_url, secret_key=TEST_SECRET, var_dir=tmp_path, webhook_check=False
    )


async def empty_tables(engine: AsyncEngine, *, truncate: bool = False) -> None:
    """Every table emptied, ids starting again at 1. On PostgreSQL, DELETE (children first)
    and the sequences set back: a TRUNCATE of the 33 tables costs ~80 ms of the server's
    work (new files for each table and index), DELETE of what a test left ~8 ms, and the
    suite empties them before every test and hypothesis example. `truncate` is for tests
    of the planner: new storage, no dead rows behind."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            if truncate:
                await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
                return
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            sequences = await raw.fetch(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
            )
            resets = ", ".join(f"setval('{row[0]}', 1, false)" for row in sequences)
            # The deletes and resets in one round trip (asyncpg's simple protocol runs the
            # statements in order).
            await raw.execute(
                "".join(f"DELETE FROM {table};" for table in TABLES)
                + (f"SELECT {resets};" if resets else "")
            )
        else:
            for table in TABLES:
                await conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
async def pg_sessions(postgresql_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the PostgreSQL test database (emptied), for tests of processes that share
    it whatever `database_url` the test runs with."""
    engine = create_engine(load_settings(database_url=postgresql_url, secret_key=TEST_SECRET))
    await empty_tables(engine)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def cache() -> CacheManager:
    """The process's cache (no Redis), shared by the test's engine and the app: a write
    in the test invalidates the app's answers as the embedded worker's writes do."""
    return CacheManager()


@pytest.fixture
async def engine(settings: Settings, cache: CacheManager) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    attach_cache(engine, cache)
    await empty_tables(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@asynccontextmanager
async def app_client(
    settings: Settings, *, client_ip: str = "127.0.0.1", cache: CacheManager | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process; its lifespan opens its own engine (and rate limiter, and cache
    unless given one)."""
    app = create_app(settings, cache=cache)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.fixture
async def client(
    settings: Settings, engine: AsyncEngine, cache: CacheManager
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process on the same (emptied) database and cache as `engine`."""
    async with app_client(settings, cache=cache) as http:
        yield http


# --- Redis ------------------------------------------------------------------------------------

REDIS_URL = os.environ.get("CLIPWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVER_START_S = 10.0


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _pings(REDIS_URL):
        unavailable(f"Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"cwtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"*{prefix}*"):
        client.delete(key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A redis-server of the test's own, on a spare port, stopped by its handle."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server (the binary)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + SERVER_START_S
        while not _pings(self.url):
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)  # polling interval while waiting on the condition above

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
