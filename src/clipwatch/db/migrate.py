"""Run Alembic migrations on our own async engine (no alembic.ini needed).

A database already at the newest revision is recognised without Alembic: the heads are read
from the migration files' own `revision = …` lines and compared with the stored revision.
Importing Alembic (and its environment, which loads every model) costs a third of a second,
which every CLI command paid before it did anything (#11).
"""

from __future__ import annotations

import asyncio
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


def _config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def head_revisions() -> frozenset[str] | None:
    """The revisions no migration revises, read from the files; None when a file does not
    say its revision plainly (then Alembic decides)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = {m[1]: m[2] for m in _ASSIGNMENT.finditer(path.read_text())}
        own = _QUOTED.findall(found.get("revision", ""))
        if len(own) != 1 or "down_revision" not in found:
            return None
        revisions.add(own[0])
        revised.update(_QUOTED.findall(found["down_revision"]))
    return frozenset(revisions - revised) or None


async def stored_revisions(engine: AsyncEngine) -> frozenset[str]:
    """The revisions the database says it is at (none for a new database)."""
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            return frozenset(str(r[0]) for r in rows)
    except DBAPIError:  # no table yet (or no database): Alembic will say what is wrong
        return frozenset()


# pg_advisory_xact_lock's key for migrations: "clipwatch" in ASCII, as a bigint.
MIGRATION_LOCK = 0x636C6970776174


async def upgrade_database(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision.

    On PostgreSQL one process at a time migrates: several starting on an older schema at once
    (a rolling upgrade, compose scaling up) take turns on an advisory lock, and the ones after
    the first find the schema at head. Migrations run without the service's statement timeout:
    an index over millions of clips takes longer than a request."""
    heads = head_revisions()
    if heads is not None and await stored_revisions(engine) == heads:
        return
    if engine.dialect.name == "postgresql":
        await _upgrade_postgresql(engine)
        return
    from alembic import command

    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), "head"))


# How often a process waiting for another's migration asks for the lock again.
LOCK_POLL_S = 0.2


async def _upgrade_postgresql(engine: AsyncEngine) -> None:
    """Migrate on one connection that holds no transaction of its own between steps.

    `CREATE INDEX CONCURRENTLY` (0013) runs outside any transaction and waits for every
    transaction of the database that holds an older snapshot. So the lock is a session lock,
    asked for with `pg_try_advisory_lock` a statement at a time: a waiter blocked inside
    `pg_advisory_lock` would hold a snapshot the index build waits for, while it waits for the
    lock the builder holds (a wait PostgreSQL does not see as a deadlock). Alembic begins and
    commits its own transaction, so a migration can step out of it (autocommit_block). The
    statement timeout is off for the session; the connection is then closed rather than
    pooled with it off, and the session lock goes with it."""
    from alembic import command

    async with engine.connect() as conn:
        try:
            await conn.execute(text("SET statement_timeout = 0"))
            await conn.commit()
            while True:
                got = await conn.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK}
                )
                taken = bool(got.scalar_one())
                await conn.commit()
                if taken:
                    break
                await asyncio.sleep(LOCK_POLL_S)
            await conn.run_sync(lambda sync: command.upgrade(_config(sync), "head"))
            await conn.commit()
        finally:
            await conn.invalidate()


async def reindex_database(engine: AsyncEngine) -> None:
    """Rebuild the full-text index from the clip table."""
    from clipwatch.db import search

    async with engine.begin() as conn:
        await conn.run_sync(search.rebuild_index)
