"""What the metrics read from the database (runtime/metrics_snapshot.py, on a cadence): the
outbox, per-channel sync figures, quarantine, dead letters. Never called inside a scrape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import (
    Channel,
    ChannelLive,
    ChannelSync,
    Clip,
    ClipQuarantine,
    Delivery,
    NotificationRoute,
)


@dataclass(frozen=True)
class ChannelRow:
    channel_id: str
    login: str | None
    account_created_at: datetime | None
    clips: int
    newest_seen_at: datetime | None
    last_success_at: datetime | None
    consecutive_failures: int
    backfill_until: datetime | None
    backfill_done_until: datetime | None
    backfill_completed_at: datetime | None
    live: bool = False


async def channel_figures(session: AsyncSession) -> list[ChannelRow]:
    """Every tracked channel with its stored clips, newest discovery and sync state."""
    tracked = (
        await session.execute(
            select(
                Channel.id, Channel.login, Channel.account_created_at, ChannelSync, ChannelLive.live
            )
            .outerjoin(ChannelSync, ChannelSync.channel_id == Channel.id)
            .outerjoin(ChannelLive, ChannelLive.channel_id == Channel.id)
            .where(Channel.tracked.is_(True))
            .order_by(Channel.id)
        )
    ).all()
    if not tracked:
        return []
    counts = {
        broadcaster: (int(n), newest)
        for broadcaster, n, newest in (
            await session.execute(
                select(Clip.broadcaster_id, func.count(), func.max(Clip.first_seen_at))
                .where(Clip.broadcaster_id.in_([row[0] for row in tracked]))
                .group_by(Clip.broadcaster_id)
            )
        ).all()
    }
    rows = []
    for channel_id, login, created, state, live in tracked:
        clips, newest = counts.get(channel_id, (0, None))
        rows.append(
            ChannelRow(
                channel_id=channel_id,
                login=login,
                account_created_at=created,
                clips=clips,
                newest_seen_at=newest,
                last_success_at=state.last_success_at if state else None,
                consecutive_failures=(state.consecutive_failures or 0) if state else 0,
                backfill_until=state.backfill_until if state else None,
                backfill_done_until=state.backfill_done_until if state else None,
                backfill_completed_at=state.backfill_completed_at if state else None,
                live=bool(live),
            )
        )
    return rows


async def outbox_figures(session: AsyncSession) -> dict[str, tuple[int, datetime | None]]:
    """Pending deliveries and the oldest one's creation, by the route's state."""
    stmt = (
        select(NotificationRoute.enabled, func.count(), func.min(Delivery.created_at))
        .join(NotificationRoute, NotificationRoute.id == Delivery.route_id)
        .where(Delivery.status == "pending")
        .group_by(NotificationRoute.enabled)
    )
    return {
        "enabled" if enabled else "disabled": (int(n), oldest)
        for enabled, n, oldest in (await session.execute(stmt)).all()
    }


async def dead_letters(session: AsyncSession) -> int:
    stmt = select(func.count()).select_from(Delivery).where(Delivery.status == "dead")
    return int(await session.scalar(stmt) or 0)


async def routes_disabled(session: AsyncSession) -> int:
    stmt = (
        select(func.count())
        .select_from(NotificationRoute)
        .where(NotificationRoute.enabled.is_(False))
    )
    return int(await session.scalar(stmt) or 0)


async def quarantined(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(ClipQuarantine.id))) or 0)
