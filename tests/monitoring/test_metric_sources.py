"""Where the metrics come from: the database pool, the worker's database snapshot (both
databases), worker tasks, the Twitch client and the Discord sender (their simulators)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.cache.manager import CacheManager
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, session_scope
from clipwatch.db.models import Channel, ChannelSync, Delivery, NotificationRoute, User
from clipwatch.db.repositories import quarantine
from clipwatch.discord.sender import RetryLater, Sent, WebhookSender
from clipwatch.discord.simulator import DiscordSimulator
from clipwatch.discord.webhook_url import WebhookTarget
from clipwatch.monitoring.metrics import (
    ChannelFigures,
    DatabaseCollector,
    DatabaseSnapshot,
    exposition,
    publish_snapshot,
    track_engine,
)
from clipwatch.runtime.metrics_snapshot import read_snapshot, refresh_snapshot
from clipwatch.runtime.supervisor import Supervisor, TaskState
from clipwatch.simhttp import LoopbackServer
from clipwatch.twitch import channel_health
from clipwatch.twitch.client import HelixClient
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET, TwitchSimulator
from tests.discord.conftest import DiscordSim
from tests.discord.test_delivery import drain, fresh, make_route, store
from tests.factories import helix_clip, store_clips
from tests.monitoring.metrics_text import samples, value

NOW = datetime.now(UTC).replace(microsecond=0)


def scrape() -> str:
    return exposition().decode()


# --- the database pool ------------------------------------------------------------------------


async def test_a_checkout_from_a_full_pool_is_counted_as_a_wait(engine: AsyncEngine) -> None:
    track_engine(engine)
    pool = engine.sync_engine.pool
    room = pool.size() + pool._max_overflow  # type: ignore[attr-defined]
    held: list[AsyncConnection] = [await engine.connect() for _ in range(room)]
    try:
        during = scrape()
        assert value(during, "clipwatch_db_pool_connections", state="in_use") >= room
        before = value(during, "clipwatch_db_pool_waits_total")

        async def checkout() -> AsyncConnection:
            return await engine.connect()

        waiting = asyncio.create_task(checkout())
        deadline = time.monotonic() + 10
        while not pool._pool._queue._getters:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the extra checkout never waited"
            await asyncio.sleep(0.01)  # polling while the checkout reaches the pool's queue
        await held.pop().close()
        held.append(await asyncio.wait_for(waiting, 10))
        assert value(scrape(), "clipwatch_db_pool_waits_total") == before + 1
    finally:
        for conn in held:
            await conn.close()


async def test_a_checkout_with_room_is_no_wait(engine: AsyncEngine) -> None:
    track_engine(engine)
    before = value(scrape(), "clipwatch_db_pool_waits_total")
    async with engine.connect():
        pass
    assert value(scrape(), "clipwatch_db_pool_waits_total") == before


# --- the database snapshot --------------------------------------------------------------------


@pytest.fixture
async def archive(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Two tracked channels (one half backfilled and failing), clips, a quarantined clip,
    pending deliveries on an enabled and a disabled route, one dead."""
    await store_clips(
        sessionmaker,
        [helix_clip(broadcaster_id="1001") for _ in range(3)]
        + [helix_clip(broadcaster_id="1002", broadcaster_name="Beta")],
    )
    async with session_scope(sessionmaker) as session:
        for channel in await session.get(Channel, "1001"), await session.get(Channel, "1002"):
            assert channel is not None
            channel.tracked = True
        (await session.get(Channel, "1001")).login = "alphastreams"  # type: ignore[union-attr]
        created = datetime(2020, 1, 1, tzinfo=UTC)
        (await session.get(Channel, "1002")).account_created_at = created  # type: ignore[union-attr]
        session.add(
            ChannelSync(
                channel_id="1002",
                backfill_until=datetime(2024, 1, 1, tzinfo=UTC),
                backfill_done_until=datetime(2022, 1, 1, tzinfo=UTC),
                consecutive_failures=3,
                last_success_at=NOW - timedelta(hours=1),
            )
        )
        session.add(ChannelSync(channel_id="1001", backfill_completed_at=NOW, last_success_at=NOW))
        await quarantine.quarantine_clip(
            session,
            key="broken",
            clip_id="broken",
            broadcaster_id="1001",
            reason="no title",
            payload={"id": "broken"},
            now=NOW,
        )
        user = User(name="owner")
        session.add(user)
        await session.flush()
        routes = [
            NotificationRoute(
                user_id=user.id, name=f"r{i}", webhook_id="1", webhook_token_sealed="x",
                enabled=enabled,
            )
            for i, enabled in enumerate((True, False))
        ]  # fmt: skip
        session.add_all(routes)
        await session.flush()
        for n, (route, status, age) in enumerate(
            [(routes[0], "pending", 600), (routes[0], "pending", 60), (routes[1], "pending", 30),
             (routes[0], "dead", 9000), (routes[0], "sent", 9000)]
        ):  # fmt: skip
            session.add(
                Delivery(
                    route_id=route.id,
                    clip_id=f"clip{n}",
                    status=status,
                    next_attempt_at=NOW,
                    created_at=NOW - timedelta(seconds=age),
                )
            )


@pytest.mark.usefixtures("archive")
async def test_the_snapshot_reads_the_databases_figures(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    snap = await read_snapshot(sessionmaker)
    by_id = {c.channel_id: c for c in snap.channels}
    assert set(by_id) == {"1001", "1002"}
    assert by_id["1001"].login == "alphastreams"
    assert by_id["1001"].clips == 3
    assert by_id["1002"].clips == 1
    assert by_id["1001"].backfill_progress == 1.0
    assert by_id["1002"].backfill_progress == pytest.approx(0.5, abs=0.01)
    assert by_id["1002"].consecutive_failures == 3
    assert by_id["1001"].newest_seen_at is not None
    assert abs(by_id["1001"].newest_seen_at - time.time()) < 120
    assert snap.quarantined == 1
    assert snap.dead_letters == 1
    assert snap.routes_disabled == 1
    assert snap.outbox["enabled"][0] == 2
    assert snap.outbox["disabled"][0] == 1
    oldest = snap.outbox["enabled"][1]
    assert oldest is not None
    assert abs(oldest - (NOW - timedelta(seconds=600)).timestamp()) < 2


@pytest.mark.usefixtures("archive")
async def test_the_worker_publishes_the_snapshot_and_a_scrape_reads_it(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    state = TaskState("metrics")
    await refresh_snapshot(sessionmaker, state)
    assert state.state == "idle"
    text = scrape()
    assert value(text, "clipwatch_channel_clips", channel_id="1001") == 3
    assert value(text, "clipwatch_channel_info", channel_id="1001", login="alphastreams") == 1
    assert value(text, "clipwatch_channel_consecutive_failures", channel_id="1002") == 3
    assert value(text, "clipwatch_outbox_pending", route_state="enabled") == 2
    assert value(text, "clipwatch_outbox_oldest_pending_age_seconds", route_state="enabled") >= 600
    assert value(text, "clipwatch_dead_letters") == 1
    assert value(text, "clipwatch_quarantined_clips") == 1
    assert value(text, "clipwatch_routes_disabled") == 1


async def test_a_failed_refresh_keeps_the_last_snapshot() -> None:
    publish_snapshot(DatabaseSnapshot(taken_at=123.0, dead_letters=7))
    # A database that cannot be reached: nothing listens on port 9.
    gone = create_engine(load_settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none"))
    state = TaskState("metrics")
    try:
        await refresh_snapshot(async_sessionmaker(gone), state)
    finally:
        await gone.dispose()
    assert state.state == "failing"
    text = scrape()
    assert value(text, "clipwatch_dead_letters") == 7
    assert value(text, "clipwatch_db_snapshot_timestamp_seconds") == 123.0


async def test_failed_sync_steps_are_counted_per_channel(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    name = "clipwatch_channel_sync_failures_total"
    before = value(scrape(), name, channel_id="7777")
    await channel_health.record_outcome(sessionmaker, "7777", "TwitchError: down")
    await channel_health.record_outcome(sessionmaker, "7777", None)
    await channel_health.record_outcome(sessionmaker, "7777", "TwitchError: down")
    assert value(scrape(), name, channel_id="7777") == before + 2


def test_ages_grow_between_refreshes() -> None:
    channel = ChannelFigures("42", "someone", 5, 1000.0, 900.0, 0, 1.0)
    snap = DatabaseSnapshot(taken_at=1000.0, channels=(channel,), outbox={"enabled": (1, 500.0)})
    publish_snapshot(snap)
    clock = [1100.0]
    collector = DatabaseCollector(clock=lambda: clock[0])

    def figures() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in collector.collect()
            for s in family.samples
        }

    lag = ("clipwatch_channel_sync_lag_seconds", frozenset({("channel_id", "42")}))
    age = (
        "clipwatch_outbox_oldest_pending_age_seconds",
        frozenset({("route_state", "enabled")}),
    )
    assert figures()[lag] == 100.0
    assert figures()[age] == 600.0
    clock[0] = 1300.0
    assert figures()[lag] == 300.0
    assert figures()[age] == 800.0
    none = (
        "clipwatch_outbox_oldest_pending_age_seconds",
        frozenset({("route_state", "disabled")}),
    )
    assert figures()[none] == 0.0


# --- worker tasks -----------------------------------------------------------------------------


async def test_worker_tasks_show_their_state_and_restarts() -> None:
    supervisor = Supervisor("test:1", restart_s=(0.0,))
    stop = asyncio.Event()
    deaths = 0

    async def body(state: TaskState) -> None:
        nonlocal deaths
        if deaths < 2:
            deaths += 1
            raise RuntimeError("boom")
        state.succeeded()
        await stop.wait()

    task = asyncio.create_task(supervisor.run("probe", body, stop))
    deadline = time.monotonic() + 10
    while supervisor.task("probe").state != "idle":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)  # polling while the task restarts
    text = scrape()
    assert value(text, "clipwatch_worker_task_restarts_total", task="probe") == 2
    assert value(text, "clipwatch_worker_task_state", task="probe", state="idle") == 1
    assert value(text, "clipwatch_worker_task_state", task="probe", state="failing") == 0
    stop.set()
    await task
    assert value(scrape(), "clipwatch_worker_task_state", task="probe", state="stopped") == 1


# --- Twitch -----------------------------------------------------------------------------------


@pytest.fixture
async def twitch() -> AsyncIterator[tuple[TwitchSimulator, HelixClient]]:
    sim = TwitchSimulator(seed=3, points_per_minute=100_000)
    sim.add_channel("metricsprobe", clips=5, hot_days=0, years=0.1)
    server = LoopbackServer(sim)
    base = await server.start()
    client = HelixClient(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        api_url=f"{base}/helix",
        auth_url=f"{base}/oauth2",
    )
    try:
        yield sim, client
    finally:
        await client.aclose()
        await server.stop()


async def test_twitch_requests_budget_429s_and_renewals_are_counted(
    twitch: tuple[TwitchSimulator, HelixClient],
) -> None:
    sim, client = twitch
    before = scrape()
    await client.start()
    await client.get_users(["metricsprobe"])
    sim.add_fault("429_no_headers")
    await client.get_users(["metricsprobe"])
    sim.expire_tokens()
    await client.get_users(["metricsprobe"])
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("clipwatch_twitch_requests_total", endpoint="/users", status="200") == 3
    assert delta("clipwatch_twitch_requests_total", endpoint="/users", status="429") == 1
    assert delta("clipwatch_twitch_requests_total", endpoint="/users", status="401") == 1
    assert delta("clipwatch_twitch_requests_total", endpoint="/token", status="200") >= 2
    assert delta("clipwatch_twitch_rate_limited_total") == 1
    assert delta("clipwatch_twitch_token_renewals_total") == 1
    assert 0 < value(after, "clipwatch_twitch_budget_remaining") <= 100_000


async def test_refused_credentials_count_as_auth_failures() -> None:
    sim = TwitchSimulator(seed=3)
    server = LoopbackServer(sim)
    base = await server.start()
    client = HelixClient(
        client_id=CLIENT_ID,
        client_secret="wrong",
        api_url=f"{base}/helix",
        auth_url=f"{base}/oauth2",
    )
    before = value(scrape(), "clipwatch_twitch_auth_failures_total")
    try:
        with pytest.raises(Exception, match="refused"):
            await client.start()
    finally:
        await client.aclose()
        await server.stop()
    assert value(scrape(), "clipwatch_twitch_auth_failures_total") == before + 1


# --- Discord ----------------------------------------------------------------------------------


async def test_discord_429s_are_counted_by_scope() -> None:
    sim = DiscordSimulator()
    hook = sim.add_webhook()
    server = LoopbackServer(sim)
    base = await server.start()
    sender = WebhookSender(f"{base}/api/v10")
    before = scrape()
    try:
        sim.faults.append("429_no_headers")
        outcome = await sender.send(WebhookTarget(hook.id, hook.token), {"content": "hi"})
        assert isinstance(outcome, Sent | RetryLater)
    finally:
        await sender.aclose()
        await server.stop()
    after = scrape()
    labels = {"scope": "user"}
    rate_limited = "clipwatch_discord_rate_limited_total"
    assert value(after, rate_limited, **labels) - value(before, rate_limited, **labels) == 1
    scopes = {v for (n, pairs) in samples(after) if n == rate_limited for _, v in pairs}
    assert scopes <= {"user", "shared", "global", "cloudflare"}


# --- deliveries -------------------------------------------------------------------------------


@pytest.fixture
async def discord_sim() -> AsyncIterator[DiscordSim]:
    sim = DiscordSimulator()
    server = LoopbackServer(sim)
    base = await server.start()
    try:
        yield DiscordSim(sim, base)
    finally:
        await server.stop()


async def test_deliveries_are_counted_by_outcome(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    name = "clipwatch_deliveries_total"
    before = scrape()
    await make_route(sessionmaker, discord_sim, batching=False)
    await store(sessionmaker, fresh(2))
    discord_sim.discord.faults.append("5xx")
    await drain(sessionmaker, discord_sim)  # the first fails (retried), the second waits
    after_failure = scrape()
    assert (
        value(after_failure, name, outcome="retried") - value(before, name, outcome="retried") == 2
    )
    assert value(after_failure, name, outcome="sent") == value(before, name, outcome="sent")
    async with session_scope(sessionmaker) as session:
        await session.execute(update(Delivery).values(next_attempt_at=datetime.now(UTC)))
    await drain(sessionmaker, discord_sim)
    after = scrape()
    assert value(after, name, outcome="sent") - value(before, name, outcome="sent") == 2


def test_cache_counters_keep_what_a_collected_cache_counted() -> None:
    """A counter never goes down: a cache manager that is gone (a test's, a restarted app's)
    leaves its counts behind (a scrape between two hits of a newer cache once saw none)."""
    gone = CacheManager()
    gone.stats.hits_local = 5
    gone.local.evictions = 2
    before = scrape()
    del gone
    gc.collect()
    after = scrape()
    for name, tier in (
        ("clipwatch_cache_hits_total", "local"),
        ("clipwatch_cache_evictions_total", "local"),
    ):
        assert value(after, name, tier=tier) >= value(before, name, tier=tier)
    assert value(after, "clipwatch_cache_hits_total", tier="local") >= 5
