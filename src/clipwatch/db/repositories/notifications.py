"""Notification routes and the delivery outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import Clip, Delivery, NotificationRoute
from clipwatch.db.repositories._dialect import dialect_name, insert_for


async def enabled_routes(session: AsyncSession) -> Sequence[NotificationRoute]:
    stmt = select(NotificationRoute).where(NotificationRoute.enabled.is_(True))
    return (await session.scalars(stmt.order_by(NotificationRoute.id))).all()


async def add_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Outbox rows; one per route and clip, whatever runs twice (unique key)."""
    if rows:
        stmt = insert_for(session, Delivery).values(rows).on_conflict_do_nothing()
        await session.execute(stmt)


async def claim_due(
    session: AsyncSession, now: datetime, until: datetime, limit: int
) -> Sequence[Delivery]:
    """Due pending deliveries, hidden from other workers until `until` (a crashed worker's
    claim simply comes due again)."""
    stmt = (
        select(Delivery)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
        .order_by(Delivery.id)
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = (await session.scalars(stmt)).all()
    if rows:
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_([r.id for r in rows]))
            .values(next_attempt_at=until)
        )
    return rows


async def routes_by_id(session: AsyncSession, ids: set[int]) -> dict[int, NotificationRoute]:
    rows = await session.scalars(select(NotificationRoute).where(NotificationRoute.id.in_(ids)))
    return {r.id: r for r in rows.all()}


async def clips_by_id(session: AsyncSession, ids: set[str]) -> dict[str, Clip]:
    rows = await session.scalars(select(Clip).where(Clip.id.in_(ids)))
    return {c.id: c for c in rows.all()}


async def update_deliveries(session: AsyncSession, ids: list[int], **values: Any) -> None:
    if ids:
        await session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(**values))


async def record_route_error(
    session: AsyncSession, route_id: int, error: str, at: datetime, count: int = 1
) -> None:
    """The last problem the route's own settings caused (kept); `error_count` adds `count`."""
    stmt = (
        update(NotificationRoute)
        .where(NotificationRoute.id == route_id)
        .values(
            last_error=error,
            last_error_at=at,
            error_count=NotificationRoute.error_count + count,
        )
    )
    await session.execute(stmt)


async def get_route(session: AsyncSession, route_id: int) -> NotificationRoute | None:
    return await session.get(NotificationRoute, route_id)


async def list_routes(session: AsyncSession, user_id: int | None) -> Sequence[NotificationRoute]:
    """A user's routes, or every route (user_id None: admins)."""
    stmt = select(NotificationRoute).order_by(NotificationRoute.id)
    if user_id is not None:
        stmt = stmt.where(NotificationRoute.user_id == user_id)
    return (await session.scalars(stmt)).all()


async def list_deliveries(
    session: AsyncSession, route_ids: Sequence[int], status: str | None, limit: int
) -> Sequence[Delivery]:
    stmt = select(Delivery).where(Delivery.route_id.in_(list(route_ids)))
    if status is not None:
        stmt = stmt.where(Delivery.status == status)
    return (await session.scalars(stmt.order_by(Delivery.id.desc()).limit(limit))).all()


async def get_delivery(session: AsyncSession, delivery_id: int) -> Delivery | None:
    return await session.get(Delivery, delivery_id)


async def count_pending(session: AsyncSession) -> int:
    stmt = select(func.count()).select_from(Delivery).where(Delivery.status == "pending")
    return int((await session.execute(stmt)).scalar_one())


async def delivery_counts(session: AsyncSession) -> dict[str, int]:
    """Deliveries per status (pending, sent, dead), zero when none."""
    stmt = select(Delivery.status, func.count()).group_by(Delivery.status)
    counts = {"pending": 0, "sent": 0, "dead": 0}
    counts.update({status: int(n) for status, n in (await session.execute(stmt)).all()})
    return counts


async def newest_clips(
    session: AsyncSession,
    *,
    channels: Sequence[str] = (),
    min_views: int = 0,
    limit: int = 500,
) -> Sequence[Clip]:
    """The newest stored clips (not deleted), narrowed by channel ids or logins and views:
    candidates for a route's test message, matched in full by the caller."""
    stmt = select(Clip).where(Clip.deleted_at.is_(None))
    if channels:
        stmt = stmt.where(
            Clip.broadcaster_id.in_(channels) | func.lower(Clip.broadcaster_name).in_(channels)
        )
    if min_views:
        stmt = stmt.where(Clip.view_count >= min_views)
    stmt = stmt.order_by(Clip.created_at.desc(), Clip.seq.desc()).limit(limit)
    return (await session.scalars(stmt)).all()


async def troubled_routes(
    session: AsyncSession, since: datetime, limit: int = 100
) -> list[dict[str, Any]]:
    """Routes disabled by a problem (their webhook is gone) and routes whose own settings
    failed since `since` (a template failing on a clip): what status lists for operators."""
    route = NotificationRoute
    stmt = (
        select(
            route.id,
            route.name,
            route.enabled,
            route.disabled_reason,
            route.last_error,
            route.last_error_at,
        )
        .where(
            or_(
                and_(route.enabled.is_(False), route.disabled_reason.is_not(None)),
                route.last_error_at >= since,
            )
        )
        .order_by(route.id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in (await session.execute(stmt)).all()]
