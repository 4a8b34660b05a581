"""Upgrades keep data, stay expand-only, and do not lock `clip` on PostgreSQL (docs/upgrades.md).

Each test makes databases of its own (a file, or a PostgreSQL database created and dropped
here): the shared ones in conftest.py are already at the newest revision.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from clipwatch.config import Settings, load_settings
from clipwatch.db import search
from clipwatch.db.engine import create_engine
from tests.conftest import POSTGRES_ADMIN_URL, TEST_SECRET, app_client, unavailable
from tests.db.make_fixture import (
    ADDED_DEFAULTS,
    API_TOKEN,
    FIXTURE,
    LIVE_CLIP,
    OWNER_ID,
    ROWS,
    migrate,
    read_rows,
    reflect,
    revisions,
    rows_for,
    seed,
    writable_columns,
)

T = TypeVar("T")
FIXTURES = Path(__file__).parent / "fixtures"
Rows = dict[str, list[dict[str, Any]]]


# --- databases of the test's own ----------------------------------------------------------------


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A new, empty database (no tables at all)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'upgrade.db'}"
        return
    async with postgresql_database() as url:
        yield url


@asynccontextmanager
async def postgresql_database() -> AsyncIterator[str]:
    name = f"clipwatch_upgrade_{uuid.uuid4().hex[:12]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL} ({exc})")
    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings_for(url: str, var_dir: Path) -> Settings:
    return load_settings(
        database_url=url, secret_key=TEST_SECRET, var_dir=var_dir, webhook_check=False
    )


class Db:
    """One engine on the database; `sync(fn)` runs fn(connection) in a committed transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def sync(self, fn: Callable[[Connection], T]) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    async def migrate(self, revision: str) -> None:
        # Not in a transaction of ours: Alembic begins and commits its own (db/migrate.py).
        async with self.engine.connect() as conn:
            await conn.run_sync(lambda c: migrate(c, revision))
            await conn.commit()


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Db]:
    # No statement timeout: filling 200,000 clips takes longer than the app's.
    settings = load_settings(database_url=url, secret_key=TEST_SECRET, db_statement_timeout_ms=0)
    engine = create_engine(settings)
    try:
        yield Db(engine)
    finally:
        await engine.dispose()


# --- what an upgrade must keep ------------------------------------------------------------------


def snapshot(connection: Connection, tables: Rows) -> Rows:
    metadata = reflect(connection)
    return {name: read_rows(connection, metadata.tables[name]) for name in tables}


def assert_kept(connection: Connection, written: Rows, metadata: MetaData | None = None) -> None:
    """Every written row is there with its values; columns it was written without hold the
    default a migration documents for an existing row (ADDED_DEFAULTS), else NULL."""
    metadata = metadata or reflect(connection)
    for name, rows in written.items():
        table = metadata.tables[name]
        found = read_rows(connection, table)
        key = [c.name for c in table.primary_key.columns]
        rows = sorted(rows, key=lambda row: [row[k] for k in key])
        assert len(found) == len(rows), f"{name}: {len(rows)} rows written, {len(found)} now"
        for before, after in zip(rows, found, strict=True):
            assert {k: after[k] for k in before} == before, name
            for column in set(after) - set(before):
                default = ADDED_DEFAULTS.get((name, column))
                assert after[column] == default, f"{name}.{column} of an old row"


def assert_every_table_seeded(connection: Connection, written: Rows) -> None:
    """The data set covers the revision: every table has rows, every column a value."""
    metadata = reflect(connection)
    assert set(metadata.tables) == set(written), "tests/db/make_fixture.py ROWS misses a table"
    for name, table in metadata.tables.items():
        assert written[name], f"{name}: no row of ROWS fits this revision"
        missing = set(writable_columns(table)) - set().union(*(set(r) for r in ROWS[name]))
        assert not missing, f"{name}: ROWS names no value for {sorted(missing)}"


def route_kinds(rows: Rows) -> dict[str, tuple[str, str]]:
    """Each route's kind and deletion policy as the rows hold them (the defaults a row made
    before 0010 gets when it did not have them)."""
    return {
        r["name"]: (r.get("kind", "clips"), r.get("on_deleted", "keep"))
        for r in rows["notification_route"]
    }


async def assert_app_reads(settings: Settings, kinds: dict[str, tuple[str, str]]) -> None:
    """The app's read paths answer on the upgraded data (`kinds`: the owner's routes, by name, with
    their kind and deletion policy)."""
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with app_client(settings) as http:
        clips = await http.get("/api/v1/clips", params={"sort": "newest"}, headers=auth)
        assert clips.status_code == 200, clips.text
        ids = [c["id"] for c in clips.json()["data"]]
        assert LIVE_CLIP in ids
        assert "DeletedClip" not in ids
        one = await http.get(f"/api/v1/clips/{LIVE_CLIP}", headers=auth)
        assert one.status_code == 200, one.text
        assert one.json()["view_count"] == 2**40
        assert one.json()["title"] == next(c for c in ROWS["clip"] if c["id"] == LIVE_CLIP)["title"]
        status = await http.get("/api/v1/status", headers=auth)
        assert status.status_code == 200, status.text
        routes = await http.get("/api/v1/routes", headers=auth)
        assert routes.status_code == 200, routes.text
        mine = [r for r in routes.json()["data"] if r["user_id"] == OWNER_ID]
        assert {r["name"]: (r["kind"], r["on_deleted"]) for r in mine} == kinds
        search = await http.get("/api/v1/clips", params={"q": "クリップ"}, headers=auth)
        assert search.status_code == 200, search.text
        assert [c["id"] for c in search.json()["data"]] == [LIVE_CLIP]


async def test_previous_head_upgrades_with_data_in_place(empty_url: str, tmp_path: Path) -> None:
    previous, head = revisions()[-2:]
    async with opened(empty_url) as db:
        await db.migrate(previous)
        written = await db.sync(seed)
        await db.sync(lambda c: assert_every_table_seeded(c, written))
        await db.migrate(head)
        await db.sync(lambda c: assert_kept(c, written))
        # Every migration defines its downgrade: back to the previous head, nothing lost.
        await db.migrate(previous)
        await db.sync(lambda c: assert_kept(c, written))
        await db.migrate(head)
    await assert_app_reads(settings_for(empty_url, tmp_path), route_kinds(written))


async def test_every_step_keeps_data_expands_only_and_locks_no_big_table(empty_url: str) -> None:
    """For each step r-1 -> r, from 0001 to the newest revision:
    - the rows a database at r-1 holds are kept, new columns hold their defaults (the tables
      a revision creates are filled right after it, so every later step has them);
    - nothing an old process uses disappears or narrows (expand only, ALLOWED_CONTRACTS);
    - on PostgreSQL, no statement locks `clip` or `delivery` for a rewrite, a scan or an
      index build (ALLOWED_LOCKS)."""
    written: Rows = {}
    schemas: list[tuple[str, dict[str, Any]]] = []
    statements: dict[str, list[str]] = {}
    migrating: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if migrating:
            statements.setdefault(migrating[0], []).append(statement)

    def check_and_fill(connection: Connection) -> dict[str, Any]:
        metadata = reflect(connection)
        assert_kept(connection, written, metadata)
        written.update(seed(connection, only=set(metadata.tables) - set(written)))
        return schema_of(metadata)

    async with opened(empty_url) as db:
        event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        for revision in revisions():
            migrating[:] = [revision]
            await db.migrate(revision)
            migrating.clear()
            schemas.append((revision, await db.sync(check_and_fill)))
    assert set(written) == set(ROWS)

    changes = {
        revision: set(contract_changes(before, after))
        for (_, before), (revision, after) in itertools.pairwise(schemas)
    }
    contracts = {r: c for r, c in changes.items() if c}
    if not empty_url.startswith("postgresql"):
        assert contracts == ALLOWED_CONTRACTS, f"not expand-only: {contracts}"
        return
    locks: dict[str, set[str]] = {}
    for revision, sql in statements.items():
        created = {m[1] for s in sql if (m := re.match(r"\s*CREATE TABLE \"?(\w+)", s))}
        found = {f for s in sql for f in lock_findings(s, created)}
        if found:
            locks[revision] = found
    assert (contracts, locks) == (ALLOWED_CONTRACTS, ALLOWED_LOCKS), (
        f"not expand-only: {contracts}; long locks: {locks}"
    )


async def test_every_downgrade_keeps_the_rows_its_revision_can_hold(tmp_path: Path) -> None:
    """SQLite (PostgreSQL alters tables in place, SQLite copies them): from the newest revision
    with data, down one step at a time to 0001, every remaining row keeps its remaining
    columns. Left out: rows an older schema cannot hold (0007's downgrade deletes the alert
    deliveries, which have no route) and, of course, the tables a downgrade drops."""
    async with opened(f"sqlite+aiosqlite:///{tmp_path / 'down.db'}") as db:
        await db.migrate(revisions()[-1])
        written = await db.sync(seed)

        def check(connection: Connection) -> None:
            metadata = reflect(connection)
            expected = {
                name: rows_for(metadata.tables[name], rows)
                for name, rows in written.items()
                if name in metadata.tables
            }
            assert_kept(connection, expected, metadata)

        for revision in reversed(revisions()[:-1]):
            await db.migrate(revision)
            await db.sync(check)


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("schema_*.sqlite")), ids=lambda p: p.stem)
async def test_released_fixture_upgrades_to_the_schema_of_a_new_database(
    fixture: Path, tmp_path: Path, sqlite_url: str
) -> None:
    """A database made by a released version (not by today's migrations) upgrades to the same
    schema a new database gets, its rows intact: a released migration edited since fails."""
    copy = tmp_path / fixture.name
    shutil.copyfile(fixture, copy)
    url = f"sqlite+aiosqlite:///{copy}"
    async with opened(url) as db:
        stored = await db.sync(lambda c: c.execute(text("SELECT version_num FROM alembic_version")))
        assert f"schema_{stored.scalar()}" == fixture.stem
        before = await db.sync(lambda c: snapshot(c, {key: [] for key in reflect(c).tables}))
        assert all(before.values()), "every table of the fixture holds rows"
        await db.migrate(revisions()[-1])
        await db.sync(lambda c: assert_kept(c, before))
        upgraded = await db.sync(sqlite_schema)
    async with opened(sqlite_url) as db:  # the session's database, new and migrated to head
        assert upgraded == await db.sync(sqlite_schema)
    await assert_app_reads(settings_for(url, tmp_path), route_kinds(before))


def sqlite_schema(connection: Connection) -> dict[str, Any]:
    """The reflected schema, and every object SQLite lists (the search index's FTS5 tables
    and triggers, the expression index on game names), by name."""
    listed = connection.execute(text("SELECT type, name FROM sqlite_master ORDER BY type, name"))
    return {"tables": schema_of(reflect(connection)), "objects": [tuple(r) for r in listed]}


def test_a_fixture_of_the_previous_head_is_committed() -> None:
    assert FIXTURE.name == f"schema_{revisions()[-2]}.sqlite", (
        "a migration was added: make the previous head's fixture (docs/upgrades.md)"
    )
    assert FIXTURE.exists()
    assert FIXTURE.stat().st_size < 100_000


# --- expand-only: what old processes use never goes away ---------------------------------------


def schema_of(metadata: MetaData) -> dict[str, Any]:
    """Tables, columns (type, nullability, server default), indexes and unique constraints."""
    return {
        name: {
            "columns": {c.name: (kind(c.type), c.nullable, default_of(c)) for c in table.columns},
            "indexes": sorted(str(i.name) for i in table.indexes),
            "uniques": sorted(
                str(u.name or [c.name for c in u.columns])
                for u in table.constraints
                if isinstance(u, UniqueConstraint)
            ),
        }
        for name, table in sorted(metadata.tables.items())
    }


def default_of(column: Any) -> str | None:
    """The server default as the database states it (None: none)."""
    default = column.server_default
    return None if default is None else str(getattr(default, "arg", default))


def kind(type_: Any) -> tuple[str, int | None]:
    """A type's family and size: ("int", 8) for BIGINT, ("text", 64) for VARCHAR(64)."""
    for family, size, cls in [
        ("int", 8, BigInteger),
        ("int", 4, Integer),
        ("bool", None, Boolean),
        ("float", None, Float),
        ("datetime", None, DateTime),
        ("json", None, JSON),
        ("text", None, Text),
    ]:
        if isinstance(type_, cls):
            return family, size
    if isinstance(type_, String):
        return "text", type_.length
    return type(type_).__name__.lower(), None


def narrower(old: tuple[str, int | None], new: tuple[str, int | None]) -> bool:
    if old[0] != new[0]:
        return True
    if new[1] is None:  # unbounded text, or a type without a size
        return False
    return old[1] is None or new[1] < old[1]


def contract_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What a step does that an old process running beside it could trip over."""
    found = []
    for table, before in old.items():
        if table not in new:
            found.append(f"drops table {table}")
            continue
        after = new[table]["columns"]
        for column, (type_, nullable, _) in before["columns"].items():
            if column not in after:
                found.append(f"drops column {table}.{column}")
                continue
            if narrower(type_, after[column][0]):
                found.append(f"narrows {table}.{column}: {type_} -> {after[column][0]}")
            if nullable and not after[column][1]:
                found.append(f"makes {table}.{column} NOT NULL")
        for column, (_, nullable, has_default) in after.items():
            if column not in before["columns"] and not nullable and not has_default:
                found.append(f"adds NOT NULL {table}.{column} without a server default")
    return found


# Steps released before the rule that break it, and why they stay (released migrations are
# never rewritten). Empty: every released step is expand-only.
ALLOWED_CONTRACTS: dict[str, set[str]] = {}


def test_the_expand_only_check_sees_contractions() -> None:
    before = {
        "clip": {
            "columns": {"title": (("text", None), False, False), "n": (("int", 8), True, False)}
        },
        "gone": {"columns": {}},
    }
    after = {
        "clip": {
            "columns": {
                "n": (("int", 4), False, False),
                "new": (("bool", None), False, False),
                "ok": (("bool", None), False, True),
            }
        }
    }
    assert sorted(contract_changes(before, after)) == [
        "adds NOT NULL clip.new without a server default",
        "drops column clip.title",
        "drops table gone",
        "makes clip.n NOT NULL",
        "narrows clip.n: ('int', 8) -> ('int', 4)",
    ]


# --- online on PostgreSQL: no long lock on the big tables ---------------------------------------

BIG_TABLES = frozenset({"clip", "delivery"})
_VOLATILE = re.compile(
    r"DEFAULT\s+.*\b(random|clock_timestamp|gen_random_uuid|uuid_generate_v\d|nextval|"
    r"timeofday)\s*\(|GENERATED\s+ALWAYS\s+AS\s*\(.*\)\s*STORED",
    re.IGNORECASE,
)


def lock_findings(statement: str, created: set[str]) -> list[str]:
    """What in one DDL statement holds a lock on a big table for a time that grows with it
    (a rewrite, a full scan, an index build), unless the table is new in the same step."""
    sql = " ".join(statement.split())
    found = []
    altered = re.match(r"ALTER TABLE (?:ONLY )?\"?(\w+)\"? (.*)", sql, re.IGNORECASE)
    if altered and altered[1] in BIG_TABLES - created:
        table, rest = altered[1], altered[2]
        for pattern, what in [
            (r"ALTER COLUMN \S+ (SET DATA )?TYPE", "rewrites {}: ALTER COLUMN TYPE"),
            (r"SET NOT NULL", "scans {} under ACCESS EXCLUSIVE: SET NOT NULL"),
            (
                r"ADD (CONSTRAINT \S+ )?(UNIQUE|PRIMARY KEY)",
                "builds an index under ACCESS EXCLUSIVE on {}",
            ),
            (
                r"ADD (CONSTRAINT \S+ )?(CHECK|FOREIGN KEY)(?!.*NOT VALID)",
                "scans {}: a constraint without NOT VALID",
            ),
        ]:
            if re.search(pattern, rest, re.IGNORECASE):
                found.append(what.format(table))
        if re.search(r"ADD (COLUMN )?", rest, re.IGNORECASE) and _VOLATILE.search(rest):
            found.append(f"rewrites {table}: ADD COLUMN with a volatile default")
    index = re.match(
        r"CREATE (UNIQUE )?INDEX (CONCURRENTLY )?(IF NOT EXISTS )?\S+ ON (ONLY )?\"?(\w+)\"?",
        sql,
        re.IGNORECASE,
    )
    if index and index[5] in BIG_TABLES - created and not index[2]:
        found.append(f"blocks writes to {index[5]}: CREATE INDEX without CONCURRENTLY")
    return found


def test_the_lock_check_sees_long_locks() -> None:
    bad = {
        "ALTER TABLE clip ALTER COLUMN title TYPE varchar(300)": "rewrites clip: ALTER COLUMN TYPE",
        "ALTER TABLE clip ADD COLUMN token uuid DEFAULT gen_random_uuid()": (
            "rewrites clip: ADD COLUMN with a volatile default"
        ),
        "ALTER TABLE delivery ALTER COLUMN kind SET NOT NULL": (
            "scans delivery under ACCESS EXCLUSIVE: SET NOT NULL"
        ),
        "CREATE INDEX ix_clip_x ON clip (title)": (
            "blocks writes to clip: CREATE INDEX without CONCURRENTLY"
        ),
        "ALTER TABLE delivery ADD CONSTRAINT uq_x UNIQUE (payload)": (
            "builds an index under ACCESS EXCLUSIVE on delivery"
        ),
        "ALTER TABLE clip ADD CONSTRAINT ck CHECK (view_count >= 0)": (
            "scans clip: a constraint without NOT VALID"
        ),
    }
    for statement, finding in bad.items():
        assert lock_findings(statement, set()) == [finding], statement
    for fine in [
        "CREATE INDEX CONCURRENTLY ix_clip_x ON clip (title)",
        "ALTER TABLE clip ADD COLUMN note TEXT",
        "ALTER TABLE clip ADD COLUMN seen_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL",
        "ALTER TABLE clip ADD CONSTRAINT ck CHECK (view_count >= 0) NOT VALID",
        "ALTER TABLE clip VALIDATE CONSTRAINT ck",
        "CREATE INDEX ix_route_x ON notification_route (name)",
    ]:
        assert lock_findings(fine, set()) == [], fine
    assert lock_findings("CREATE INDEX ix_clip_x ON clip (title)", {"clip"}) == []


# Steps released before the rule that take such a lock, and why they stay.
ALLOWED_LOCKS: dict[str, set[str]] = {
    # The unique constraint on the new, all-NULL idempotency_key column builds its index under
    # ACCESS EXCLUSIVE on delivery: a scan of the outbox, short at the sizes 0007 met (sent
    # deliveries are kept, so it grows with every clip posted).
    "0007": {"builds an index under ACCESS EXCLUSIVE on delivery"},
}


# Enough clips that a rewrite, a scan or an index build of `clip` takes seconds (a rewrite
# rebuilds the search index and the four covering indexes); 200,000 for a longer look.
CLIPS = int(os.environ.get("CLIPWATCH_UPGRADE_TEST_CLIPS", "50000"))
FILL_CLIPS = f"""
INSERT INTO clip (id, url, embed_url, broadcaster_id, broadcaster_name, creator_id,
    creator_name, video_id, game_id, language, title, view_count, created_at, thumbnail_url,
    duration, vod_offset, is_featured, first_seen_at, updated_at)
SELECT 'gen' || g, 'https://clips.twitch.tv/gen' || g,
    'https://clips.twitch.tv/embed?clip=gen' || g,
    (1000 + g % 20)::text, 'streamer ' || g % 20, (g % 5000)::text, 'creator ' || g % 5000,
    NULL, (g % 50)::text, 'en', 'generated clip ' || g, g % 10000,
    now() - g * interval '1 minute', '', 30.0, NULL, g % 100 = 0, now(), now()
FROM generate_series(1, {CLIPS}) AS g
"""
WAIT_BOUND_S = 1.0
# The search indexes, built once after the fill from the statements that made them (a third
# faster than maintaining them row by row).
SEARCH_INDEXES = [s for s in search._PG_CREATE if s.lstrip().startswith("CREATE INDEX")]


def fill_clips(connection: Connection) -> None:
    connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    for statement in SEARCH_INDEXES:
        connection.execute(text(f"DROP INDEX {statement.split()[2]}"))
    connection.execute(text(FILL_CLIPS))
    for statement in SEARCH_INDEXES:
        connection.execute(text(statement))


async def test_upgrade_to_head_keeps_clip_available_on_postgresql(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """`clipwatch db upgrade` from the previous head over CLIPS clips while another
    connection reads and writes `clip` (and `delivery`): no statement waits long."""
    previous, head = revisions()[-2:]
    async with postgresql_database() as url:
        async with opened(url) as db:
            await db.migrate(previous)
            await db.sync(seed)
            await db.sync(fill_clips)
        conn = await asyncpg.connect(
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        waits: dict[str, float] = {"clip": 0.0, "delivery": 0.0}
        ran = 0
        upgrading = asyncio.Event()
        done = asyncio.Event()

        async def timed(table: str, sql: str, *args: object) -> None:
            nonlocal ran
            started = time.perf_counter()
            await conn.execute(sql, *args)
            waits[table] = max(waits[table], time.perf_counter() - started)
            ran += upgrading.is_set()

        async def load() -> None:
            n = 0
            while not done.is_set():
                n += 1
                seq = 1 + n * 7919 % CLIPS
                await timed("clip", "SELECT title FROM clip WHERE seq = $1", seq)
                await timed(
                    "clip", "UPDATE clip SET view_count = view_count + 1 WHERE seq = $1", seq
                )
                await timed(
                    "clip",
                    "INSERT INTO clip (id, url, embed_url, broadcaster_id, broadcaster_name,"
                    " creator_id, creator_name, language, title, view_count, created_at,"
                    " thumbnail_url, duration, is_featured) VALUES ($1, '', '', '1001', 'x',"
                    " '1', 'y', 'en', 'during the upgrade', 0, now(), '', 1.0, false)",
                    f"load{n}",
                )
                await timed("delivery", "UPDATE delivery SET attempts = attempts WHERE id = 1")

        task = asyncio.create_task(load())
        try:
            env = {
                **os.environ,
                "CLIPWATCH_DATABASE_URL": url,
                "CLIPWATCH_SECRET_KEY": TEST_SECRET,
                "CLIPWATCH_VAR_DIR": str(tmp_path),
            }
            upgrading.set()
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "clipwatch"),
                "db",
                "upgrade",
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                _out, err = await asyncio.wait_for(process.communicate(), timeout=120)
            finally:
                if process.returncode is None:  # timed out: stop it by its handle
                    process.kill()
                    await asyncio.wait_for(process.wait(), timeout=10)
            took = time.perf_counter() - started
        finally:
            done.set()
            await asyncio.wait_for(task, timeout=30)
            await conn.close()
        assert process.returncode == 0, err.decode()
        async with opened(url) as db:
            stored = await db.sync(
                lambda c: c.execute(text("SELECT version_num FROM alembic_version")).scalar()
            )
            count = await db.sync(
                lambda c: c.execute(text("SELECT count(*) FROM clip")).scalar_one()
            )
        assert stored == head
        assert count > CLIPS + len(ROWS["clip"])
        assert ran > 20, "the load ran beside the upgrade"
        record_property("upgrade_s", round(took, 3))
        record_property("longest_wait_clip_s", round(waits["clip"], 4))
        record_property("longest_wait_delivery_s", round(waits["delivery"], 4))
        print(
            f"upgrade {took:.2f} s over {CLIPS:,} clips, {ran} statements beside it; longest"
            f" wait: clip {waits['clip'] * 1000:.1f} ms, delivery {waits['delivery'] * 1000:.1f} ms"
        )
        assert waits["clip"] < WAIT_BOUND_S
