"""Channel stats per period, and keeping them hot: the worker recomputes what a sync outdated,
so requests read them from the cache instead of aggregating a channel's clips."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.cache.manager import CacheManager
from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import channel_stats

Period = Literal["day", "week", "month", "year", "all"]
PERIODS: dict[Period, timedelta | None] = {
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
    "year": timedelta(days=365),
    "all": None,
}


def hot_key(channel_id: str, period: Period) -> str:
    return f"hot:stats:{channel_id}:{period}"


def stats_deps(channel_id: str) -> set[str]:
    """What a channel's stats are computed from: its clips, and game names."""
    return {f"ch:{channel_id}", "catalog"}


async def compute_stats(session: AsyncSession, channel_id: str, period: Period) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    span = PERIODS[period]
    since = now - span if span is not None else None
    data = await channel_stats.channel_stats(session, channel_id, since)
    return {
        "channel_id": channel_id,
        "period": period,
        "since": since.isoformat() if since else None,
        "computed_at": now.isoformat(),
        **data,
    }


async def hot_stats(
    cache: CacheManager, session: AsyncSession, channel_id: str, period: Period
) -> dict[str, Any]:
    """The channel's stats: the worker's hot copy, or computed once now."""

    async def compute() -> tuple[bytes, set[str]]:
        return orjson.dumps(await compute_stats(session, channel_id, period)), stats_deps(
            channel_id
        )

    entry = await cache.get_or_compute(hot_key(channel_id, period), compute)
    stats: dict[str, Any] = orjson.loads(entry.body)
    return stats


async def refresh_hot_stats(
    cache: CacheManager,
    sessionmaker: async_sessionmaker[AsyncSession],
    channel_ids: list[str],
    *,
    ttl: float,
) -> int:
    """Recompute every period of every channel whose stats a write outdated; how many."""
    done = 0
    for channel_id in channel_ids:
        for period in PERIODS:
            key = hot_key(channel_id, period)
            if cache.holds(key):
                continue
            stamp = dict(cache.gens)  # before reading: a write meanwhile outdates the result
            started = time.time()
            async with session_scope(sessionmaker) as session:
                stats = await compute_stats(session, channel_id, period)
            await cache.store(
                key, orjson.dumps(stats), stats_deps(channel_id), stamp, started=started, ttl=ttl
            )
            done += 1
    return done
