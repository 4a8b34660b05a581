"""Notification routes and the delivery outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import Clip, Delivery, NotificationRoute
from clipwatch.db.repositories import moderation
from clipwatch.db.repositories._chunks import in_chunks
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
    session: AsyncSession,
    now: datetime,
    until: datetime,
    limit: int,
    per_route: int | None = None,
) -> Sequence[Delivery]:
    """Due pending deliveries, hidden from other workers until `until` (a crashed worker's
    claim simply comes due again). `per_route`: at most that many of one route, so one
    route's burst does not fill a pass that could also send to the others."""
    due = (Delivery.status == "pending", Delivery.next_attempt_at <= now)
    stmt = select(Delivery).where(*due).order_by(Delivery.id).limit(limit)
    if per_route is not None:
        ranked = (
            select(
                Delivery.id,
                func.row_number()
                .over(partition_by=Delivery.route_id, order_by=Delivery.id)
                .label("rank"),
            )
            .where(*due)
            .subquery()
        )
        stmt = stmt.where(Delivery.id.in_(select(ranked.c.id).where(ranked.c.rank <= per_route)))
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = (await session.scalars(stmt)).all()
    if not rows:
        return rows
    # Only rows still due are taken: on SQLite (no SKIP LOCKED) two workers can read the
    # same rows, and the second's update then finds them claimed and takes none of them.
    taken = await session.scalars(
        update(Delivery)
        .where(Delivery.id.in_([r.id for r in rows]), *due)
        .values(next_attempt_at=until)
        .returning(Delivery.id)
    )
    ids = set(taken.all())
    return [r for r in rows if r.id in ids]


async def extend_claim(
    session: AsyncSession, ids: Sequence[int], until: datetime, later: datetime
) -> int:
    """Push a pass's claim from `until` to `later` for its rows still pending under it."""
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(list(ids)),
            Delivery.status == "pending",
            Delivery.next_attempt_at == until,
        )
        .values(next_attempt_at=later)
    )
    return int(getattr(result, "rowcount", 0) or 0)


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


async def delivery_counts_by_route(
    session: AsyncSession, route_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """Deliveries per route and status (pending, sent, dead), zero when none."""
    counts = {route_id: {"pending": 0, "sent": 0, "dead": 0} for route_id in route_ids}
    if not route_ids:
        return counts
    stmt = (
        select(Delivery.route_id, Delivery.status, func.count())
        .where(Delivery.route_id.in_(list(route_ids)))
        .group_by(Delivery.route_id, Delivery.status)
    )
    for route_id, status, n in (await session.execute(stmt)).all():
        if route_id is not None:
            counts.setdefault(route_id, {})[status] = int(n)
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
    stmt = select(Clip).where(Clip.deleted_at.is_(None), moderation.visible(Clip.seq))
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


# --- messages that stay true (discord/lifecycle.py) -------------------------------------------


async def posted_deliveries(
    session: AsyncSession, route_ids: Sequence[int], clip_ids: Sequence[str], kind: str
) -> Sequence[Delivery]:
    """The sent deliveries of these clips to these routes that have a Discord message (the
    unique (route_id, clip_id) index answers it)."""
    if not route_ids or not clip_ids:
        return []
    stmt = select(Delivery).where(
        Delivery.route_id.in_(list(route_ids)),
        Delivery.clip_id.in_(sorted(set(clip_ids))),
        Delivery.kind == kind,
        Delivery.status == "sent",
        Delivery.message_id.is_not(None),
        Delivery.message_id != "",
    )
    return (await session.scalars(stmt.order_by(Delivery.id))).all()


async def message_deliveries(
    session: AsyncSession, route_id: int, message_id: str, kind: str
) -> Sequence[Delivery]:
    """The route's deliveries posted in one message (a batch holds up to 10), in order. Read
    by the route's prefix of the unique index: edits are rare, a message_id index is not
    worth its upkeep on every send."""
    stmt = select(Delivery).where(
        Delivery.route_id == route_id,
        Delivery.message_id == message_id,
        Delivery.kind == kind,
        Delivery.status == "sent",
    )
    return (await session.scalars(stmt.order_by(Delivery.id))).all()


async def existing_keys(session: AsyncSession, route_id: int, keys: Sequence[str]) -> set[str]:
    """Which of these outbox keys (clip_id) the route has a row for, whatever its status."""
    if not keys:
        return set()
    stmt = select(Delivery.clip_id).where(
        Delivery.route_id == route_id, Delivery.clip_id.in_(sorted(set(keys)))
    )
    return set((await session.scalars(stmt)).all())


async def deliveries_by_id(session: AsyncSession, ids: set[int]) -> dict[int, Delivery]:
    if not ids:
        return {}
    rows = await session.scalars(select(Delivery).where(Delivery.id.in_(ids)))
    return {d.id: d for d in rows.all()}


# --- digests and trending (discord/digests.py, discord/trending.py) ---------------------------


async def add_deliveries_counted(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """`add_deliveries`, answering how many rows were new (the rest were there already)."""
    if not rows:
        return 0
    stmt = (
        insert_for(session, Delivery).values(rows).on_conflict_do_nothing().returning(Delivery.id)
    )
    return len((await session.execute(stmt)).all())


async def digest_routes(session: AsyncSession) -> Sequence[NotificationRoute]:
    stmt = select(NotificationRoute).where(
        NotificationRoute.enabled.is_(True), NotificationRoute.kind == "digest"
    )
    return (await session.scalars(stmt.order_by(NotificationRoute.id))).all()


async def trending_routes(session: AsyncSession) -> Sequence[NotificationRoute]:
    stmt = select(NotificationRoute).where(
        NotificationRoute.enabled.is_(True),
        NotificationRoute.trending_views_per_hour.is_not(None),
    )
    return (await session.scalars(stmt.order_by(NotificationRoute.id))).all()


async def views_and_times(
    session: AsyncSession, ids: Sequence[str]
) -> dict[str, tuple[int, datetime]]:
    """Stored view counts of these clips and when each row last changed (absent: left out)."""
    found: dict[str, tuple[int, datetime]] = {}
    for chunk in in_chunks(ids):
        stmt = select(Clip.id, Clip.view_count, Clip.updated_at).where(Clip.id.in_(chunk))
        for clip_id, views, at in (await session.execute(stmt)).all():
            found[clip_id] = (int(views), at)
    return found


async def top_clips_between(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    channels: Sequence[str] = (),
    games: Sequence[str] = (),
    languages: Sequence[str] = (),
    min_views: int = 0,
    after: tuple[int, int] | None = None,
    limit: int = 500,
) -> Sequence[Clip]:
    """Clips created in [start, end), not deleted, most viewed first (ties: older `seq`
    first), after the keyset `after` (views, seq); narrowed by the filters SQL can test."""
    stmt = select(Clip).where(
        Clip.created_at >= start,
        Clip.created_at < end,
        Clip.deleted_at.is_(None),
        moderation.visible(Clip.seq),
    )
    if channels:
        stmt = stmt.where(
            Clip.broadcaster_id.in_(channels) | func.lower(Clip.broadcaster_name).in_(channels)
        )
    if games:
        stmt = stmt.where(Clip.game_id.in_(games))
    if languages:
        stmt = stmt.where(Clip.language.in_(languages))
    if min_views:
        stmt = stmt.where(Clip.view_count >= min_views)
    if after is not None:
        views, seq = after
        stmt = stmt.where(
            or_(Clip.view_count < views, and_(Clip.view_count == views, Clip.seq > seq))
        )
    stmt = stmt.order_by(Clip.view_count.desc(), Clip.seq).limit(limit)
    return (await session.scalars(stmt)).all()
