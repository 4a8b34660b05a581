"""The sender's edit, delete, fetch_webhook and send into threads against the Discord
simulator: the outcomes the delivery worker and route checks act on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clipwatch.discord.sender import (
    Gone,
    Missing,
    Rejected,
    RetryLater,
    Sent,
    WebhookFacts,
    WebhookSender,
)
from clipwatch.discord.simulator import WEBHOOK_LIMIT, SimWebhook
from clipwatch.discord.webhook_url import WebhookTarget
from tests.discord.conftest import DiscordSim

MESSAGE = {"content": "a clip", "allowed_mentions": {"parse": []}}


@pytest.fixture
async def sender(discord_sim: DiscordSim) -> AsyncIterator[WebhookSender]:
    sender = WebhookSender(f"{discord_sim.base}/api/v10")
    try:
        yield sender
    finally:
        await sender.aclose()


def target(hook: SimWebhook) -> WebhookTarget:
    return WebhookTarget(hook.id, hook.token)


async def test_fetch_webhook_gives_its_facts(
    discord_sim: DiscordSim, sender: WebhookSender
) -> None:
    sim = discord_sim.discord
    sim.add_channel("900000000000000061", "800000000000000061")
    hook = sim.add_webhook("900000000000000061")
    facts = await sender.fetch_webhook(target(hook))
    assert facts == WebhookFacts(hook.id, "900000000000000061", "800000000000000061", hook.name)
    assert sim.received == []


async def test_fetch_webhook_deleted_or_wrong_token_is_gone(
    discord_sim: DiscordSim, sender: WebhookSender
) -> None:
    sim = discord_sim.discord
    gone, live = sim.add_webhook(), sim.add_webhook()
    gone.deleted = True
    deleted = await sender.fetch_webhook(target(gone))
    assert isinstance(deleted, Gone)
    assert "10015" in deleted.reason
    wrong = await sender.fetch_webhook(WebhookTarget(live.id, "x" * 68))
    assert isinstance(wrong, Gone)
    assert "50027" in wrong.reason
    assert live.token not in wrong.reason


async def test_a_forum_post_is_sent_with_its_threads_channel_id(
    discord_sim: DiscordSim, sender: WebhookSender
) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook("900000000000000062", forum=True)
    first = await sender.send(target(hook), MESSAGE | {"thread_name": "Monday"})
    assert isinstance(first, Sent)
    assert first.channel_id in sim.threads
    assert first.channel_id != hook.channel_id
    reply = await sender.send(target(hook), MESSAGE, thread_id=first.channel_id)
    assert isinstance(reply, Sent)
    assert reply.channel_id == first.channel_id
    plain = sim.add_webhook()
    sent = await sender.send(target(plain), MESSAGE)
    assert isinstance(sent, Sent)
    assert sent.channel_id == plain.channel_id
    refused = await sender.send(target(hook), MESSAGE)  # a forum needs a thread
    assert isinstance(refused, Rejected)


async def test_a_post_into_a_deleted_or_locked_thread_is_gone(
    discord_sim: DiscordSim, sender: WebhookSender
) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    deleted = sim.add_thread(hook.channel_id)
    sim.delete_thread(deleted)
    locked = sim.add_thread(hook.channel_id, locked=True)
    for thread in (deleted, locked):
        outcome = await sender.send(target(hook), MESSAGE, thread_id=thread)
        assert isinstance(outcome, Gone), thread
    assert sim.received == []


async def test_edit_and_delete_a_sent_message(
    discord_sim: DiscordSim, sender: WebhookSender
) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    thread = sim.add_thread(hook.channel_id)
    sent = await sender.send(target(hook), MESSAGE, thread_id=thread)
    assert isinstance(sent, Sent)
    edit = {"content": "removed on Twitch", "allowed_mentions": {"parse": []}}
    edited = await sender.edit(target(hook), sent.message_id, edit, thread_id=thread)
    assert isinstance(edited, Sent)
    assert edited.message_id == sent.message_id
    assert sim.messages[sent.message_id].payload["content"] == "removed on Twitch"
    assert len(sim.messages[sent.message_id].edits) == 1
    deleted = await sender.delete(target(hook), sent.message_id, thread_id=thread)
    assert deleted == Sent(sent.message_id)
    assert sim.messages[sent.message_id].deleted
    again = await sender.delete(target(hook), sent.message_id, thread_id=thread)
    assert isinstance(again, Missing)
    assert "10008" in again.reason


async def test_unknown_message_thread_and_another_webhooks_message_are_missing(
    discord_sim: DiscordSim, sender: WebhookSender
) -> None:
    sim = discord_sim.discord
    mine, other = sim.add_webhook(), sim.add_webhook()
    theirs = await sender.send(target(other), MESSAGE)
    assert isinstance(theirs, Sent)
    for message_id in (theirs.message_id, "1234567890123456789"):
        assert isinstance(await sender.edit(target(mine), message_id, MESSAGE), Missing)
        assert isinstance(await sender.delete(target(mine), message_id), Missing)
    thread = sim.add_thread(other.channel_id)
    sim.delete_thread(thread)
    outcome = await sender.delete(target(other), theirs.message_id, thread_id=thread)
    assert isinstance(outcome, Missing)
    assert "10003" in outcome.reason
    assert not sim.messages[theirs.message_id].deleted


async def test_edit_of_a_deleted_webhook_is_gone_and_a_bad_edit_rejected(
    discord_sim: DiscordSim, sender: WebhookSender
) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    sent = await sender.send(target(hook), MESSAGE)
    assert isinstance(sent, Sent)
    too_long = await sender.edit(target(hook), sent.message_id, {"content": "x" * 2001})
    assert isinstance(too_long, Rejected)
    hook.deleted = True
    assert isinstance(await sender.edit(target(hook), sent.message_id, MESSAGE), Gone)
    assert isinstance(await sender.delete(target(hook), sent.message_id), Gone)


async def test_edits_wait_for_the_bucket_instead_of_a_429(
    discord_sim: DiscordSim, sender: WebhookSender
) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    sent = await sender.send(target(hook), MESSAGE)
    assert isinstance(sent, Sent)
    outcomes = [
        await sender.edit(target(hook), sent.message_id, {"content": f"edit {n}"})
        for n in range(WEBHOOK_LIMIT + 2)
    ]
    assert all(isinstance(o, Sent) for o in outcomes)
    assert sim.rate_limited.get("webhook", 0) == 0
    assert sender.stats.waited_s > 0
    assert len(sim.messages[sent.message_id].edits) == WEBHOOK_LIMIT + 2


async def test_an_outage_is_retry_later_for_every_call(
    discord_sim: DiscordSim, sender: WebhookSender
) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    sent = await sender.send(target(hook), MESSAGE)
    assert isinstance(sent, Sent)
    sim.outage(30)
    assert isinstance(await sender.fetch_webhook(target(hook)), RetryLater)
    assert isinstance(await sender.edit(target(hook), sent.message_id, MESSAGE), RetryLater)
    assert isinstance(await sender.delete(target(hook), sent.message_id), RetryLater)
