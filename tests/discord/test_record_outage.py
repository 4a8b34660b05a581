"""PostgreSQL away between a send and its record (discord/delivery.py `_record_outcome`): the
message is in Discord, so the pass waits for the database and writes "sent" once it is back.
Given up at once, the row stayed pending, its claim lapsed and another worker posted the clip
a second time (seen in the scaled test, just after its PostgreSQL outage).

A PostgreSQL cluster of the test's own (tests/scaled/cluster.py), so it can be stopped."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker
from clipwatch.db.migrate import upgrade_database
from clipwatch.discord.delivery import deliver_due
from clipwatch.discord.sender import WebhookSender
from clipwatch.monitoring.metrics import DELIVERY_RECORDS
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


async def test_a_send_is_recorded_once_the_database_is_back_and_never_sent_again(
    discord_sim: DiscordSim,
) -> None:
    pg = Postgres()
    try:
        await asyncio.to_thread(pg.init)
        engine = create_engine(load_settings(database_url=pg.url, secret_key=TEST_SECRET))
        try:
            await upgrade_database(engine)
            sessionmaker = create_sessionmaker(engine)
            await route_with(sessionmaker, discord_sim)
            await store(sessionmaker, [clip("Away1", title="sent while the database was away")])
            delayed_before = DELIVERY_RECORDS.labels("delayed")._value.get()
            held = HeldSender(f"{discord_sim.base}/api/v10")
            other = WebhookSender(f"{discord_sim.base}/api/v10")
            first = asyncio.create_task(deliver_due(sessionmaker, held, KEY, claim=CLAIM))
            try:
                async with asyncio.timeout(DEADLINE_S):
                    await held.sending.wait()
                await asyncio.to_thread(pg.stop)
                held.release.set()
                received = discord_sim.discord.received
                await eventually(lambda: len(received) == 1, "the message reached Discord")
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
        finally:
            await engine.dispose()
    finally:
        await asyncio.to_thread(pg.destroy)
