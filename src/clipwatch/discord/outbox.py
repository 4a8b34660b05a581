"""The outbox: deliveries are written in the transaction that stores the clips.

New clips are announced when created in the last `FRESH`: a backfill or an import of
history fills the archive without flooding Discord with years-old clips. A stored clip
whose views rise over a route's minimum (a refresh saw it) is announced to that route then,
whatever its age: the unique (route, clip) key keeps it to once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import NotificationRoute
from clipwatch.db.repositories import notifications
from clipwatch.discord.routing import ClipFacts, RouteFilters, route_matches

FRESH = timedelta(hours=24)


def filters_of(route: NotificationRoute) -> RouteFilters:
    f = route.filters or {}
    return RouteFilters(
        channels=frozenset(str(c).lower() for c in f.get("channels", [])),
        games=frozenset(str(g) for g in f.get("games", [])),
        languages=frozenset(str(x) for x in f.get("languages", [])),
        min_views=int(f.get("min_views") or 0),
        title_keywords=tuple(str(k) for k in f.get("title_keywords", [])),
        excluded_creators=frozenset(str(c).lower() for c in f.get("excluded_creators", [])),
        featured_only=bool(f.get("featured_only", False)),
    )


def facts_of(row: dict[str, Any]) -> ClipFacts:
    return ClipFacts(
        broadcaster_id=row["broadcaster_id"],
        broadcaster_login=(row.get("broadcaster_name") or "").lower() or None,
        game_id=row.get("game_id"),
        language=row.get("language") or "",
        view_count=int(row.get("view_count") or 0),
        title=row.get("title") or "",
        creator_id=row.get("creator_id") or "",
        creator_name=row.get("creator_name") or "",
        is_featured=bool(row.get("is_featured")),
    )


async def enqueue_new_clips(
    session: AsyncSession, rows: Iterable[dict[str, Any]], *, now: datetime | None = None
) -> int:
    """Deliveries for the routes that want these newly stored clips; how many."""
    now = now or datetime.now(UTC)
    fresh = [r for r in rows if r["created_at"] >= now - FRESH]
    if not fresh:
        return 0
    routes: Sequence[NotificationRoute] = await notifications.enabled_routes(session)
    outbox = [
        {
            "route_id": route.id,
            "clip_id": row["id"],
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now + timedelta(seconds=route.delay_seconds),
            "created_at": now,
        }
        for route in routes
        for row in fresh
        if route_matches(filters_of(route), facts_of(row))
    ]
    await notifications.add_deliveries(session, outbox)
    return len(outbox)


async def enqueue_crossings(
    session: AsyncSession,
    risen: Sequence[tuple[dict[str, Any], int]],
    *,
    now: datetime | None = None,
) -> int:
    """Deliveries for routes whose minimum views these clips just reached (row, views before)."""
    if not risen:
        return 0
    now = now or datetime.now(UTC)
    routes = [r for r in await notifications.enabled_routes(session) if filters_of(r).min_views]
    outbox = [
        {
            "route_id": route.id,
            "clip_id": row["id"],
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now + timedelta(seconds=route.delay_seconds),
            "created_at": now,
        }
        for route in routes
        for row, before in risen
        if before < filters_of(route).min_views <= row["view_count"]
        and route_matches(filters_of(route), facts_of(row))
    ]
    await notifications.add_deliveries(session, outbox)
    return len(outbox)
