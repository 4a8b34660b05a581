"""Writing clips: batched upserts, with a COPY-and-merge fast path on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.engine import touch
from clipwatch.db.models import Clip
from clipwatch.db.repositories._chunks import in_chunks
from clipwatch.db.repositories._dialect import dialect_name, insert_for
from clipwatch.db.search import optimize_index

# Helix fields in COPY order; the rest of a clip row is our bookkeeping.
HELIX_COLUMNS = (
    "id",
    "url",
    "embed_url",
    "broadcaster_id",
    "broadcaster_name",
    "creator_id",
    "creator_name",
    "video_id",
    "game_id",
    "language",
    "title",
    "view_count",
    "created_at",
    "thumbnail_url",
    "duration",
    "vod_offset",
    "is_featured",
)
# What a re-sync may change; `id`, `broadcaster_id` and `created_at` never change.
MUTABLE_COLUMNS = tuple(c for c in HELIX_COLUMNS if c not in ("id", "broadcaster_id", "created_at"))
_PG_STAGING_DDL = f"""
CREATE TEMP TABLE IF NOT EXISTS clip_staging (
    {
    ", ".join(
        f"{c} {t}"
        for c, t in [
            ("id", "text"),
            ("url", "text"),
            ("embed_url", "text"),
            ("broadcaster_id", "text"),
            ("broadcaster_name", "text"),
            ("creator_id", "text"),
            ("creator_name", "text"),
            ("video_id", "text"),
            ("game_id", "text"),
            ("language", "text"),
            ("title", "text"),
            ("view_count", "bigint"),
            ("created_at", "timestamptz"),
            ("thumbnail_url", "text"),
            ("duration", "double precision"),
            ("vod_offset", "integer"),
            ("is_featured", "boolean"),
        ]
    )
}
) ON COMMIT DELETE ROWS
"""
_PG_MERGE = f"""
INSERT INTO clip ({", ".join(HELIX_COLUMNS)}, first_seen_at, updated_at)
SELECT {", ".join(HELIX_COLUMNS)}, $1, $1 FROM clip_staging
ON CONFLICT (id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in MUTABLE_COLUMNS)}, updated_at = EXCLUDED.updated_at
WHERE ({", ".join(f"clip.{c}" for c in MUTABLE_COLUMNS)})
    IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in MUTABLE_COLUMNS)})
RETURNING id, (xmax = 0) AS inserted
"""


@dataclass(frozen=True)
class UpsertResult:
    inserted: int
    updated: int
    inserted_ids: tuple[str, ...] = ()


def _dedupe(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last row wins for a repeated id: one statement may not touch a row twice.

    Sorted by id: concurrent writers then lock shared rows in one order (no deadlock)."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_id[row["id"]] = row
    return [by_id[key] for key in sorted(by_id)]


async def upsert_clips(
    session: AsyncSession, rows: Sequence[dict[str, Any]], *, durable: bool = True
) -> UpsertResult:
    """Insert new clips and update changed ones; unchanged rows are not rewritten.

    Rows carry the HELIX_COLUMNS with Python values (aware datetimes, None for no VOD/game).
    Channels and games they name must exist. `durable=False` lets PostgreSQL acknowledge the
    commit before its WAL reaches disk: for re-runnable bulk imports only.
    """
    unique = _dedupe(rows)
    if not unique:
        return UpsertResult(0, 0)
    now = datetime.now(UTC)
    if dialect_name(session) == "postgresql":
        # Also begins SQLAlchemy's transaction on the connection: the raw driver statements
        # that follow would otherwise run in autocommit, and the staging table (ON COMMIT
        # DELETE ROWS) would be empty again before the merge reads it.
        level = "on" if durable else "off"
        await session.execute(text(f"SET LOCAL synchronous_commit TO {level}"))
        result = await _upsert_postgres(session, unique, now)
    else:
        result = await _upsert_generic(session, unique, now)
    if result.inserted or result.updated:
        touch(session, "clips", *{f"ch:{row['broadcaster_id']}" for row in unique})
    return result


async def _upsert_postgres(
    session: AsyncSession, rows: list[dict[str, Any]], now: datetime
) -> UpsertResult:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.execute(_PG_STAGING_DDL)
    await driver.execute("TRUNCATE clip_staging")
    await driver.copy_records_to_table(
        "clip_staging",
        records=[tuple(row[c] for c in HELIX_COLUMNS) for row in rows],
        columns=HELIX_COLUMNS,
    )
    flags = await driver.fetch(_PG_MERGE, now)
    new = tuple(f["id"] for f in flags if f["inserted"])
    return UpsertResult(len(new), len(flags) - len(new), new)


async def _upsert_generic(
    session: AsyncSession, rows: list[dict[str, Any]], now: datetime
) -> UpsertResult:
    ids = [row["id"] for row in rows]
    known: set[str] = set()
    for chunk in in_chunks(ids):
        known.update((await session.scalars(select(Clip.id).where(Clip.id.in_(chunk)))).all())
    table = Clip.__table__
    stmt = insert_for(session, table)
    changed = or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in MUTABLE_COLUMNS))
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={**{c: stmt.excluded[c] for c in MUTABLE_COLUMNS}, "updated_at": now},
        where=changed,
    )
    params = [{**row, "first_seen_at": now, "updated_at": now} for row in rows]
    result = cast(CursorResult[Any], await session.execute(stmt, params))
    new = tuple(i for i in ids if i not in known)
    touched = result.rowcount if result.rowcount is not None and result.rowcount >= 0 else 0
    return UpsertResult(len(new), max(touched - len(new), 0), new)


async def compact_search_index(session: AsyncSession) -> None:
    """After a bulk write: statistics and the search index brought up to date."""
    connection = await session.connection()
    await connection.run_sync(optimize_index)


async def view_counts(session: AsyncSession, ids: Sequence[str]) -> dict[str, int]:
    """Stored view counts of these clips (absent ones are left out)."""
    counts: dict[str, int] = {}
    for chunk in in_chunks(ids):
        rows = await session.execute(select(Clip.id, Clip.view_count).where(Clip.id.in_(chunk)))
        counts.update({clip_id: views for clip_id, views in rows.all()})
    return counts
