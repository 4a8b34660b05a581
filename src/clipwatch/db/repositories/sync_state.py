"""Sync state per channel: progress, and leases so two workers never sync one channel."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.engine import touch
from clipwatch.db.models import Channel, ChannelLive, ChannelSync, Clip, Game
from clipwatch.db.repositories import quarantine
from clipwatch.db.repositories._dialect import insert_for


async def tracked_channels(session: AsyncSession) -> Sequence[Channel]:
    stmt = select(Channel).where(Channel.tracked.is_(True)).order_by(Channel.login)
    return (await session.scalars(stmt)).all()


async def get_state(session: AsyncSession, channel_id: str) -> ChannelSync:
    """The channel's sync state, created empty on first use (for changing it)."""
    touch(session, "sync")
    await session.execute(
        insert_for(session, ChannelSync).values(channel_id=channel_id).on_conflict_do_nothing()
    )
    state = await session.get(ChannelSync, channel_id, populate_existing=True)
    assert state is not None
    return state


async def claim(
    session: AsyncSession, channel_id: str, owner: str, now: datetime, ttl: timedelta
) -> bool:
    """Take or extend the channel's lease; False when another live worker holds it."""
    await get_state(session, channel_id)  # touches "sync"
    result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        update(ChannelSync)
        .where(
            ChannelSync.channel_id == channel_id,
            or_(
                ChannelSync.lease_owner.is_(None),
                ChannelSync.lease_owner == owner,
                ChannelSync.lease_expires_at < now,
            ),
        )
        .values(lease_owner=owner, lease_expires_at=now + ttl)
    )
    return result.rowcount == 1


async def release(session: AsyncSession, channel_id: str, owner: str) -> None:
    touch(session, "sync")
    await session.execute(
        update(ChannelSync)
        .where(ChannelSync.channel_id == channel_id, ChannelSync.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
    )


async def mark_deleted(session: AsyncSession, clip_ids: Sequence[str], now: datetime) -> int:
    if not clip_ids:
        return 0
    result = await session.execute(
        update(Clip)
        .where(Clip.id.in_(list(clip_ids)), Clip.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
        .returning(Clip.broadcaster_id)
    )
    marked = list(result.scalars().all())  # one broadcaster id per marked clip
    if marked:
        touch(session, "clips", *{f"ch:{c}" for c in marked})
    return len(marked)


async def games_without_names(session: AsyncSession, limit: int = 500) -> list[str]:
    stmt = select(Game.id).where(Game.name.is_(None)).limit(limit)
    return list((await session.scalars(stmt)).all())


async def named_games(session: AsyncSession, ids: Iterable[str]) -> set[str]:
    """Which of `ids` are games we already have a name for."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    stmt = select(Game.id).where(Game.id.in_(wanted), Game.name.is_not(None))
    return set((await session.scalars(stmt)).all())


async def states_of(session: AsyncSession, channel_ids: Sequence[str]) -> dict[str, ChannelSync]:
    if not channel_ids:
        return {}
    stmt = select(ChannelSync).where(ChannelSync.channel_id.in_(list(channel_ids)))
    return {s.channel_id: s for s in (await session.scalars(stmt)).all()}


async def sync_summary(session: AsyncSession) -> dict[str, Any]:
    """Tracked channels, how many still backfill, which are live (up to 100, the latest to
    go live first), and the newest incremental sync."""
    stmt = (
        select(
            func.count(Channel.id),
            func.count(Channel.id).filter(ChannelSync.backfill_completed_at.is_(None)),
            func.max(ChannelSync.last_incremental_at),
        )
        .select_from(Channel)
        .outerjoin(ChannelSync, ChannelSync.channel_id == Channel.id)
        .where(Channel.tracked.is_(True))
    )
    channels, backfilling, last = (await session.execute(stmt)).one()
    failing = await failing_channels(session)
    live_now = (Channel.tracked.is_(True), ChannelLive.live.is_(True))
    live_count = await session.scalar(
        select(func.count())
        .select_from(Channel)
        .join(ChannelLive, ChannelLive.channel_id == Channel.id)
        .where(*live_now)
    )
    live = (
        await session.scalars(
            select(func.coalesce(Channel.login, Channel.id))
            .join(ChannelLive, ChannelLive.channel_id == Channel.id)
            .where(*live_now)
            .order_by(ChannelLive.started_at.desc(), Channel.id)
            .limit(100)
        )
    ).all()
    return {
        "live": int(live_count or 0),
        "live_channels": list(live),
        "channels": int(channels),
        "backfilling": int(backfilling),
        "last_synced_at": last,
        "failing": len(failing),
        "failing_channels": failing,
        "quarantined": await quarantine.count_quarantined(session),
    }


async def failing_channels(session: AsyncSession, limit: int = 100) -> list[dict[str, Any]]:
    """Tracked channels whose last step failed, the longest failing first."""
    stmt = (
        select(Channel.id, Channel.login, ChannelSync)
        .join(ChannelSync, ChannelSync.channel_id == Channel.id)
        .where(Channel.tracked.is_(True), ChannelSync.consecutive_failures > 0)
        .order_by(ChannelSync.consecutive_failures.desc(), Channel.id)
        .limit(limit)
    )
    return [
        {
            "channel_id": channel_id,
            "login": login,
            "last_error": state.last_error,
            "last_error_at": state.last_error_at,
            "consecutive_failures": state.consecutive_failures,
            "last_success_at": state.last_success_at,
            "next_try_at": state.next_try_at,
        }
        for channel_id, login, state in (await session.execute(stmt)).all()
    ]
