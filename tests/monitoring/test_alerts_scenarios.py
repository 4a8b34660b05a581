"""The issue's "done when" for alerts, against the simulators, on both databases:

- Twitch answering 401 to token requests opens "Twitch auth failing" after its `for`, one
  Discord alert message arrives (through the outbox), and recovery resolves it with one more;
- the outbox piling up (Discord answering 5xx) opens "outbox stuck" after its `for`, not before;
- a storm of failing channels is one Discord message per receiver and interval.
Time is the evaluator's injected clock; the worker and the outbox run for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Delivery
from clipwatch.discord.delivery import deliver_due
from clipwatch.discord.sender import WebhookSender
from clipwatch.monitoring.alerts.evaluator import Evaluator
from clipwatch.monitoring.alerts.setup import config_from_settings
from clipwatch.monitoring.alerts.signals import SignalContext, SignalReader
from clipwatch.runtime.supervisor import Supervisor
from clipwatch.runtime.worker import WorkerStats, sync_forever
from clipwatch.simhttp import LoopbackServer
from clipwatch.twitch import sync
from clipwatch.twitch.client import HelixClient
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET, TwitchSimulator
from tests.discord.conftest import DiscordSim, discord_sim  # noqa: F401
from tests.discord.test_delivery import fresh, make_route, store
from tests.monitoring.alerts_helpers import Clock, all_incidents

Sessions = async_sessionmaker[AsyncSession]
RULES = """
grouping: {group_interval: 1m, repeat_interval: 4h}
rules:
  - name: twitch_auth_failing
    signal: twitch_auth_failing
    threshold: 0
    for: 30s
    severity: critical
    summary: "Twitch refuses clipwatch's app credentials: {error}"
  - name: outbox_stuck
    signal: outbox_oldest_pending_seconds
    threshold: 600
    for: 2m
    severity: critical
    summary: "{pending} pending; the oldest waits {value} s"
  - name: channel_sync_lagging
    signal: channel_sync_lag_cadences
    threshold: 3
    for: 0s
    severity: warning
    summary: "channel {channel} lags"
receivers:
  - {name: log, type: log}
  - {name: discord, type: discord, url_from: CLIPWATCH_ALERT_DISCORD_WEBHOOK_URL}
routes:
  - receiver: log
  - receiver: discord
    severity: [critical, warning]
"""


class RefusingTwitch:
    """The Twitch simulator, answering 401 to token requests while `refuse` is set."""

    def __init__(self, twitch: TwitchSimulator) -> None:
        self.twitch = twitch
        self.refuse = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.refuse and scope["type"] == "http" and scope["path"] == "/oauth2/token":
            body = b'{"status":401,"message":"invalid client"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.twitch(scope, receive, send)


@dataclass
class World:
    settings: Settings
    twitch: RefusingTwitch
    twitch_base: str
    discord: DiscordSim
    hook_id: str

    def helix(self) -> HelixClient:
        return HelixClient(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            api_url=f"{self.twitch_base}/helix",
            auth_url=f"{self.twitch_base}/oauth2",
            max_attempts=2,
        )

    def alert_messages(self) -> list[dict[str, Any]]:
        return [r.payload for r in self.discord.discord.received if r.webhook_id == self.hook_id]


@pytest.fixture
async def world(
    settings: Settings,
    discord_sim: DiscordSim,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[World]:
    twitch = RefusingTwitch(TwitchSimulator(seed=3, points_per_minute=100_000))
    server = LoopbackServer(twitch)
    base = await server.start()
    hook = discord_sim.discord.add_webhook()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    configured = settings.model_copy(
        update={
            "twitch_client_id": CLIENT_ID,
            "twitch_client_secret": CLIENT_SECRET,
            "twitch_api_url": f"{base}/helix",
            "twitch_auth_url": f"{base}/oauth2",
            "discord_api_url": f"{discord_sim.base}/api/v10",
            "alert_rules_file": str(rules),
            "alert_discord_webhook_url": hook.pasted_url,
        }
    )
    try:
        yield World(configured, twitch, base, discord_sim, hook.id)
    finally:
        await server.stop()


def evaluator(world: World, sessionmaker: Sessions, clock: Clock) -> Evaluator:
    reader = SignalReader(sessionmaker, SignalContext(offline_sync_s=300))
    return Evaluator(
        sessionmaker,
        config_from_settings(world.settings),
        reader,
        owner="test:1",
        key=world.settings.signing_key,
        clock=clock,
    )


async def deliver(world: World, sessionmaker: Sessions) -> None:
    """Delivery passes until nothing is due (the outbox, as the worker runs it)."""
    sender = WebhookSender(world.settings.discord_api_url)
    try:
        for _ in range(20):
            report = await deliver_due(sessionmaker, sender, world.settings.signing_key)
            if report.messages == 0:
                return
    finally:
        await sender.aclose()


async def sync_pass(helix: HelixClient, sessionmaker: Sessions, supervisor: Supervisor) -> None:
    """One pass of the worker's sync task, and its report into `worker_task`."""
    stats = WorkerStats(supervisor=supervisor)
    state = supervisor.task("sync")
    await sync_forever(helix, sessionmaker, asyncio.Event(), stats, state, interval=0.01, passes=1)
    await supervisor.report(sessionmaker)


async def test_twitch_auth_failing_opens_after_its_for_and_tells_discord_once_each_way(
    world: World, sessionmaker: Sessions
) -> None:
    world.twitch.twitch.add_channel("alpha", clips=3)
    supervisor = Supervisor("host:1")
    async with world.helix() as helix:
        await sync.add_channels(helix, sessionmaker, ["alpha"])
    world.twitch.refuse = True
    async with world.helix() as helix:  # a fresh process: it needs a token
        await sync_pass(helix, sessionmaker, supervisor)
        clock = Clock(datetime.now(UTC))
        alerts = evaluator(world, sessionmaker, clock)
        for _ in range(3):  # true for 0, 10 and 20 s of its 30: not yet
            assert (await alerts.tick()).opened == []
            clock.advance(10)
        [opened] = (await alerts.tick()).opened  # true for 30 s
        [incident] = await all_incidents(sessionmaker)
        assert incident.id == opened
        assert "401" in incident.summary
        assert incident.rule == "twitch_auth_failing"
        await deliver(world, sessionmaker)
        [message] = world.alert_messages()
        assert "twitch_auth_failing" in message["embeds"][0]["title"]
        assert "401" in message["embeds"][0]["description"]

        world.twitch.refuse = False  # Twitch accepts the credentials again
        await sync_pass(helix, sessionmaker, supervisor)
        clock.advance(60)
        assert (await alerts.tick()).resolved == []  # clear for 0 s of its 30
        clock.advance(29)
        assert (await alerts.tick()).resolved == []
        clock.advance(1)
        assert (await alerts.tick()).resolved == [incident.id]
        await deliver(world, sessionmaker)
        _first, second = world.alert_messages()
        assert second["embeds"][0]["title"].startswith("RESOLVED")
        clock.advance(3600)
        await alerts.tick()
        await deliver(world, sessionmaker)
        about_auth = [
            m for m in world.alert_messages() if "twitch_auth_failing" in m["embeds"][0]["title"]
        ]
        assert len(about_auth) == 2  # nothing more, nothing twice


async def test_the_outbox_piling_up_opens_after_its_for_not_before(
    world: World, sessionmaker: Sessions
) -> None:
    await make_route(sessionmaker, world.discord)
    await store(sessionmaker, fresh(3))
    world.discord.discord.outage(3600, status=503)  # Discord answers 5xx
    await deliver(world, sessionmaker)
    async with session_scope(sessionmaker) as session:
        rows = (await session.scalars(select(Delivery))).all()
        assert {(d.status, d.attempts) for d in rows} == {("pending", 1)}
        written = min(d.created_at for d in rows)
    clock = Clock(written + timedelta(seconds=600))  # the oldest has waited 600 s: not > 600
    alerts = evaluator(world, sessionmaker, clock)
    assert (await alerts.tick()).opened == []
    clock.advance(1)  # now it is over, and must stay so for 2 minutes
    assert (await alerts.tick()).opened == []
    clock.advance(119)
    assert (await alerts.tick()).opened == []
    clock.advance(1)
    [opened] = (await alerts.tick()).opened
    [incident] = await all_incidents(sessionmaker)
    assert incident.id == opened
    assert incident.summary.startswith("3 pending; the oldest waits 72")
    async with session_scope(sessionmaker) as session:
        alerts_rows = (
            await session.scalars(select(Delivery).where(Delivery.kind == "alert"))
        ).all()
    assert len(alerts_rows) == 1  # queued, waiting for Discord like everything else


async def test_a_storm_of_failing_channels_is_one_discord_message_per_interval(
    world: World, sessionmaker: Sessions
) -> None:
    from clipwatch.db.models import Channel, ChannelSync

    long_ago = datetime.now(UTC) - timedelta(hours=3)
    async with session_scope(sessionmaker) as session:
        for n in range(100):
            session.add(
                Channel(
                    id=f"9{n:04}",
                    login=f"storm{n:03}",
                    display_name="S",
                    tracked=True,
                    added_at=long_ago,
                )
            )
            session.add(
                ChannelSync(channel_id=f"9{n:04}", last_success_at=long_ago, last_error="boom")
            )
    clock = Clock(datetime.now(UTC))
    alerts = evaluator(world, sessionmaker, clock)
    report = await alerts.tick()
    assert len(report.opened) == 100
    assert sorted(n.receiver.name for n in report.notices) == ["discord", "log"]
    for _ in range(3):  # within the group interval: nothing new to say, nothing said
        clock.advance(15)
        assert (await alerts.tick()).notices == []
    await deliver(world, sessionmaker)
    [message] = world.alert_messages()
    embed = message["embeds"][0]
    assert "100 open" in embed["title"]
    assert embed["description"].endswith("… and 80 more (clipwatch incidents list)")
