"""`POST /routes/{id}/test` through the delivery's sender: a gone webhook disables the route at
once, a disabled route sends nothing, tests are limited per user, and the message is marked
as a test and shows a real clip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import redis.asyncio as redis_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.discord.messages import SAMPLE
from clipwatch.discord.simulator import SimWebhook
from tests.api.test_accounts import bearer, make_user
from tests.conftest import app_client
from tests.discord.conftest import DiscordSim
from tests.discord.test_delivery import fresh, store
from tests.factories import helix_clip

MARK = "Test message from clipwatch for route"


@asynccontextmanager
async def served(
    settings: Settings, sim: DiscordSim, redis_url: str, prefix: str, **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with Redis (its limiter and Discord buckets) and the Discord simulator."""
    config = settings.model_copy(
        update={
            "discord_api_url": f"{sim.base}/api/v10",
            "redis_url": redis_url,
            "redis_key_prefix": prefix,
            **changes,
        }
    )
    async with app_client(config) as client:
        yield client


async def add_route(
    client: httpx.AsyncClient, token: str, hook: SimWebhook, **values: Any
) -> dict[str, Any]:
    body = {"name": "clips", "webhook_url": hook.pasted_url, **values}
    answer = await client.post("/api/v1/routes", json=body, headers=bearer(token))
    assert answer.status_code == 201, answer.text
    route: dict[str, Any] = answer.json()
    return route


def calls_to(sim: DiscordSim, hook: SimWebhook) -> int:
    return sum(1 for r in sim.discord.requests if r.webhook_id == hook.id)


async def test_a_deleted_webhook_disables_the_route_at_the_first_10015(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
    redis_url: str,
    redis_prefix: str,
) -> None:
    hook = discord_sim.discord.add_webhook()
    _, alice = await make_user(sessionmaker, "alice")
    limits = {"rate_limit_route_test": "100/minute"}  # this test is about the route, not limits
    async with served(settings, discord_sim, redis_url, redis_prefix, **limits) as client:
        route = await add_route(client, alice, hook)
        hook.deleted = True
        path = f"/api/v1/routes/{route['id']}"
        first = await client.post(f"{path}/test", headers=bearer(alice))
        assert first.status_code == 200
        assert first.json()["sent"] is False
        assert first.json()["route_enabled"] is False
        stored = (await client.get(path, headers=bearer(alice))).json()
        assert stored["enabled"] is False
        # The reason exactly as a delivery records it.
        assert stored["disabled_reason"] == "Discord says Unknown Webhook (code 10015)"
        for _ in range(10):
            again = await client.post(f"{path}/test", headers=bearer(alice))
            assert again.status_code == 409
            assert "disabled" in again.json()["detail"]
        problems = (await client.get("/api/v1/status")).json()["problems"]
        assert problems == [
            f"route {route['id']} ({route['name']}) disabled: "
            "Discord says Unknown Webhook (code 10015)"
        ]
    assert calls_to(discord_sim, hook) == 1  # the simulator's log: one call, then silence
    assert discord_sim.discord.received == []


async def test_route_tests_are_limited_per_user(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
    redis_url: str,
    redis_prefix: str,
) -> None:
    hook, other = discord_sim.discord.add_webhook(), discord_sim.discord.add_webhook()
    _, alice = await make_user(sessionmaker, "alice")
    _, bob = await make_user(sessionmaker, "bob")
    async with served(settings, discord_sim, redis_url, redis_prefix) as client:
        mine = await add_route(client, alice, hook)
        theirs = await add_route(client, bob, other)
        test = f"/api/v1/routes/{mine['id']}/test"
        answers = [await client.post(test, headers=bearer(alice)) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert answers[-1].headers["content-type"].startswith("application/problem+json")
        bobs = await client.post(f"/api/v1/routes/{theirs['id']}/test", headers=bearer(bob))
        assert bobs.status_code == 200  # another user's tests are counted apart
    assert calls_to(discord_sim, hook) == 5


async def test_the_message_is_marked_and_shows_the_newest_matching_clip(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
    redis_url: str,
    redis_prefix: str,
) -> None:
    await store(
        sessionmaker,
        [
            helix_clip(id="OldPopular", created_at="2026-01-01T00:00:00Z", view_count=500),
            helix_clip(id="NewPopular", created_at="2026-03-01T00:00:00Z", view_count=900),
            helix_clip(id="NewestQuiet", created_at="2026-04-01T00:00:00Z", view_count=3),
        ],
    )
    hook = discord_sim.discord.add_webhook()
    _, alice = await make_user(sessionmaker, "alice")
    async with served(settings, discord_sim, redis_url, redis_prefix) as client:
        popular = await add_route(
            client, alice, hook, name="@everyone popular", filters={"min_views": 100}
        )
        never = await add_route(client, alice, hook, name="never", filters={"min_views": 10**9})
        shown = await client.post(f"/api/v1/routes/{popular['id']}/test", headers=bearer(alice))
        sample = await client.post(f"/api/v1/routes/{never['id']}/test", headers=bearer(alice))
    assert (shown.json()["sent"], shown.json()["clip_id"]) == (True, "NewPopular")
    assert (sample.json()["sent"], sample.json()["clip_id"]) == (True, None)
    first, second = (r.payload for r in discord_sim.discord.received)
    assert first["content"] == f"{MARK} “@\u200beveryone popular”"  # marked, and pings nobody
    assert first["allowed_mentions"] == {"parse": []}
    assert [e["url"] for e in first["embeds"]] == ["https://clips.twitch.tv/NewPopular"]
    assert second["content"].startswith(MARK)
    assert [e["url"] for e in second["embeds"]] == [SAMPLE.url]


async def test_a_route_test_waits_out_a_ban_the_worker_met(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
    redis_url: str,
    redis_prefix: str,
) -> None:
    """The ban is in the shared view (as another process would have recorded it): the test
    asks Discord nothing."""
    await store(sessionmaker, fresh(1))
    hook = discord_sim.discord.add_webhook()
    _, alice = await make_user(sessionmaker, "alice")
    client_redis = redis_asyncio.from_url(redis_url)
    now = float((await client_redis.time())[0])
    await client_redis.hset(f"{redis_prefix}:discord:service", "ban_until", now + 600)
    await client_redis.aclose()
    async with served(settings, discord_sim, redis_url, redis_prefix) as client:
        route = await add_route(client, alice, hook)
        answer = await client.post(f"/api/v1/routes/{route['id']}/test", headers=bearer(alice))
    assert answer.status_code == 200
    assert answer.json()["sent"] is False
    assert "ban" in answer.json()["detail"]
    assert calls_to(discord_sim, hook) == 0


async def test_a_template_failing_on_the_test_clip_sends_a_card_and_tells_the_route(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
    redis_url: str,
    redis_prefix: str,
) -> None:
    zero = helix_clip(id="Zero", created_at="2026-03-01T00:00:00Z", view_count=777)
    await store(sessionmaker, [zero])
    hook = discord_sim.discord.add_webhook()
    _, alice = await make_user(sessionmaker, "alice")
    template = {"custom": True, "title": "{{ title }}", "description": "{{ 1 / (views - 777) }}"}
    async with served(settings, discord_sim, redis_url, redis_prefix) as client:
        route = await add_route(client, alice, hook, template=template)
        tested = await client.post(f"/api/v1/routes/{route['id']}/test", headers=bearer(alice))
        stored = (await client.get(f"/api/v1/routes/{route['id']}", headers=bearer(alice))).json()
    assert (tested.json()["sent"], tested.json()["clip_id"]) == (True, "Zero")
    [embed] = discord_sim.discord.received[0].payload["embeds"]
    assert "fields" in embed  # the card
    assert "ZeroDivisionError" in stored["last_error"]
    assert "clip Zero; sent with the card template instead" in stored["last_error"]
    assert stored["error_count"] == 1
