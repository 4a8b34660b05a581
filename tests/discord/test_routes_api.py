"""Routes and deliveries through the API: validation, secrecy, ownership, the test send."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Delivery
from tests.api.test_accounts import bearer, make_user
from tests.conftest import app_client
from tests.discord.conftest import DiscordSim


async def test_routes_are_validated_secret_and_owned(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook()
    url = hook.pasted_url
    _, alice = await make_user(sessionmaker, "alice")
    _, bob = await make_user(sessionmaker, "bob")
    config = settings.model_copy(update={"discord_api_url": f"{discord_sim.base}/api/v10"})
    async with app_client(config) as client:
        for bad in [
            url.replace("discord.com", "evil.example"),
            url.replace("https://discord.com", "https://192.168.1.10"),
            url.replace("https://", "http://"),
        ]:
            answer = await client.post(
                "/api/v1/routes", json={"name": "x", "webhook_url": bad}, headers=bearer(alice)
            )
            assert answer.status_code == 422, bad
            assert hook.token not in answer.text
        broken = {"custom": True, "title": "{{ title", "description": ""}
        answer = await client.post(
            "/api/v1/routes",
            json={"name": "x", "webhook_url": url, "template": broken},
            headers=bearer(alice),
        )
        assert answer.status_code == 422

        created = await client.post(
            "/api/v1/routes",
            json={"name": "highlights", "webhook_url": url, "filters": {"min_views": 10}},
            headers=bearer(alice),
        )
        assert created.status_code == 201, created.text
        assert hook.token not in created.text
        route = created.json()
        assert route["filters"]["min_views"] == 10
        listed = await client.get("/api/v1/routes", headers=bearer(alice))
        assert [r["id"] for r in listed.json()["data"]] == [route["id"]]
        assert hook.token not in listed.text

        path = f"/api/v1/routes/{route['id']}"
        assert (await client.get(path, headers=bearer(bob))).status_code == 404
        assert (
            await client.patch(path, json={"name": "mine"}, headers=bearer(bob))
        ).status_code == 404
        assert (await client.post(f"{path}/test", headers=bearer(bob))).status_code == 404
        assert (await client.delete(path, headers=bearer(bob))).status_code == 404
        assert (await client.get("/api/v1/routes", headers=bearer(bob))).json()["data"] == []

        sent = await client.post(f"{path}/test", headers=bearer(alice))
        assert sent.json()["sent"] is True
        assert len(discord_sim.discord.received) == 1

        renamed = await client.patch(path, json={"name": "renamed"}, headers=bearer(alice))
        assert renamed.json()["name"] == "renamed"
        assert (await client.delete(path, headers=bearer(alice))).status_code == 204
        assert (await client.get(path, headers=bearer(alice))).status_code == 404


async def test_dead_deliveries_can_be_retried_once(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook()
    url = hook.pasted_url
    _, alice = await make_user(sessionmaker, "alice")
    _, bob = await make_user(sessionmaker, "bob")
    async with app_client(settings) as client:
        route = (
            await client.post(
                "/api/v1/routes", json={"name": "r", "webhook_url": url}, headers=bearer(alice)
            )
        ).json()
        async with session_scope(sessionmaker) as session:
            dead = Delivery(
                route_id=route["id"],
                clip_id="SomeClip",
                status="dead",
                attempts=8,
                next_attempt_at=datetime.now(UTC),
                last_error="Discord answered 502",
                created_at=datetime.now(UTC),
            )
            session.add(dead)
            await session.flush()
            dead_id = dead.id
        listed = await client.get("/api/v1/deliveries?status=dead", headers=bearer(alice))
        assert [d["id"] for d in listed.json()["data"]] == [dead_id]
        assert (await client.get("/api/v1/deliveries", headers=bearer(bob))).json()["data"] == []
        retry = f"/api/v1/deliveries/{dead_id}/retry"
        assert (await client.post(retry, headers=bearer(bob))).status_code == 404
        again = await client.post(retry, headers=bearer(alice))
        assert again.status_code == 200
        assert (again.json()["status"], again.json()["attempts"]) == ("pending", 0)
        assert (await client.post(retry, headers=bearer(alice))).status_code == 409


async def test_null_clears_an_option_and_leaves_the_rest(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    """PATCH with `null`: issue 15's options are cleared (a thread, a trending threshold, the
    pings); any other field named `null` stays as it was."""
    hook = discord_sim.discord.add_webhook()
    _, alice = await make_user(sessionmaker, "alice")
    config = settings.model_copy(update={"discord_api_url": f"{discord_sim.base}/api/v10"})
    set_up = {
        "name": "thread",
        "webhook_url": hook.pasted_url,
        "thread_id": "123456789012345678",
        "trending_views_per_hour": 500,
        "role_ids": ["223456789012345678"],
        "on_deleted": "edit",
        "username": "Clip Bot",
    }
    async with app_client(config) as client:
        created = await client.post("/api/v1/routes", json=set_up, headers=bearer(alice))
        assert created.status_code == 201, created.text
        path = f"/api/v1/routes/{created.json()['id']}"
        cleared = await client.patch(
            path,
            json={
                "thread_id": None,
                "trending_views_per_hour": None,
                "role_ids": None,
                "on_deleted": None,
                "name": None,
            },
            headers=bearer(alice),
        )
        assert cleared.status_code == 200, cleared.text
        route = cleared.json()
    assert route["thread_id"] is None
    assert route["trending_views_per_hour"] is None
    assert route["role_ids"] == []
    assert route["on_deleted"] == "keep"
    assert route["name"] == "thread"  # not an option: null leaves it
    assert route["username"] == "Clip Bot"  # not named: unchanged
