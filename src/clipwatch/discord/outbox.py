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


async def enqueue(
    session: AsyncSession,
    new: Iterable[dict[str, Any]],
    risen: Sequence[tuple[dict[str, Any], int]] = (),
    *,
    now: datetime | None = None,
) -> int:
    """Deliveries for the routes that want these clips; how many.

    `new`: clips just inserted (announced when fresh). `risen`: stored clips whose views
    went up, with their views before (announced to routes whose minimum they just reached).
    """
    now = now or datetime.now(UTC)
    fresh = [row for row in new if row["created_at"] >= now - FRESH]
    if not fresh and not risen:
        return 0
    outbox = []
    for route in await notifications.enabled_routes(session):
        if route.kind == "digest":  # posts its period's top clips on its schedule instead
            continue
        filters = filters_of(route)
        wanted = [row for row in fresh if route_matches(filters, facts_of(row))]
        if filters.min_views:
            wanted += [
                row
                for row, before in risen
                if before < filters.min_views <= row["view_count"]
                and route_matches(filters, facts_of(row))
            ]
        due = now + timedelta(seconds=route.delay_seconds)
        outbox += [
            {
                "route_id": route.id,
                "clip_id": row["id"],
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": due,
                "created_at": now,
            }
            for row in wanted
        ]
    await notifications.add_deliveries(session, outbox)
    return len(outbox)
