"""Demo mode: the whole pipeline against the two simulators, in the API's own process.

Without Twitch credentials `clipwatch serve` starts the Twitch simulator and the Discord
simulator on free loopback ports, points the settings at them, tracks three simulated
channels, and adds a route (owned by a `demo` admin) that posts every new clip to a simulated
webhook. The worker then does exactly what it does live: backfill, incremental passes,
deliveries. The simulated Twitch gains a clip now and then, so new clips keep arriving.
`clipwatchdemo` goes live for 4 minutes every 10 (Get Streams and EventSub both say so; its
title changes half-way), and a user token for it is connected for EventSub.

The simulated world lives in memory and is new at every start, so the demo database
(`var/demo.db`) is started afresh too. docs/demo.md
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service as accounts
from clipwatch.accounts.service import operator
from clipwatch.config import DEMO_DATABASE_URL, Settings
from clipwatch.db.engine import session_scope
from clipwatch.discord import routes
from clipwatch.discord.sender import sender_from_settings
from clipwatch.discord.simulator import DiscordSimulator, SimWebhook
from clipwatch.simhttp import LoopbackServer
from clipwatch.twitch import sync
from clipwatch.twitch.client import HelixClient
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET, TwitchSimulator
from clipwatch.twitch.user_tokens import connect_user_token
from clipwatch.waiting import cancel_and_wait

log = structlog.get_logger("clipwatch.demo")

# (login, clips over a year, days with more clips than one query returns)
DEMO_CHANNELS = (("clipwatchdemo", 1_600, 1), ("speedrunner", 400, 0), ("quietstreamer", 40, 0))
FRESH_CLIPS = 6  # clips from the last hours, posted by the first sync
NEW_CLIP_EVERY_S = 20.0  # how often the simulated Twitch gains a clip
DEMO_SYNC_INTERVAL_S = 15
# The live schedule: LIVE_CHANNEL goes live at start, for LIVE_FOR_S out of every LIVE_EVERY_S.
LIVE_CHANNEL = "clipwatchdemo"
LIVE_FOR_S = 240.0
LIVE_EVERY_S = 600.0
OPERATOR = operator("demo")


@dataclass
class DemoWorld:
    twitch: TwitchSimulator
    discord: DiscordSimulator
    hook: SimWebhook
    twitch_base: str
    discord_base: str
    user_token: tuple[str, str]  # LIVE_CHANNEL's access and refresh token, for EventSub

    @property
    def sink_url(self) -> str:
        """Where the messages posted to Discord can be read back."""
        return f"{self.discord_base}/_sim/messages"


def reset_demo_database(settings: Settings) -> None:
    """Remove the demo database (only the default demo file; never a configured database)."""
    if settings.database_url != DEMO_DATABASE_URL:
        return
    path = Path(DEMO_DATABASE_URL.removeprefix("sqlite+aiosqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _world(seed: int = 7) -> tuple[TwitchSimulator, DiscordSimulator, SimWebhook]:
    twitch = TwitchSimulator(seed=seed, views_grow=True)
    now = datetime.now(UTC)
    channels = [
        twitch.add_channel(login, clips=clips, hot_days=hot, years=1.0)
        for login, clips, hot in DEMO_CHANNELS
    ]
    for i in range(FRESH_CLIPS):
        created = now - timedelta(minutes=10 + 40 * i)
        twitch.add_clip(channels[i % len(channels)].id, created_at=created, visible_at=created)
    discord = DiscordSimulator()
    return twitch, discord, discord.add_webhook()


async def keep_streaming(
    twitch: TwitchSimulator, channel_id: str, *, live_for: float, every: float
) -> None:
    """Live for `live_for` seconds out of every `every`, from now on; the title changes
    half-way. Each change reaches Get Streams and the EventSub subscribers at once."""
    rng = random.Random(13)
    games = twitch.world.games
    stream = 0
    while True:
        stream += 1
        game = games[rng.randrange(len(games))]
        twitch.go_live(
            channel_id,
            title=f"Demo stream #{stream}",
            game_id=game.id,
            viewer_count=rng.randint(50, 5_000),
        )
        await asyncio.sleep(live_for / 2)  # the demo's schedule
        twitch.update_channel(channel_id, title=f"Demo stream #{stream}: second half")
        await asyncio.sleep(live_for / 2)
        twitch.go_offline(channel_id)
        await asyncio.sleep(max(every - live_for, 0.0))


async def _keep_clipping(twitch: TwitchSimulator, every: float) -> None:
    rng = random.Random(11)
    channel_ids = list(twitch.channels)
    while True:
        await asyncio.sleep(every)  # the demo's pace: a new simulated clip every `every` s
        now = datetime.now(UTC)
        twitch.add_clip(rng.choice(channel_ids), created_at=now, visible_at=now)


@asynccontextmanager
async def demo_world(settings: Settings) -> AsyncIterator[tuple[Settings, DemoWorld]]:
    """Start both simulators; yield settings that point at them, and the world."""
    twitch, discord, hook = _world()
    twitch_server, discord_server = LoopbackServer(twitch), LoopbackServer(discord)
    twitch_base = await twitch_server.start()
    try:
        discord_base = await discord_server.start()
        live_id = next(c.id for c in twitch.channels.values() if c.login == LIVE_CHANNEL)
        background = [
            asyncio.create_task(_keep_clipping(twitch, NEW_CLIP_EVERY_S)),
            asyncio.create_task(
                keep_streaming(twitch, live_id, live_for=LIVE_FOR_S, every=LIVE_EVERY_S)
            ),
        ]
        demo_settings = settings.model_copy(
            update={
                "demo": True,
                "twitch_client_id": CLIENT_ID,
                "twitch_client_secret": CLIENT_SECRET,
                "twitch_api_url": f"{twitch_base}/helix",
                "twitch_auth_url": f"{twitch_base}/oauth2",
                "twitch_eventsub_ws_url": twitch_base.replace("http://", "ws://") + "/ws",
                "discord_api_url": f"{discord_base}/api/v10",
                "sync_interval_seconds": DEMO_SYNC_INTERVAL_S,
                # The cadence (docs/cadence.md) syncs offline channels every 15 min: the
                # demo's clips would wait that long.
                "live_sync_seconds": DEMO_SYNC_INTERVAL_S,
                "offline_sync_seconds": DEMO_SYNC_INTERVAL_S,
            }
        )
        try:
            token = twitch.issue_user_token(LIVE_CHANNEL)
            yield (
                demo_settings,
                DemoWorld(twitch, discord, hook, twitch_base, discord_base, token),
            )
        finally:
            for task in background:
                await cancel_and_wait(task)
            await discord_server.stop()
    finally:
        await twitch_server.stop()


async def seed_demo(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: HelixClient,
    world: DemoWorld,
) -> None:
    """Track the simulated channels, route every new clip to the simulated webhook, and
    connect LIVE_CHANNEL's user token for EventSub."""
    added, _unknown = await sync.add_channels(client, sessionmaker, [c[0] for c in DEMO_CHANNELS])
    async with session_scope(sessionmaker) as session:
        user = await accounts.create_user(session, "demo", admin=True)
        # Checked with the simulated Discord like any route (its webhook lives there).
        sender = sender_from_settings(settings) if settings.webhook_check else None
        try:
            await routes.create_route(
                session,
                OPERATOR,
                {"name": "demo: every new clip", "webhook_url": world.hook.pasted_url},
                key=settings.signing_key,
                allowed_hosts=settings.webhook_allowed_hosts.split(","),
                owner_id=user.id,
                sender=sender,
            )
        finally:
            if sender is not None:
                await sender.aclose()
    try:
        await connect_user_token(settings, sessionmaker, *world.user_token, connected_by=user.id)
    except Exception as exc:  # the demo goes on without EventSub; Get Streams still polls
        log.warning("demo_eventsub_token_failed", error=f"{type(exc).__name__}: {exc}")
    log.info("demo_seeded", channels=added, discord_sink=world.sink_url)
