"""The Discord simulator's bot routes over HTTP on loopback: `POST|GET
/channels/{id}/webhooks` with `Authorization: Bot <token>`, Manage Webhooks, name rules, the
15-webhook cap, a per-channel bucket; webhooks carry their channel's server."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from clipwatch.discord.simulator import WEBHOOK_LIMIT
from tests.discord.conftest import DiscordSim

BOT = {"Authorization": "Bot sim-bot-token"}
CHANNEL = "900000000000000321"
GUILD = "800000000000000321"


async def create(
    sim: DiscordSim, body: Any, *, headers: dict[str, str] = BOT, channel: str = CHANNEL
) -> httpx.Response:
    sim.discord.route_hits.clear()  # not about the bucket (test_the_bucket_... is)
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{sim.base}/api/v10/channels/{channel}/webhooks", json=body, headers=headers
        )


async def listed(sim: DiscordSim, channel: str = CHANNEL) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(f"{sim.base}/api/v10/channels/{channel}/webhooks", headers=BOT)


async def test_the_bot_creates_a_webhook_that_works(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    sim.add_channel(CHANNEL, GUILD)
    answer = await create(discord_sim, {"name": "clipwatch"})
    assert answer.status_code == 200
    made = answer.json()
    assert (made["type"], made["name"], made["channel_id"], made["guild_id"]) == (
        1,
        "clipwatch",
        CHANNEL,
        GUILD,
    )
    assert made["token"]
    assert made["user"]["bot"] is True
    async with httpx.AsyncClient() as http:
        url = f"{discord_sim.base}/api/v10/webhooks/{made['id']}/{made['token']}"
        checked = await http.get(url)
        sent = await http.post(url, json={"content": "hi"}, params={"wait": "true"})
    assert checked.json()["guild_id"] == GUILD
    assert sent.json()["channel_id"] == CHANNEL
    assert [(r.kind, r.channel_id) for r in sim.requests] == [
        ("create_webhook", CHANNEL),
        ("get_webhook", ""),
        ("execute", ""),
    ]


async def test_the_list_shows_tokens_of_the_bots_own_webhooks_only(
    discord_sim: DiscordSim,
) -> None:
    sim = discord_sim.discord
    sim.add_channel(CHANNEL, GUILD)
    someone = sim.add_webhook(CHANNEL, name="someone's")
    gone = sim.add_webhook(CHANNEL)
    gone.deleted = True
    mine = (await create(discord_sim, {"name": "clipwatch"})).json()
    sim.add_webhook("900000000000000999")  # another channel's
    answer = await listed(discord_sim)
    assert answer.status_code == 200
    by_id = {h["id"]: h for h in answer.json()}
    assert set(by_id) == {someone.id, mine["id"]}
    assert "token" not in by_id[someone.id]
    assert by_id[someone.id]["user"]["id"] != by_id[mine["id"]]["user"]["id"]
    assert by_id[mine["id"]]["token"] == mine["token"]


@pytest.mark.parametrize("auth", [None, "Bot wrong", "sim-bot-token", "Bearer sim-bot-token"])
async def test_no_bot_token_is_401(discord_sim: DiscordSim, auth: str | None) -> None:
    discord_sim.discord.add_channel(CHANNEL, GUILD)
    headers = {"Authorization": auth} if auth else {}
    answer = await create(discord_sim, {"name": "clipwatch"}, headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {"message": "401: Unauthorized", "code": 0}
    assert discord_sim.discord.channel_webhooks(CHANNEL) == []


async def test_without_manage_webhooks_403_and_unknown_channel_404(
    discord_sim: DiscordSim,
) -> None:
    sim = discord_sim.discord
    sim.add_channel(CHANNEL, GUILD)
    sim.deny_manage_webhooks(CHANNEL)
    refused = await create(discord_sim, {"name": "clipwatch"})
    assert (refused.status_code, refused.json()["code"]) == (403, 50013)
    assert (await listed(discord_sim)).status_code == 403
    unknown = await create(discord_sim, {"name": "clipwatch"}, channel="900000000000000404")
    assert (unknown.status_code, unknown.json()["code"]) == (404, 10003)
    assert sim.channel_webhooks(CHANNEL) == []


@pytest.mark.parametrize(
    "body",
    [{"name": "Clyde"}, {"name": "discord clips"}, {"name": "x" * 81}, {"name": ""}, {}, [1]],
)
async def test_webhook_names_follow_discords_rules(discord_sim: DiscordSim, body: Any) -> None:
    discord_sim.discord.add_channel(CHANNEL, GUILD)
    answer = await create(discord_sim, body)
    assert (answer.status_code, answer.json()["code"]) == (400, 50035)
    assert discord_sim.discord.channel_webhooks(CHANNEL) == []


async def test_a_channel_holds_at_most_15_webhooks(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    sim.add_channel(CHANNEL, GUILD)
    for _ in range(14):
        sim.add_webhook(CHANNEL)
    assert (await create(discord_sim, {"name": "fifteenth"})).status_code == 200
    full = await create(discord_sim, {"name": "sixteenth"})
    assert (full.status_code, full.json()["code"]) == (400, 30007)
    assert len(sim.channel_webhooks(CHANNEL)) == 15


async def test_the_bucket_of_a_channels_webhook_route(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    sim.add_channel(CHANNEL, GUILD)
    frozen = time.time()
    sim.clock = lambda: frozen  # all in one window however slowly this machine answers
    async with httpx.AsyncClient() as http:
        answers = [
            await http.get(f"{discord_sim.base}/api/v10/channels/{CHANNEL}/webhooks", headers=BOT)
            for _ in range(WEBHOOK_LIMIT + 1)
        ]
    assert [a.status_code for a in answers] == [200] * WEBHOOK_LIMIT + [429]
    assert answers[0].headers["x-ratelimit-limit"] == str(WEBHOOK_LIMIT)
    assert answers[-1].json()["retry_after"] > 0
    assert sim.rate_limited == {"bot": 1}


async def test_channels_and_forums_through_the_control_endpoints(discord_sim: DiscordSim) -> None:
    async with httpx.AsyncClient(base_url=discord_sim.base) as http:
        channel = await http.post(
            "/_sim/channels",
            params={"channel_id": CHANNEL, "guild_id": GUILD, "forum": "true"},
        )
        assert channel.json() == {"id": CHANNEL, "guild_id": GUILD, "forum": True}
        hook = (await http.post("/_sim/webhooks", params={"channel_id": CHANNEL})).json()
        url = f"/api/v10/webhooks/{hook['id']}/{hook['token']}"
        assert (await http.get(url)).json()["guild_id"] == GUILD
        refused = await http.post(url, json={"content": "x"})
        assert refused.json()["code"] == 220001  # a forum's webhook
        await http.post("/_sim/deny-manage-webhooks", params={"channel_id": CHANNEL})
        assert (
            await http.get(f"/api/v10/channels/{CHANNEL}/webhooks", headers=BOT)
        ).status_code == 403
        assert (await http.post("/_sim/outage", params={"seconds": "x"})).status_code == 400
