"""Trending alerts: a route with `trending_views_per_hour: N` posts a clip (once) when its
views grow by at least N an hour between two stores of its view count.

The sync stores the young clips' view counts every pass (twitch/sync.py; the last day's
clips are refreshed every pass). Before a batch is stored, `read_baseline` reads the stored
count and `updated_at` (when the row last changed) of its clips younger than a day; after
it, `queue_trending` compares: growth = views gained / time since that change. Rules:
- clips created more than a day ago are never trending;
- a span under `MIN_SPAN` (the same pass reading a clip twice, seconds apart) is not
  measured, as a few views in seconds would extrapolate to thousands an hour;
- the route's filters apply (minimum views included), to the clip as it is now;
- one outbox row per route and clip (kind `trending`, clip_id `trending:<clip id>`, the
  unique (route, clip_id)), in the transaction that stores the counts; its message is built
  when sent, saying why ("+1,234 views an hour").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import NotificationRoute
from clipwatch.db.repositories import moderation, notifications
from clipwatch.discord.outbox import facts_of, filters_of
from clipwatch.discord.routing import route_matches
from clipwatch.monitoring.metrics import ROUTE_POSTS

MAX_AGE = timedelta(days=1)
MIN_SPAN = timedelta(seconds=30)
CLIP_ID_ROOM = 128 - len("trending:")


@dataclass(frozen=True)
class Growth:
    gained: int
    span: timedelta
    per_hour: int


def growth(before: int, since: datetime, after: int, now: datetime) -> Growth | None:
    """Views gained an hour since the count was `before` at `since` (None: not measurable,
    or no growth)."""
    span = now - since
    if span < MIN_SPAN or after <= before:
        return None
    gained = after - before
    return Growth(gained, span, int(gained * 3600 / span.total_seconds()))


def trending_clip_id(clip_id: str) -> str:
    if len(clip_id) <= CLIP_ID_ROOM:
        return f"trending:{clip_id}"
    # Twitch ids are far shorter; the column is not: a longer one is keyed by its hash.
    return f"trending:#{hashlib.sha256(clip_id.encode()).hexdigest()}"


@dataclass(frozen=True)
class Baseline:
    routes: Sequence[NotificationRoute]
    counts: Mapping[str, tuple[int, datetime]]  # clip id -> (views, when the row changed)


async def read_baseline(
    session: AsyncSession, rows: Mapping[str, Mapping[str, Any]], now: datetime | None = None
) -> Baseline | None:
    """Before a batch is stored: the stored counts of its young clips (None: no route
    asks for trending alerts, or no clip is young enough)."""
    now = now or datetime.now(UTC)
    young = [i for i, row in rows.items() if row["created_at"] >= now - MAX_AGE]
    if not young:
        return None
    routes = await notifications.trending_routes(session)
    if not routes:
        return None
    return Baseline(routes, await notifications.views_and_times(session, young))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def queue_trending(
    session: AsyncSession,
    baseline: Baseline | None,
    rows: Mapping[str, Mapping[str, Any]],
    now: datetime | None = None,
) -> int:
    """After the batch is stored: a `trending` row for each route and each clip that grew
    past the route's threshold; how many rows were new."""
    if baseline is None:
        return 0
    now = now or datetime.now(UTC)
    grown: list[tuple[Mapping[str, Any], Growth]] = []
    for clip_id, (before, since) in baseline.counts.items():
        row = rows.get(clip_id)
        if row is None:
            continue
        measured = growth(before, _aware(since), int(row["view_count"]), now)
        if measured is not None:
            grown.append((row, measured))
    if grown:  # a clip a moderator hid is never posted
        hidden = await moderation.hidden_ids(session, (str(row["id"]) for row, _ in grown))
        grown = [(row, g) for row, g in grown if row["id"] not in hidden]
    outbox = []
    for route in baseline.routes:
        threshold = route.trending_views_per_hour or 0
        filters = filters_of(route)
        outbox += [
            {
                "route_id": route.id,
                "clip_id": trending_clip_id(row["id"]),
                "kind": "trending",
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now + timedelta(seconds=route.delay_seconds or 0),
                "created_at": now,
                "payload": {
                    "clip": row["id"],
                    "per_hour": g.per_hour,
                    "gained": g.gained,
                    "seconds": int(g.span.total_seconds()),
                },
            }
            for row, g in grown
            if threshold and g.per_hour >= threshold and route_matches(filters, facts_of(dict(row)))
        ]
    queued = await notifications.add_deliveries_counted(session, outbox)
    if queued:
        ROUTE_POSTS.labels("trending", "queued").inc(queued)
    return queued


def trending_reason(payload: Mapping[str, Any]) -> str:
    """Why the clip is posted, e.g. "Trending: +1,234 views an hour (+206 in 10 min)"."""
    per_hour = int(payload.get("per_hour") or 0)
    gained = int(payload.get("gained") or 0)
    seconds = int(payload.get("seconds") or 0)
    span = f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"
    return f"Trending: +{per_hour:,} views an hour (+{gained:,} in {span})"
