"""Sending to the Discord simulator: limits followed, outcomes right, nobody pinged."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from clipwatch.discord.messages import SAMPLE, build_messages
from clipwatch.discord.sender import (
    BAN_PAUSE_S,
    Gone,
    Rejected,
    RetryLater,
    Sent,
    WebhookSender,
)
from clipwatch.discord.simulator import WEBHOOK_LIMIT, DiscordSimulator
from clipwatch.discord.webhook_url import WebhookTarget
from clipwatch.simhttp import LoopbackServer
from tests.discord.conftest import DiscordSim


def target_of(sim: DiscordSim) -> WebhookTarget:
    hook = sim.discord.add_webhook()
    return WebhookTarget(hook.id, hook.token)


async def test_a_burst_follows_the_bucket_without_a_429(discord_sim: DiscordSim) -> None:
    target = target_of(discord_sim)
    sender = WebhookSender(f"{discord_sim.base}/api/v10")
    [payload] = build_messages("card", [SAMPLE])
    try:
        outcomes = [await sender.send(target, payload) for _ in range(WEBHOOK_LIMIT * 2 + 2)]
    finally:
        await sender.aclose()
    assert all(isinstance(o, Sent) and o.message_id for o in outcomes)
    assert len(discord_sim.discord.received) == len(outcomes)
    assert discord_sim.discord.rate_limited.get("webhook", 0) == 0
    assert sender.stats.waited_s > 0  # it waited for the bucket instead of hitting it


async def test_concurrent_senders_to_one_webhook_stay_in_line(discord_sim: DiscordSim) -> None:
    target = target_of(discord_sim)
    sender = WebhookSender(f"{discord_sim.base}/api/v10")
    [payload] = build_messages("compact", [SAMPLE])
    try:
        outcomes = await asyncio.gather(*(sender.send(target, payload) for _ in range(8)))
    finally:
        await sender.aclose()
    assert all(isinstance(o, Sent) for o in outcomes)
    assert discord_sim.discord.rate_limited.get("webhook", 0) <= 1


async def test_outcomes_for_gone_rejected_and_failing(discord_sim: DiscordSim) -> None:
    sender = WebhookSender(f"{discord_sim.base}/api/v10")
    [payload] = build_messages("card", [SAMPLE])
    try:
        hook = discord_sim.discord.add_webhook()
        hook.deleted = True
        assert isinstance(await sender.send(WebhookTarget(hook.id, hook.token), payload), Gone)
        live = discord_sim.discord.add_webhook()
        wrong = await sender.send(WebhookTarget(live.id, "x" * 68), payload)
        assert isinstance(wrong, Gone)
        too_big = {"embeds": [{"title": "x" * 300}], "allowed_mentions": {"parse": []}}
        assert isinstance(await sender.send(WebhookTarget(live.id, live.token), too_big), Rejected)
        discord_sim.discord.faults.append("5xx")
        assert isinstance(
            await sender.send(WebhookTarget(live.id, live.token), payload), RetryLater
        )
        discord_sim.discord.faults.append("429_no_headers")
        assert isinstance(await sender.send(WebhookTarget(live.id, live.token), payload), Sent)
    finally:
        await sender.aclose()


async def test_everyone_is_delivered_literally_and_pings_nobody(discord_sim: DiscordSim) -> None:
    from dataclasses import replace

    target = target_of(discord_sim)
    sender = WebhookSender(f"{discord_sim.base}/api/v10")
    [payload] = build_messages("card", [replace(SAMPLE, title="@everyone **hi**")])
    try:
        assert isinstance(await sender.send(target, payload), Sent)
    finally:
        await sender.aclose()
    [received] = discord_sim.discord.received
    assert received.payload["allowed_mentions"] == {"parse": []}
    assert received.payload["embeds"][0]["title"] == "@\u200beveryone \\*\\*hi\\*\\*"


async def test_the_simulator_bans_an_address_after_too_many_invalid_requests() -> None:
    """Discord's Cloudflare ban, scaled down: 5 invalid answers instead of 10,000."""
    discord = DiscordSimulator(invalid_limit=5)
    server = LoopbackServer(discord)
    base = await server.start()
    live = discord.add_webhook()
    [payload] = build_messages("card", [SAMPLE])
    url = f"{base}/api/v10/webhooks/{live.id}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(5):
                answer = await http.post(f"{url}/{'x' * 68}?wait=true", json=payload)
                assert answer.status_code == 401
            banned = await http.post(f"{url}/{live.token}?wait=true", json=payload)
    finally:
        await server.stop()
    assert banned.status_code == 429
    assert banned.headers["content-type"].startswith("text/html")
    assert discord.received == []  # even a valid request is refused while banned


async def test_a_ban_pauses_every_send_instead_of_asking_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    discord = DiscordSimulator(invalid_limit=1)
    server = LoopbackServer(discord)
    base = await server.start()
    sender = WebhookSender(f"{base}/api/v10")
    [payload] = build_messages("card", [SAMPLE])
    first, second = discord.add_webhook(), discord.add_webhook()
    try:
        wrong = await sender.send(WebhookTarget(first.id, "x" * 68), payload)
        assert isinstance(wrong, Gone)  # ... and that invalid answer earned the ban
        outcomes = [
            await sender.send(WebhookTarget(hook.id, hook.token), payload)
            for hook in (first, second, second)
        ]
    finally:
        await sender.aclose()
        await server.stop()
    assert all(isinstance(o, RetryLater) and o.rate_limited for o in outcomes)
    assert all(isinstance(o, RetryLater) and o.after >= BAN_PAUSE_S - 1 for o in outcomes)
    assert discord.rate_limited == {"cloudflare": 1}  # one request met the ban; then silence
    assert "ban" in (sender.paused or "")  # what status shows
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("discord_ban") == 1


async def test_calling_a_deleted_webhook_again_and_again_is_banned() -> None:
    discord = DiscordSimulator(repeated_404_limit=3)
    server = LoopbackServer(discord)
    base = await server.start()
    gone, live = discord.add_webhook(), discord.add_webhook()
    gone.deleted = True
    [payload] = build_messages("card", [SAMPLE])
    try:
        async with httpx.AsyncClient() as http:
            statuses = [
                (
                    await http.post(f"{base}/api/v10/webhooks/{gone.id}/{gone.token}", json=payload)
                ).status_code
                for _ in range(3)
            ]
            after = await http.post(f"{base}/api/v10/webhooks/{live.id}/{live.token}", json=payload)
    finally:
        await server.stop()
    assert statuses == [404, 404, 404]
    assert after.status_code == 429
