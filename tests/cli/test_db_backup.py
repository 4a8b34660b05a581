"""`clipwatch db backup|restore` on both databases: a round trip keeps every row, a backup of a
database being written is one committed moment, and restore refuses what it must."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest
from click.testing import Result
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from clipwatch.accounts import service
from clipwatch.accounts.secrets import seal
from clipwatch.cli.main import app
from clipwatch.clips.importer import parse_line, store_batch
from clipwatch.config import load_settings
from clipwatch.db import backup as backups
from clipwatch.db.engine import create_engine, session_scope
from clipwatch.db.models import NotificationRoute
from tests.conftest import POSTGRES_ADMIN_URL, TABLES, TEST_SECRET, _migrate
from tests.factories import helix_clip

CLIPS = 30
WRITER_BATCH = 10  # rows per committed transaction of the concurrent writer
WRITER_DEADLINE_S = 20.0


async def clipwatch(*args: str) -> Result:
    """The CLI in-process, in a thread: its commands run their own event loop."""
    env = {"CLIPWATCH_SECRET_KEY": TEST_SECRET, "COLUMNS": "200"}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def populate(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Clips, a user with a token, a route, and the route's deliveries of the clips."""
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, "backup-owner", admin=True)
        await service.create_token(session, user, name="ci", scopes=frozenset({"read", "write"}))
        session.add(
            NotificationRoute(
                user_id=user.id,
                name="clips",
                webhook_id="123456789012345678",
                webhook_token_sealed=seal(TEST_SECRET.encode(), "webhook-token-value"),
                filters={},
                template={"name": "card"},
                delay_seconds=0,
                batching=True,
                enabled=True,
            )
        )
    recent = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    clips = [
        helix_clip(id=f"Backup-{i}", created_at=recent, title=f"ünïcode {i}") for i in range(CLIPS)
    ]
    rows = [parse_line(orjson.dumps(c)) for c in clips]
    async with session_scope(sessionmaker) as session:
        await store_batch(session, rows, notify=True)


async def contents(engine: AsyncEngine) -> dict[str, list[str]]:
    """Every table's rows (sorted, as text), alembic_version included."""
    tables: dict[str, list[str]] = {}
    async with engine.connect() as conn:
        for table in (*TABLES, "alembic_version"):
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
            tables[table] = sorted(repr(tuple(row)) for row in rows)
    return tables


async def create_database() -> str:
    name = f"clipwatch_test_restore_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def target_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the test's own to restore into (dropped after it)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'restored.db'}"
        return
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


async def execute(url: str, *statements: str) -> None:
    engine = create_engine(load_settings(database_url=url, secret_key=TEST_SECRET))
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def test_round_trip_keeps_every_row_and_refuses_what_it_must(
    database_url: str,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    target_url: str,
    tmp_path: Path,
) -> None:
    await populate(sessionmaker)
    before = await contents(engine)
    assert len(before["clip"]) == CLIPS
    assert len(before["delivery"]) == CLIPS
    assert before["api_token"]
    assert before["notification_route"]
    assert before["app_user"]

    postgres = not database_url.startswith("sqlite")
    file = tmp_path / ("backup.dump" if postgres else "backup.db")
    backed_up = await clipwatch("--database", database_url, "db", "backup", str(file))
    assert backed_up.exit_code == 0, backed_up.output
    assert "backed up" in backed_up.stdout

    # An existing file is kept unless --force (used below).
    made = file.read_bytes()
    again = await clipwatch("--database", database_url, "db", "backup", str(file))
    assert again.exit_code == 1
    assert again.stderr.strip() == f"error: {file} exists; --force replaces it"
    assert file.read_bytes() == made

    # What is not a clipwatch backup, or is one of a newer schema, is refused in one line.
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a database at all\n" * 10)
    foreign = tmp_path / ("foreign.dump" if postgres else "foreign.db")
    if postgres:  # the empty target database's own dump: no alembic_version in it
        backups.backup_postgresql(backups.PgTarget.from_url(target_url), foreign)
    else:
        with sqlite3.connect(foreign) as db:
            db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    for bad, message in (
        (junk, "is not a "),
        (foreign, "is not a clipwatch "),
        (tmp_path / "missing", "no backup at"),
    ):
        refused = await clipwatch("--database", target_url, "db", "restore", str(bad))
        assert refused.exit_code == 1, refused.output
        assert message in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert "Traceback" not in refused.output

    restored = await clipwatch("--database", target_url, "db", "restore", str(file))
    assert restored.exit_code == 0, restored.output
    target = create_engine(load_settings(database_url=target_url, secret_key=TEST_SECRET))
    try:
        assert await contents(target) == before
    finally:
        await target.dispose()

    # A backup of a schema this code does not know (made by a newer clipwatch) is refused;
    # it is made with --force over the first backup.
    await execute(target_url, "UPDATE alembic_version SET version_num = '9999_newer'")
    newer = await clipwatch("--database", target_url, "db", "backup", "--force", str(file))
    assert newer.exit_code == 0, newer.output
    assert file.read_bytes() != made
    refused = await clipwatch("--database", database_url, "db", "restore", str(file))
    assert refused.exit_code == 1
    assert "has schema revision 9999_newer, newer than this clipwatch's" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert await contents(engine) == before  # the refused restore touched nothing

    # Restore refuses while a worker reports on the database.
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    await execute(
        target_url,
        "INSERT INTO worker_task (worker, task, state, started_at, heartbeat_at, "
        f"consecutive_failures, restarts) VALUES ('host:1', 'sync', 'running', '{now}', "
        f"'{now}', 0, 0)",
    )
    running = await clipwatch("--database", target_url, "db", "restore", str(file))
    assert running.exit_code == 1
    assert "clipwatch is running on this database (worker host:1" in running.stderr


def test_the_password_is_never_on_a_command_line() -> None:
    target = backups.PgTarget.from_url(
        "postgresql+asyncpg://owner:s3cret-pass@db.example:6543/archive?ssl=require"
    )
    for command in (
        backups.pg_dump_command(target, Path("b.dump")),
        backups.pg_restore_command(target, Path("b.dump")),
    ):
        assert not any("s3cret-pass" in arg for arg in command)
        assert "s3cret-pass" not in target.shell(command)
        assert target.shell(command).startswith("PGPASSWORD='<the password")
    assert target.env() == {"PGPASSWORD": "s3cret-pass", "PGSSLMODE": "require"}
    assert backups.pg_dump_command(target, Path("b.dump"))[-8:] == [
        "--host",
        "db.example",
        "--port",
        "6543",
        "--username",
        "owner",
        "--dbname",
        "archive",
    ]


def test_a_backup_while_a_writer_commits_is_one_committed_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "live.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{source}"))
    with sqlite3.connect(source) as db:  # some pages to copy: many small steps below
        db.executemany(
            "INSERT INTO game (id, name, box_art_url, updated_at) VALUES (?, ?, ?, ?)",
            [(f"seed-{i}", f"game {i}", "x" * 2000, "2025-01-01 00:00:00") for i in range(400)],
        )
    monkeypatch.setattr(backups, "STEP_PAGES", 8)

    done = threading.Event()
    committed: list[int] = []
    timed_out: list[bool] = []

    def writer() -> None:
        db = sqlite3.connect(source, timeout=10, isolation_level=None)
        deadline = time.monotonic() + WRITER_DEADLINE_S
        n = 0
        while not done.is_set() and time.monotonic() < deadline:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO game (id, name, box_art_url, updated_at) VALUES (?, ?, ?, ?)",
                [
                    (f"w-{n}-{i}", "w", "y" * 500, "2025-01-01 00:00:00")
                    for i in range(WRITER_BATCH)
                ],
            )
            db.execute("COMMIT")
            n += 1
            committed.append(n)
        timed_out.append(not done.is_set())
        db.close()

    thread = threading.Thread(target=writer)
    thread.start()
    progress: list[tuple[int, int]] = []

    def step(pages_done: int, pages: int) -> None:
        # Between any two steps of the copy the writer commits at least once.
        seen = len(committed)
        deadline = time.monotonic() + 5
        while len(committed) <= seen and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)  # poll: the writer's next commit
        progress.append((pages_done, pages))

    try:
        deadline = time.monotonic() + 5
        while len(committed) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # poll: the writer has committed a few batches before the copy
        started_at = len(committed)
        report = backups.backup_sqlite(source, tmp_path / "copy.db", progress=step)
        finished_at = len(committed)
    finally:
        done.set()
        thread.join(timeout=WRITER_DEADLINE_S + 5)
    # The writer went on during the copy, and the copy did not wait for it to stop.
    # A copy that restarts at every commit would only end once the writer gave up.
    assert timed_out == [False], "the backup did not finish while the writer was writing"
    assert finished_at >= started_at + len(progress), "the writer did not commit during the backup"
    assert not thread.is_alive()
    assert len(progress) > 5
    assert progress[-1][0] == progress[-1][1] == report.pages
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        written = copy.execute("SELECT count(*) FROM game WHERE id LIKE 'w-%'").fetchone()[0]
        seeded = copy.execute("SELECT count(*) FROM game WHERE id LIKE 'seed-%'").fetchone()[0]
    assert seeded == 400
    assert written % WRITER_BATCH == 0  # whole transactions only
    # A commit may land between the writer's COMMIT and its count: one batch of slack above.
    assert started_at * WRITER_BATCH <= written <= (finished_at + 1) * WRITER_BATCH
