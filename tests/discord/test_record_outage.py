"""PostgreSQL away between a send and its record (discord/delivery.py `_record_outcome`): the
message is in Discord, so the pass waits for the database and writes "sent" once it is back.
Given up at once, the row stayed pending, its claim lapsed and another worker posted the clip
a second time (seen in the scaled test, just after its PostgreSQL outage).

A PostgreSQL cluster of the test's own (tests/scaled/cluster.py), so it can be stopped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker
from clipwatch.db.migrate import upgrade_database
from clipwatch.discord import delivery
from clipwatch.discord.delivery import deliver_due
from clipwatch.discord.sender import WebhookSender
from clipwatch.monitoring.metrics import DELIVERY_RECORDS
from clipwatch.runtime import worker
from clipwatch.runtime.supervisor import TaskState
from clipwatch.waiting import cancel_and_wait
from tests.cache.test_manager import until as eventually
from tests.conftest import TEST_SECRET
from tests.discord.conftest import DiscordSim
from tests.discord.test_claim_keeper import HeldSender
from tests.discord.test_delivery import KEY, deliveries, store
from tests.discord.test_lifecycle import clip, route_with
from tests.scaled.cluster import Postgres

CLAIM = timedelta(seconds=1)
AWAY_S = 3 * CLAIM.total_seconds()  # the outage outlasts the claim: it lapses meanwhile
DEADLINE_S = 30.0


@dataclass
class Cluster:
    pg: Postgres
    sessionmaker: async_sessionmaker[AsyncSession]


@pytest.fixture
async def cluster(discord_sim: DiscordSim) -> AsyncIterator[Cluster]:
    """A migrated PostgreSQL of the test's own with a route to the simulated Discord."""
    pg = Postgres()
    try:
        await asyncio.to_thread(pg.init)
        engine = create_engine(load_settings(database_url=pg.url, secret_key=TEST_SECRET))
        try:
            await upgrade_database(engine)
            sessionmaker = create_sessionmaker(engine)
            await route_with(sessionmaker, discord_sim)
            yield Cluster(pg, sessionmaker)
        finally:
            await engine.dispose()
    finally:
        await asyncio.to_thread(pg.destroy)


async def send_into_the_outage(
    held: HeldSender, cluster: Cluster, discord_sim: DiscordSim
) -> list[Any]:
    """PostgreSQL stops while the held send is on its way; then Discord takes it, so its
    record has to wait. Returns what Discord received."""
    async with asyncio.timeout(DEADLINE_S):
        await held.sending.wait()
    await asyncio.to_thread(cluster.pg.stop)
    held.release.set()
    received = discord_sim.discord.received
    await eventually(lambda: len(received) == 1, "the message reached Discord")
    return received


async def test_a_send_is_recorded_once_the_database_is_back_and_never_sent_again(
    discord_sim: DiscordSim, cluster: Cluster
) -> None:
    pg, sessionmaker = cluster.pg, cluster.sessionmaker
    await store(sessionmaker, [clip("Away1", title="sent while the database was away")])
    delayed_before = DELIVERY_RECORDS.labels("delayed")._value.get()
    held = HeldSender(f"{discord_sim.base}/api/v10")
    other = WebhookSender(f"{discord_sim.base}/api/v10")
    first = asyncio.create_task(deliver_due(sessionmaker, held, KEY, claim=CLAIM))
    try:
        await send_into_the_outage(held, cluster, discord_sim)
        # The outage's length (the fault under test), not a wait for a result.
        await asyncio.sleep(AWAY_S)
        assert not first.done(), "the pass gave up its record while the database was away"
        await asyncio.to_thread(pg.start)
        async with asyncio.timeout(DEADLINE_S):
            report = await first
        assert report.sent == 1
        # Another worker looks for due rows for three claims' time: none is left.
        until = time.monotonic() + 3 * CLAIM.total_seconds()
        while time.monotonic() < until:
            again = await deliver_due(sessionmaker, other, KEY, claim=CLAIM)
            assert again.messages == 0, "the sent clip was posted again"
            await asyncio.sleep(0.1)  # polling interval of the other worker
    finally:
        if not first.done():
            await cancel_and_wait(first)
        await held.aclose()
        await other.aclose()
    assert len(discord_sim.discord.received) == 1
    [row] = await deliveries(sessionmaker)
    assert row.status == "sent"
    assert row.message_id
    assert DELIVERY_RECORDS.labels("delayed")._value.get() - delayed_before == 1


async def keeper_far_off(*_args: object) -> None:
    await asyncio.Event().wait()  # cancelled when the pass ends


RECORD_LAG_S = 2.0  # the sender's record, tried this often, lands up to this long after the return


async def test_a_worker_back_from_the_outage_leaves_the_lapsed_claim_to_its_sender(
    discord_sim: DiscordSim, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the grace after an outage closes (runtime/worker.py RECOVERY_GRACE_S): the
    sender's claim lapsed while the database was away; a worker polling for due rows the
    moment it is back took the row before the sender's record landed, and posted it again."""
    monkeypatch.setattr(delivery, "RECORD_PAUSE_S", RECORD_LAG_S)
    monkeypatch.setattr(delivery, "RECORD_PAUSE_MAX_S", RECORD_LAG_S)
    monkeypatch.setattr(worker, "DELIVERY_POLL_S", 0.1)  # the other worker claims at once
    # The sender's claim keeper beats every third of the claim: 100 s with the default 300 s
    # claim, so at the return it is usually far off. Here (a 1 s claim) it would renew the
    # claim within 0.33 s and hide the race; it never beats instead.
    monkeypatch.setattr(delivery, "_keep_claimed", keeper_far_off)
    monkeypatch.setattr(worker, "DELIVERY_CAP_S", 0.2)
    assert worker.RECOVERY_GRACE_S > RECORD_LAG_S + 1.0
    pg, sessionmaker = cluster.pg, cluster.sessionmaker
    await store(sessionmaker, [clip("Away2", title="sent while the database was away")])
    settings = load_settings(
        database_url=pg.url,
        secret_key=KEY.decode(),  # the key the route's webhook token is sealed with
        discord_api_url=f"{discord_sim.base}/api/v10",
        delivery_claim_seconds=int(CLAIM.total_seconds()),
    )
    delayed_before = delivery.RECORD_WAITS["delayed"]
    held = HeldSender(f"{discord_sim.base}/api/v10")
    first = asyncio.create_task(deliver_due(sessionmaker, held, KEY, claim=CLAIM))
    stop, state = asyncio.Event(), TaskState("deliveries")
    other: asyncio.Task[None] | None = None
    try:
        received = await send_into_the_outage(held, cluster, discord_sim)
        other = asyncio.create_task(
            worker.deliver_forever(settings, sessionmaker, stop, worker.WorkerStats(), state)
        )
        await eventually(lambda: state.consecutive_failures > 0, "the other worker met the outage")
        await asyncio.sleep(AWAY_S)  # the outage's length (the fault under test)
        await asyncio.to_thread(pg.start)
        back = datetime.now(UTC)
        async with asyncio.timeout(DEADLINE_S):
            report = await first
        assert report.sent == 1
        # The other worker's first pass after the return: it claimed, or found nothing.
        await eventually(
            lambda: state.last_success_at is not None and state.last_success_at > back,
            "the other worker passed again",
        )
        assert len(received) == 1, "the sent clip was posted again"
        assert state.consecutive_failures == 0, state.last_error
        # The worker's status detail counts the record that waited (this process's).
        assert state.detail["records_delayed"] == delayed_before + 1
        assert state.detail["records_lost"] == delivery.RECORD_WAITS["lost"]
    finally:
        stop.set()
        for task in (first, other):
            if task is not None and not task.done():
                await cancel_and_wait(task)
        await held.aclose()
    [row] = await deliveries(sessionmaker)
    assert row.status == "sent"
