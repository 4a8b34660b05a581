"""Trending alerts: a clip whose views grow by at least the route's threshold an hour between
two stores of its count (the sync's store, twitch/sync.py) is posted once per route, with
why; under the threshold never, clips older than a day never, the route's filters apply. On
both databases, against the Discord simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.clips.importer import KnownReferences, parse_line, store_batch
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Clip, Delivery, NotificationRoute
from clipwatch.discord.simulator import payload_errors
from clipwatch.discord.trending import MIN_SPAN, growth, trending_clip_id, trending_reason
from clipwatch.twitch import sync
from tests.discord.conftest import DiscordSim
from tests.discord.test_delivery import make_route
from tests.discord.test_digests import send
from tests.factories import helix_clip

Sessions = async_sessionmaker[AsyncSession]


def test_growth_is_views_an_hour_since_the_last_change() -> None:
    at = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    g = growth(100, at, 1300, at + timedelta(hours=1))
    assert g is not None
    assert (g.gained, g.per_hour) == (1200, 1200)
    g = growth(100, at, 300, at + timedelta(minutes=10))
    assert g is not None
    assert g.per_hour == 1200
    assert growth(100, at, 100, at + timedelta(hours=1)) is None  # no growth
    assert growth(100, at, 90, at + timedelta(hours=1)) is None  # Twitch recounted down
    assert growth(100, at, 5000, at + MIN_SPAN - timedelta(seconds=1)) is None  # too close
    assert trending_reason({"per_hour": 1234, "gained": 206, "seconds": 600}) == (
        "Trending: +1,234 views an hour (+206 in 10 min)"
    )
    assert trending_clip_id("x" * 200).startswith("trending:#")
    assert len(trending_clip_id("x" * 200)) <= 128


@given(
    before=st.integers(0, 2**53),
    after=st.integers(0, 2**53),
    seconds=st.floats(-1e7, 1e9, allow_nan=False),
)
def test_growth_never_raises_and_is_never_negative(before: int, after: int, seconds: float) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    g = growth(before, at, after, at + timedelta(seconds=seconds))
    if g is not None:
        assert g.per_hour >= 0
        assert g.gained > 0


def young(n: int, views: int, age: timedelta = timedelta(hours=2), **more: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": f"TrendClip{n:03d}",
        "title": f"trending clip {n} @everyone",
        "view_count": views,
        "created_at": (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return helix_clip(**(fields | more))


async def stored_before(
    sessionmaker: Sessions, clips: list[dict[str, Any]], ago: timedelta
) -> None:
    """Clips already in the archive, their rows last changed `ago`."""
    rows = [parse_line(orjson.dumps(c)) for c in clips]
    async with session_scope(sessionmaker) as session:
        await store_batch(session, rows, notify=False)
        await session.execute(
            update(Clip)
            .where(Clip.id.in_([c["id"] for c in clips]))
            .values(updated_at=datetime.now(UTC) - ago)
        )


async def sync_store(sessionmaker: Sessions, clips: list[dict[str, Any]]) -> None:
    """What a sync pass (a refresh) stores: Twitch's answer with the new counts."""
    async with session_scope(sessionmaker) as session:
        await sync._store(session, clips, sync.SyncReport(), KnownReferences())


async def trending_route(
    sessionmaker: Sessions, sim: DiscordSim, per_hour: int, **more: Any
) -> int:
    route_id = await make_route(sessionmaker, sim, filters=more.pop("filters", {}), **more)
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(NotificationRoute)
            .where(NotificationRoute.id == route_id)
            .values(trending_views_per_hour=per_hour)
        )
    return route_id


async def trending_rows(sessionmaker: Sessions) -> list[tuple[int | None, str]]:
    async with session_scope(sessionmaker) as session:
        stmt = select(Delivery).where(Delivery.kind == "trending").order_by(Delivery.id)
        return [(d.route_id, d.clip_id) for d in (await session.scalars(stmt)).all()]


async def test_growth_over_the_threshold_posts_once_with_why(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    route = await trending_route(sessionmaker, discord_sim, 1000)
    quiet = await make_route(sessionmaker, discord_sim)  # no threshold: no trending posts
    await stored_before(sessionmaker, [young(1, 100)], timedelta(hours=1))
    await sync_store(sessionmaker, [young(1, 1300)])
    assert await trending_rows(sessionmaker) == [(route, "trending:TrendClip001")]
    # It keeps growing: still once per route and clip.
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(Clip).values(updated_at=datetime.now(UTC) - timedelta(hours=1))
        )
    await sync_store(sessionmaker, [young(1, 5000)])
    assert await trending_rows(sessionmaker) == [(route, "trending:TrendClip001")]

    assert await send(sessionmaker, discord_sim) == 1
    assert await send(sessionmaker, discord_sim) == 0
    [message] = discord_sim.discord.received
    assert payload_errors(message.payload) == {}
    assert message.payload["allowed_mentions"] == {"parse": []}
    assert message.payload["content"].startswith("Trending: +1,19")  # ~1,200 an hour
    assert "views an hour (+1,200 in 60 min)" in message.payload["content"]
    [embed] = message.payload["embeds"]
    assert embed["url"] == "https://clips.twitch.tv/TrendClip001"
    assert {"name": "Views", "value": "5,000", "inline": True} in embed["fields"]  # now
    assert quiet not in {r for r, _ in await trending_rows(sessionmaker)}


async def test_under_the_threshold_old_clips_and_filtered_clips_never(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    await trending_route(
        sessionmaker, discord_sim, 1000, filters={"excluded_creators": ["spammer"]}
    )
    await stored_before(
        sessionmaker,
        [
            young(2, 100),
            young(3, 100, age=timedelta(days=1, minutes=5)),
            young(4, 100, creator_name="Spammer"),
            young(5, 100),
        ],
        timedelta(hours=1),
    )
    await sync_store(
        sessionmaker,
        [
            young(2, 1099),  # +999 an hour
            young(3, 90_000, age=timedelta(days=1, minutes=5)),  # older than a day
            young(4, 90_000, creator_name="Spammer"),  # the route's filters say no
            young(5, 100_000, video_id=""),
        ],
    )
    assert [c for _, c in await trending_rows(sessionmaker)] == ["trending:TrendClip005"]


async def test_a_count_stored_seconds_ago_is_not_extrapolated(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    await trending_route(sessionmaker, discord_sim, 1000)
    await stored_before(sessionmaker, [young(6, 100)], timedelta(seconds=5))
    await sync_store(sessionmaker, [young(6, 200)])  # would be 72,000 an hour
    assert await trending_rows(sessionmaker) == []
