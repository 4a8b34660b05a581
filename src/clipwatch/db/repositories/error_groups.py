"""Unexpected errors grouped by fingerprint (`error_group`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.error_models import ErrorGroup
from clipwatch.db.repositories._dialect import insert_for

LATEST = ("source", "message", "trace_id", "last_seen_at")


async def record_error(
    session: AsyncSession,
    *,
    fingerprint: str,
    error_type: str,
    place: str,
    source: str,
    message: str,
    trace_id: str,
    at: datetime,
) -> None:
    """One more occurrence: a new group, or the group's count + 1 and its latest details
    (one statement, so two processes recording the same error at once both count)."""
    stmt = insert_for(session, ErrorGroup).values(
        fingerprint=fingerprint,
        error_type=error_type,
        place=place,
        source=source,
        message=message,
        trace_id=trace_id,
        count=1,
        first_seen_at=at,
        last_seen_at=at,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[ErrorGroup.fingerprint],
        set_={
            "count": ErrorGroup.count + 1,
            **{name: stmt.excluded[name] for name in LATEST},
        },
    )
    await session.execute(stmt)


async def list_error_groups(session: AsyncSession, limit: int) -> Sequence[ErrorGroup]:
    """The groups seen most recently first."""
    query = (
        select(ErrorGroup)
        .order_by(ErrorGroup.last_seen_at.desc(), ErrorGroup.id.desc())
        .limit(limit)
    )
    return (await session.scalars(query)).all()


async def count_error_groups(session: AsyncSession, since: datetime | None = None) -> int:
    query = select(func.count()).select_from(ErrorGroup)
    if since is not None:
        query = query.where(ErrorGroup.last_seen_at >= since)
    return int(await session.scalar(query) or 0)


async def find_error_group(session: AsyncSession, fingerprint: str) -> ErrorGroup | None:
    found: ErrorGroup | None = await session.scalar(
        select(ErrorGroup).where(ErrorGroup.fingerprint == fingerprint)
    )
    return found
