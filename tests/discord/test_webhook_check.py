"""A route's webhook is checked with Discord (GET /webhooks/{id}/{token}) before it is saved:
a deleted webhook or a wrong token is a 422 on webhook_url and nothing is saved; Discord
down is a 503 with Retry-After and nothing is saved; otherwise the route keeps the webhook's
channel, server and name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import NotificationRoute
from tests.api.test_accounts import bearer, make_user
from tests.conftest import app_client
from tests.discord.conftest import DiscordSim


@asynccontextmanager
async def checking(settings: Settings, sim: DiscordSim) -> AsyncIterator[httpx.AsyncClient]:
    config = settings.model_copy(
        update={"discord_api_url": f"{sim.base}/api/v10", "webhook_check": True}
    )
    async with app_client(config) as client:
        yield client


async def route_count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with session_scope(sessionmaker) as session:
        return int(
            (await session.execute(select(func.count()).select_from(NotificationRoute))).scalar()
            or 0
        )


def gets(sim: DiscordSim) -> int:
    return sum(1 for r in sim.discord.requests if r.kind == "get_webhook")


async def test_a_good_webhook_is_saved_with_what_discord_says(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    discord_sim.discord.add_channel("900000000000000077", "800000000000000055")
    hook = discord_sim.discord.add_webhook("900000000000000077", name="Clip feed")
    _, alice = await make_user(sessionmaker, "alice")
    async with checking(settings, discord_sim) as client:
        answer = await client.post(
            "/api/v1/routes",
            json={"name": "r", "webhook_url": hook.pasted_url},
            headers=bearer(alice),
        )
        assert answer.status_code == 201, answer.text
        route = answer.json()
        assert route["webhook_channel_id"] == "900000000000000077"
        assert route["webhook_guild_id"] == "800000000000000055"
        assert route["webhook_name"] == "Clip feed"
        assert route["webhook_checked_at"] is not None
        assert hook.token not in answer.text
        assert gets(discord_sim) == 1
        # A change that keeps the webhook asks Discord nothing.
        renamed = await client.patch(
            f"/api/v1/routes/{route['id']}", json={"name": "x"}, headers=bearer(alice)
        )
        assert renamed.status_code == 200
        assert gets(discord_sim) == 1
    async with session_scope(sessionmaker) as session:
        stored = await session.get(NotificationRoute, route["id"])
        assert stored is not None
        assert stored.webhook_checked_at is not None


async def test_a_deleted_webhook_or_wrong_token_is_422_and_nothing_is_saved(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    deleted = discord_sim.discord.add_webhook()
    deleted.deleted = True
    good = discord_sim.discord.add_webhook()
    wrong = good.pasted_url[:-4] + ("aaaa" if not good.pasted_url.endswith("aaaa") else "bbbb")
    _, alice = await make_user(sessionmaker, "alice")
    async with checking(settings, discord_sim) as client:
        for url in (deleted.pasted_url, wrong):
            answer = await client.post(
                "/api/v1/routes", json={"name": "r", "webhook_url": url}, headers=bearer(alice)
            )
            assert answer.status_code == 422, answer.text
            problem = answer.json()
            assert problem["errors"][0]["field"] == "webhook_url"
            assert "does not exist or its token is wrong" in problem["detail"]
            assert good.token not in answer.text
            assert deleted.token not in answer.text
        assert await route_count(sessionmaker) == 0

        # An update to a deleted webhook is refused too, and the route keeps its own.
        created = await client.post(
            "/api/v1/routes",
            json={"name": "r", "webhook_url": good.pasted_url},
            headers=bearer(alice),
        )
        assert created.status_code == 201
        path = f"/api/v1/routes/{created.json()['id']}"
        moved = await client.patch(
            path, json={"webhook_url": deleted.pasted_url}, headers=bearer(alice)
        )
        assert moved.status_code == 422, moved.text
        kept = await client.get(path, headers=bearer(alice))
        assert good.id in kept.json()["webhook"]


async def test_discord_down_is_503_with_retry_after_and_nothing_is_saved(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook()
    _, alice = await make_user(sessionmaker, "alice")
    async with checking(settings, discord_sim) as client:
        discord_sim.discord.outage(60)
        answer = await client.post(
            "/api/v1/routes",
            json={"name": "r", "webhook_url": hook.pasted_url},
            headers=bearer(alice),
        )
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["Retry-After"]) >= 1
        assert hook.token not in answer.text
        assert await route_count(sessionmaker) == 0
    # Discord unreachable altogether (nothing listens there).
    gone = settings.model_copy(
        update={"discord_api_url": "http://127.0.0.1:9/api/v10", "webhook_check": True}
    )
    async with app_client(gone) as client:
        answer = await client.post(
            "/api/v1/routes",
            json={"name": "r", "webhook_url": hook.pasted_url},
            headers=bearer(alice),
        )
        assert answer.status_code == 503, answer.text
        assert "Retry-After" in answer.headers
    assert await route_count(sessionmaker) == 0
