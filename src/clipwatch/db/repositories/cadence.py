"""What the adaptive cadence (twitch/cadence.py) reads: every tracked channel's sync marks,
lease and live flag, in one query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import Channel, ChannelLive, ChannelSync


@dataclass(frozen=True)
class CadenceRow:
    channel_id: str
    live: bool
    next_sync_at: datetime | None = None
    final_pass_at: datetime | None = None
    next_try_at: datetime | None = None  # backoff after failures (channel_health)
    last_incremental_at: datetime | None = None
    backfill_completed_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


async def cadence_rows(session: AsyncSession) -> list[CadenceRow]:
    """Every tracked channel (by id); a channel without a sync row yet has empty marks."""
    stmt = (
        select(
            Channel.id,
            ChannelLive.live,
            ChannelSync.next_sync_at,
            ChannelSync.final_pass_at,
            ChannelSync.next_try_at,
            ChannelSync.last_incremental_at,
            ChannelSync.backfill_completed_at,
            ChannelSync.lease_owner,
            ChannelSync.lease_expires_at,
        )
        .select_from(Channel)
        .outerjoin(ChannelSync, ChannelSync.channel_id == Channel.id)
        .outerjoin(ChannelLive, ChannelLive.channel_id == Channel.id)
        .where(Channel.tracked.is_(True))
        .order_by(Channel.id)
    )
    return [
        CadenceRow(
            channel_id=row[0],
            live=bool(row[1]),
            next_sync_at=row[2],
            final_pass_at=row[3],
            next_try_at=row[4],
            last_incremental_at=row[5],
            backfill_completed_at=row[6],
            lease_owner=row[7],
            lease_expires_at=row[8],
        )
        for row in (await session.execute(stmt)).all()
    ]


async def is_live(session: AsyncSession, channel_id: str) -> bool:
    stmt = select(ChannelLive.live).where(ChannelLive.channel_id == channel_id)
    return bool((await session.scalars(stmt)).first())
