"""Sending to the Discord simulator: limits followed, outcomes right, nobody pinged."""

from __future__ import annotations

import asyncio

from clipwatch.discord.messages import SAMPLE, build_messages
from clipwatch.discord.sender import Gone, Rejected, RetryLater, Sent, WebhookSender
from clipwatch.discord.simulator import WEBHOOK_LIMIT
from clipwatch.discord.webhook_url import WebhookTarget
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
