"""The outbox and the delivery worker against the Discord simulator, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.accounts.secrets import seal
from clipwatch.clips.importer import parse_line, store_batch
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Delivery, NotificationRoute
from clipwatch.discord.delivery import deliver_due
from clipwatch.discord.sender import WebhookSender
from clipwatch.discord.simulator import payload_errors
from tests.discord.conftest import DiscordSim
from tests.factories import helix_clip

KEY = b"delivery-test-key"
MAX_PASSES = 50


async def make_route(
    sessionmaker: async_sessionmaker[AsyncSession], sim: DiscordSim, **settings: Any
) -> int:
    hook = sim.discord.add_webhook()
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, f"owner{hook.id[-4:]}")
        route = NotificationRoute(
            user_id=user.id,
            name="clips",
            webhook_id=hook.id,
            webhook_token_sealed=seal(KEY, hook.token),
            filters=settings.pop("filters", {}),
            template=settings.pop("template", {"name": "card"}),
            delay_seconds=0,
            batching=settings.pop("batching", True),
            enabled=True,
        )
        session.add(route)
        await session.flush()
        return route.id


async def store(
    sessionmaker: async_sessionmaker[AsyncSession], clips: list[dict[str, Any]]
) -> None:
    import orjson

    rows = [parse_line(orjson.dumps(c)) for c in clips]
    async with session_scope(sessionmaker) as session:
        await store_batch(session, rows, notify=True)


def fresh(n: int, **changes: Any) -> list[dict[str, Any]]:
    recent = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [helix_clip(id=f"Fresh{n}-{i}", created_at=recent, **changes) for i in range(n)]


async def drain(sessionmaker: async_sessionmaker[AsyncSession], sim: DiscordSim) -> list[int]:
    sender = WebhookSender(f"{sim.base}/api/v10")
    messages = []
    try:
        for _ in range(MAX_PASSES):
            report = await deliver_due(sessionmaker, sender, KEY)
            if report.messages == 0:
                break
            messages.append(report.messages)
    finally:
        await sender.aclose()
    return messages


async def deliveries(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Delivery]:
    async with session_scope(sessionmaker) as session:
        return list((await session.scalars(select(Delivery).order_by(Delivery.id))).all())


async def test_new_clips_reach_discord_exactly_once_in_few_messages(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    await make_route(sessionmaker, discord_sim)
    clips = fresh(25, title="@everyone **hi**")
    await store(sessionmaker, clips)
    await store(sessionmaker, clips)  # a re-sync stores them again: no new deliveries
    old = [helix_clip(id="Old", created_at="2020-01-01T00:00:00Z")]
    await store(sessionmaker, old)  # history is archived, not announced
    assert len(await deliveries(sessionmaker)) == 25

    await drain(sessionmaker, discord_sim)
    received = discord_sim.discord.received
    assert [len(r.payload["embeds"]) for r in received] == [10, 10, 5]
    urls = [e["url"] for r in received for e in r.payload["embeds"]]
    assert sorted(urls) == sorted(f"https://clips.twitch.tv/{c['id']}" for c in clips)
    for r in received:
        assert payload_errors(r.payload) == {}
        assert r.payload["allowed_mentions"] == {"parse": []}
    assert discord_sim.discord.rate_limited.get("webhook", 0) == 0
    assert {d.status for d in await deliveries(sessionmaker)} == {"sent"}
    assert len(await drain(sessionmaker, discord_sim)) == 0  # nothing sent twice


async def test_filters_and_unbatched_routes(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    await make_route(sessionmaker, discord_sim, filters={"min_views": 100}, batching=False)
    low = fresh(1, view_count=1)  # fresh, but under the route's minimum
    await store(sessionmaker, [*fresh(3, view_count=500), *low])
    await drain(sessionmaker, discord_sim)
    assert [len(r.payload["embeds"]) for r in discord_sim.discord.received] == [1, 1, 1]


async def test_a_deleted_webhook_disables_its_route_with_the_reason(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    route_id = await make_route(sessionmaker, discord_sim, batching=False)
    for hook in discord_sim.discord.webhooks.values():
        hook.deleted = True
    await store(sessionmaker, fresh(4))
    messages = await drain(sessionmaker, discord_sim)
    assert messages == [1]  # one try, then no retry loop
    assert list(discord_sim.discord.gone_calls.values()) == [1]  # far from a 404 ban
    async with session_scope(sessionmaker) as session:
        route = await session.get(NotificationRoute, route_id)
        assert route is not None
        assert route.enabled is False
        assert "10015" in (route.disabled_reason or "")
    assert {d.status for d in await deliveries(sessionmaker)} == {"dead"}


async def test_server_errors_are_retried_on_the_schedule(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    await make_route(sessionmaker, discord_sim)
    await store(sessionmaker, fresh(2))
    discord_sim.discord.faults.append("5xx")
    sender = WebhookSender(f"{discord_sim.base}/api/v10")
    try:
        first = await deliver_due(sessionmaker, sender, KEY)
    finally:
        await sender.aclose()
    assert first.retried == 2
    for delivery in await deliveries(sessionmaker):
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        assert delivery.next_attempt_at > datetime.now(UTC)  # the second attempt waits 2 s
    assert discord_sim.discord.received == []


async def test_a_clip_rising_over_a_routes_minimum_is_announced_once(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    wants_popular = await make_route(sessionmaker, discord_sim, filters={"min_views": 100})
    await make_route(sessionmaker, discord_sim)  # no minimum: only new clips concern it
    week_old = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    clip = helix_clip(id="Riser", created_at=week_old, view_count=50)
    await store(sessionmaker, [clip])
    assert await deliveries(sessionmaker) == []  # old, and under the minimum
    await store(sessionmaker, [{**clip, "view_count": 99}])
    assert await deliveries(sessionmaker) == []
    await store(sessionmaker, [{**clip, "view_count": 150}])
    await store(sessionmaker, [{**clip, "view_count": 3000}])
    queued = await deliveries(sessionmaker)
    assert [(d.route_id, d.clip_id) for d in queued] == [(wants_popular, "Riser")]


async def test_a_delivery_whose_clip_is_gone_is_dead_not_claimed_forever(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    route_id = await make_route(sessionmaker, discord_sim)
    await store(sessionmaker, fresh(2))
    async with session_scope(sessionmaker) as session:
        session.add(
            Delivery(
                route_id=route_id,
                clip_id="NoSuchClipInTheArchive",
                next_attempt_at=datetime.now(UTC),
                created_at=datetime.now(UTC),
            )
        )
    assert await drain(sessionmaker, discord_sim) == [1]
    by_clip = {d.clip_id: d for d in await deliveries(sessionmaker)}
    gone = by_clip.pop("NoSuchClipInTheArchive")
    assert (gone.status, gone.last_error) == ("dead", "clip not in the archive")
    assert {d.status for d in by_clip.values()} == {"sent"}
