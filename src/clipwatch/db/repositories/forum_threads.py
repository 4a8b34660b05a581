"""Forum routes' threads (one per route and day or stream) and the stream a clip belongs to.

A row with an empty `thread_id` is a claim: one worker is opening that forum post now."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import ForumThread, Stream
from clipwatch.db.repositories._dialect import insert_for


async def get_thread(session: AsyncSession, route_id: int, key: str) -> ForumThread | None:
    stmt = select(ForumThread).where(ForumThread.route_id == route_id, ForumThread.key == key)
    return (await session.scalars(stmt.execution_options(populate_existing=True))).first()


async def claim_thread(session: AsyncSession, route_id: int, key: str, now: datetime) -> bool:
    """Whether this caller is the one to open the post (the unique (route, key) decides)."""
    stmt = (
        insert_for(session, ForumThread)
        .values(route_id=route_id, key=key, thread_id="", created_at=now)
        .on_conflict_do_nothing()
    )
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def take_over_claim(
    session: AsyncSession, route_id: int, key: str, stale_before: datetime, now: datetime
) -> bool:
    """A claim older than `stale_before` (its worker died mid-post) becomes this caller's."""
    stmt = (
        update(ForumThread)
        .where(
            ForumThread.route_id == route_id,
            ForumThread.key == key,
            ForumThread.thread_id == "",
            ForumThread.created_at < stale_before,
        )
        .values(created_at=now)
    )
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def set_thread(session: AsyncSession, route_id: int, key: str, thread_id: str) -> None:
    await session.execute(
        update(ForumThread)
        .where(ForumThread.route_id == route_id, ForumThread.key == key)
        .values(thread_id=thread_id)
    )


async def forget_thread(session: AsyncSession, route_id: int, key: str, thread_id: str) -> None:
    """Drop the row (a vanished thread, or a claim whose post failed: `thread_id` "")."""
    await session.execute(
        delete(ForumThread).where(
            ForumThread.route_id == route_id,
            ForumThread.key == key,
            ForumThread.thread_id == thread_id,
        )
    )


async def stream_at(session: AsyncSession, channel_id: str, at: datetime) -> Stream | None:
    """The channel's stream that was on at `at` (the newest started before it, not ended
    before it), or None."""
    stmt = (
        select(Stream)
        .where(Stream.channel_id == channel_id, Stream.started_at <= at)
        .where((Stream.ended_at.is_(None)) | (Stream.ended_at >= at))
        .order_by(Stream.started_at.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()
