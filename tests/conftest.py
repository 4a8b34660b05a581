"""Shared fixtures. Every database test runs on SQLite and on a fresh PostgreSQL database.

PostgreSQL: one database per test run (created here, dropped at the end), migrated once;
tables are emptied before each test. Outside CI an unreachable server skips its tests;
with CI=true it fails them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.api.app import create_app
from clipwatch.config import Settings, load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker
from clipwatch.db.migrate import upgrade_database

IN_CI = os.environ.get("CI", "").lower() in ("true", "1")
POSTGRES_ADMIN_URL = os.environ.get(
    "CLIPWATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_SECRET = "test-secret-key-for-cursors"


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
    return load_settings(database_url=database_url, secret_key=TEST_SECRET, var_dir=tmp_path)


async def empty_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("TRUNCATE clip, game, channel RESTART IDENTITY CASCADE"))
        else:
            for table in ("clip", "game", "channel"):
                await conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    await empty_tables(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def client(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process; its lifespan opens its own engine on the same (emptied) database."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http
