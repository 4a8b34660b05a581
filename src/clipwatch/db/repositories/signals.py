"""What the alert rules' signals read from the database (monitoring/alerts/signals.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import (
    Channel,
    ChannelLive,
    ChannelSync,
    Delivery,
    NotificationRoute,
    WorkerTask,
)


async def recent_worker_tasks(session: AsyncSession, since: datetime) -> Sequence[WorkerTask]:
    stmt = select(WorkerTask).where(WorkerTask.heartbeat_at >= since)
    return (await session.scalars(stmt.order_by(WorkerTask.worker, WorkerTask.task))).all()


async def tracked_channel_syncs(session: AsyncSession) -> list[dict[str, Any]]:
    """Every tracked channel with when it was added, how its sync went, and whether it is
    live (its cadence)."""
    stmt = (
        select(
            Channel.id,
            Channel.login,
            Channel.added_at,
            ChannelSync.last_success_at,
            ChannelSync.last_error,
            ChannelLive.live,
        )
        .outerjoin(ChannelSync, ChannelSync.channel_id == Channel.id)
        .outerjoin(ChannelLive, ChannelLive.channel_id == Channel.id)
        .where(Channel.tracked.is_(True))
        .order_by(Channel.id)
    )
    return [dict(row._mapping) for row in (await session.execute(stmt)).all()]


async def outbox_pending(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many deliveries wait, and when the oldest of them was written."""
    stmt = select(func.count(), func.min(Delivery.created_at)).where(Delivery.status == "pending")
    count, oldest = (await session.execute(stmt)).one()
    if isinstance(oldest, str):  # SQLite's MIN() loses the column type
        oldest = datetime.fromisoformat(oldest)
    return int(count), oldest


async def dead_since(session: AsyncSession, since: datetime) -> int:
    """Deliveries that gave up since `since`. A delivery's last claim (`next_attempt_at`,
    set when it was claimed for its last attempt) stands for when it died."""
    stmt = select(func.count()).where(
        and_(Delivery.status == "dead", Delivery.next_attempt_at >= since)
    )
    return int((await session.execute(stmt)).scalar_one())


async def disabled_routes(session: AsyncSession) -> list[dict[str, Any]]:
    """Routes switched off by a problem (their webhook is gone), not by their owner."""
    route = NotificationRoute
    stmt = (
        select(route.id, route.name, route.disabled_reason)
        .where(route.enabled.is_(False), route.disabled_reason.is_not(None))
        .order_by(route.id)
    )
    return [dict(row._mapping) for row in (await session.execute(stmt)).all()]
