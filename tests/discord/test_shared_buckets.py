"""Webhook buckets shared through Redis: senders with separate state (or in separate
processes) draw from one view of a webhook's limits; without Redis, each its own."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque

import pytest

from clipwatch.discord.buckets import (
    CHANNEL_PACE_S,
    INVALID_STOP,
    INVALID_WINDOW_S,
    Answer,
    LocalBuckets,
)
from clipwatch.discord.messages import SAMPLE, build_messages
from clipwatch.discord.sender import RetryLater, Sent, WebhookSender
from clipwatch.discord.simulator import WEBHOOK_LIMIT
from clipwatch.discord.webhook_url import WebhookTarget
from tests.conftest import RedisServer
from tests.discord.conftest import DiscordSim


def senders(sim: DiscordSim, n: int, redis_url: str = "", prefix: str = "") -> list[WebhookSender]:
    """`n` senders with separate state (as in separate processes), sharing Redis if given."""
    return [
        WebhookSender(
            f"{sim.base}/api/v10", redis_url=redis_url, key_prefix=prefix, local=LocalBuckets()
        )
        for _ in range(n)
    ]


async def burst(group: list[WebhookSender], target: WebhookTarget, each: int) -> list[object]:
    [payload] = build_messages("compact", [SAMPLE])

    async def one(sender: WebhookSender) -> list[object]:
        return [await sender.send(target, payload) for _ in range(each)]

    try:
        results = await asyncio.gather(*(one(s) for s in group))
    finally:
        for sender in group:
            await sender.aclose()
    return [o for r in results for o in r]


async def test_senders_sharing_redis_share_the_bucket(
    discord_sim: DiscordSim, redis_url: str, redis_prefix: str
) -> None:
    hook = discord_sim.discord.add_webhook()
    target = WebhookTarget(hook.id, hook.token)
    group = senders(discord_sim, 3, redis_url, redis_prefix)
    outcomes = await burst(group, target, 4)
    assert all(isinstance(o, Sent) for o in outcomes)
    assert len(discord_sim.discord.received) == 3 * 4 > WEBHOOK_LIMIT
    assert sum(discord_sim.discord.rate_limited.values()) == 0


async def test_senders_with_their_own_state_meet_the_limit(discord_sim: DiscordSim) -> None:
    """What the shared view prevents: the same burst without Redis earns 429s."""
    hook = discord_sim.discord.add_webhook()
    outcomes = await burst(senders(discord_sim, 3), WebhookTarget(hook.id, hook.token), 4)
    assert all(isinstance(o, Sent) for o in outcomes)
    assert discord_sim.discord.rate_limited.get("webhook", 0) > 2


async def test_a_channel_429_paces_every_sender(
    discord_sim: DiscordSim, redis_url: str, redis_prefix: str
) -> None:
    """The hidden channel limit is learned once, by whichever sender meets it."""
    hook = discord_sim.discord.add_webhook()
    target = WebhookTarget(hook.id, hook.token)
    group = senders(discord_sim, 2, redis_url, redis_prefix)
    # The channel has one message left for a second, then frees 29.
    discord_sim.discord.channel_hits[hook.channel_id] = deque([time.time() - 59.0] * 29)
    outcomes = await burst(group, target, 2)
    assert all(isinstance(o, Sent) for o in outcomes)
    assert discord_sim.discord.rate_limited == {"channel": 1}
    times = sorted(r.at for r in discord_sim.discord.received)
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]
    assert min(gaps) >= CHANNEL_PACE_S - 0.05  # both senders keep the learned pace


async def test_redis_down_mid_run_falls_back_to_the_local_view(
    discord_sim: DiscordSim, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = discord_sim.discord.add_webhook()
    target = WebhookTarget(hook.id, hook.token)
    [sender] = senders(discord_sim, 1, redis_server.url, "fallback")
    [payload] = build_messages("compact", [SAMPLE])
    try:
        first = [await sender.send(target, payload) for _ in range(3)]
        assert not sender.buckets.degraded
        redis_server.stop()
        after = [await sender.send(target, payload) for _ in range(WEBHOOK_LIMIT + 2)]
    finally:
        await sender.aclose()
    assert all(isinstance(o, Sent) for o in first + after)
    assert sender.buckets.degraded
    assert discord_sim.discord.rate_limited.get("webhook", 0) == 0  # the local view paced it
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("discord_buckets_degraded") == 1


def test_the_local_view_stops_near_the_invalid_request_line() -> None:
    view = LocalBuckets()
    for i in range(INVALID_STOP - 1):
        view.settle("1", "", Answer(404), now=float(i) / 10)
    assert view.reserve("1", now=100.0).stop == ""
    view.settle("1", view.reserve("1", now=100.0).lease, Answer(401), now=100.0)
    stopped = view.reserve("2", now=101.0)
    assert stopped.stop == "invalid"
    # It resumes when the oldest answers age out of the ten minutes.
    assert stopped.wait == pytest.approx(INVALID_WINDOW_S - 101.0, abs=0.01)
    assert view.reserve("2", now=INVALID_WINDOW_S + 0.01).stop == ""


def test_a_shared_429_is_not_an_invalid_request() -> None:
    assert not Answer(429, shared=True).invalid
    assert all(Answer(status).invalid for status in (401, 403, 404, 429))
    assert not any(Answer(status).invalid for status in (200, 400, 502))


async def test_the_shared_view_stops_near_the_invalid_request_line(
    discord_sim: DiscordSim, redis_url: str, redis_prefix: str
) -> None:
    import redis.asyncio as redis_asyncio

    hook = discord_sim.discord.add_webhook()
    target = WebhookTarget(hook.id, hook.token)
    client = redis_asyncio.from_url(redis_url)
    now = float((await client.time())[0])
    await client.zadd(
        f"{redis_prefix}:discord:invalid", {f"x{i}": now - 1 for i in range(INVALID_STOP)}
    )
    await client.aclose()
    [sender] = senders(discord_sim, 1, redis_url, redis_prefix)
    [payload] = build_messages("compact", [SAMPLE])
    try:
        outcome = await sender.send(target, payload)
    finally:
        await sender.aclose()
    assert isinstance(outcome, RetryLater)
    assert outcome.rate_limited
    assert outcome.after > INVALID_WINDOW_S - 5
    assert discord_sim.discord.received == []


def test_the_local_view_waits_for_the_bucket_the_lease_and_a_429() -> None:
    view = LocalBuckets()
    grant = view.reserve("1", now=10.0)
    assert grant.wait == 0
    assert view.reserve("1", now=10.001).wait > 0  # one request in flight per webhook
    view.settle("1", grant.lease, Answer(200, remaining=0, reset_after=1.5), now=10.1)
    assert view.reserve("1", now=10.2).wait == pytest.approx(1.4)
    assert view.reserve("2", now=10.2).wait == 0  # another webhook, another bucket
    late = view.reserve("1", now=11.7)
    view.settle("1", late.lease, Answer(429, retry_after=3.0, shared=True), now=11.8)
    assert view.reserve("1", now=12.0).wait == pytest.approx(2.8)
    after = view.reserve("1", now=14.9)
    assert after.wait == 0
    assert view.reserve("1", now=14.95).wait > 0  # lease held
    view.settle("1", after.lease, Answer(200, remaining=4, reset_after=2.0), now=15.0)
    assert view.reserve("1", now=15.0).wait == pytest.approx(CHANNEL_PACE_S - 0.1)


def test_the_local_view_pauses_everything_for_a_global_429_and_a_ban() -> None:
    view = LocalBuckets()
    grant = view.reserve("1", now=0.0)
    view.settle("1", grant.lease, Answer(429, retry_after=0.5, is_global=True), now=0.0)
    assert view.reserve("2", now=0.1).wait == pytest.approx(0.4)
    grant = view.reserve("2", now=1.0)
    view.settle("2", grant.lease, Answer(429, cloudflare=True), now=1.0)
    banned = view.reserve("3", now=2.0)
    assert banned.stop == "ban"
    assert banned.wait > 800
