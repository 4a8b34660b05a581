"""Demo mode's live schedule and EventSub token: the demo channel goes live and ends on a
schedule that Get Streams and EventSub both report; seeding connects its user token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import connect

from clipwatch.accounts.secrets import unseal
from clipwatch.config import Settings
from clipwatch.db.models import TwitchUserToken
from clipwatch.runtime import demo
from clipwatch.twitch.client import HelixClient
from clipwatch.twitch.simulator import CLIENT_ID
from tests.twitch.conftest import Sim

DEADLINE_S = 15.0


async def test_schedule_goes_live_changes_title_and_ends_over_eventsub(sim: Sim) -> None:
    twitch = sim.twitch
    channel = twitch.add_channel("clipwatchdemo")
    token, _ = twitch.issue_user_token("clipwatchdemo")
    auth = {"Authorization": f"Bearer {token}", "Client-Id": CLIENT_ID}
    url = sim.base.replace("http://", "ws://") + "/ws?keepalive_timeout_seconds=600"
    async with connect(url) as ws, httpx.AsyncClient(base_url=sim.base) as http:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE_S))
        session_id = welcome["payload"]["session"]["id"]
        for kind, version in (
            ("stream.online", "1"),
            ("stream.offline", "1"),
            ("channel.update", "2"),
        ):
            created = await http.post(
                "/helix/eventsub/subscriptions",
                json={
                    "type": kind,
                    "version": version,
                    "condition": {"broadcaster_user_id": channel.id},
                    "transport": {"method": "websocket", "session_id": session_id},
                },
                headers=auth,
            )
            assert created.status_code == 202
            assert created.json()["data"][0]["cost"] == 0  # the broadcaster's own token
        # Live 4 s of every 4.4: Get Streams is read right after stream.online, 2 s before the
        # title changes.
        schedule = asyncio.create_task(
            demo.keep_streaming(twitch, channel.id, live_for=4.0, every=4.4)
        )
        try:
            seen: list[tuple[str, Any]] = []
            until = time.monotonic() + DEADLINE_S
            streams_while_live: list[dict[str, Any]] = []
            while len(seen) < 4:
                raw = await asyncio.wait_for(ws.recv(), max(until - time.monotonic(), 0.01))
                message = json.loads(raw)
                kind = message["metadata"]["subscription_type"]
                event = message["payload"]["event"]
                seen.append((kind, event.get("title")))
                if kind == "stream.online" and not streams_while_live:
                    answer = await http.get(
                        "/helix/streams", params={"user_id": channel.id}, headers=auth
                    )
                    streams_while_live = answer.json()["data"]
                    assert streams_while_live[0]["id"] == event["id"]
        finally:
            schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await schedule
    assert [k for k, _ in seen] == [
        "stream.online",
        "channel.update",
        "stream.offline",
        "stream.online",
    ]
    assert seen[1][1] == "Demo stream #1: second half"
    assert streams_while_live[0]["title"] == "Demo stream #1"


async def test_demo_world_points_at_the_socket_and_seeding_connects_the_token(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with demo.demo_world(settings) as (demo_settings, world):
        assert (
            demo_settings.twitch_eventsub_ws_url
            == world.twitch_base.replace("http://", "ws://") + "/ws"
        )
        live_id = next(c.id for c in world.twitch.channels.values() if c.login == demo.LIVE_CHANNEL)
        until = time.monotonic() + DEADLINE_S
        while live_id not in world.twitch.live:  # the schedule starts live
            assert time.monotonic() < until, "the demo channel never went live"
            await asyncio.sleep(0.01)  # polling the simulator's state
        client = HelixClient(
            client_id=demo_settings.twitch_client_id,
            client_secret=demo_settings.twitch_client_secret,
            api_url=demo_settings.twitch_api_url,
            auth_url=demo_settings.twitch_auth_url,
        )
        async with client:
            await demo.seed_demo(demo_settings, sessionmaker, client, world)
        async with sessionmaker() as session:
            row = (await session.execute(select(TwitchUserToken))).scalar_one()
        assert row.twitch_user_id == live_id
        assert row.login == demo.LIVE_CHANNEL
        assert unseal(demo_settings.signing_key, row.access_token_sealed) == world.user_token[0]
        assert row.refresh_token_sealed is not None
        assert world.user_token[0] not in row.access_token_sealed
