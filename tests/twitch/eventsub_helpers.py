"""A running EventSub client against the simulator, on the test's database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Channel
from clipwatch.runtime.eventsub_task import live_handler
from clipwatch.twitch.eventsub import EventSubClient
from clipwatch.twitch.eventsub_messages import Event
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET
from clipwatch.twitch.user_tokens import UserTokenKeeper, connect_user_token
from tests.twitch.conftest import Sim

DEADLINE_S = 15.0  # how long a test waits for what must happen
KEEPALIVE_S = 1  # the simulator's floor is lowered to it: the watchdog fires in seconds
# The client's grace past a keepalive: its watchdog fires 1 + 3 s after the last message.
# A grace of 1 s fired on a busy CI machine whose event loop stalled past 2 s, a reconnect
# no test had asked for (`keepalive` where the test closed the socket itself).
GRACE_S = 3.0
Sessions = async_sessionmaker[AsyncSession]


async def wait_for(condition: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    """Poll `condition` (sync or async) until truthy; fail with `what` after the deadline."""
    until = time.monotonic() + deadline_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < until, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)  # polling interval of the condition above


def eventsub_settings(settings: Settings, sim: Sim) -> Settings:
    return settings.model_copy(
        update={
            "twitch_client_id": CLIENT_ID,
            "twitch_client_secret": CLIENT_SECRET,
            "twitch_api_url": f"{sim.base}/helix",
            "twitch_auth_url": f"{sim.base}/oauth2",
            "twitch_eventsub_ws_url": sim.base.replace("http://", "ws://") + "/ws",
        }
    )


async def track(sessionmaker: Sessions, sim: Sim, logins: list[str]) -> list[str]:
    """Channels in the simulator and tracked in the database; their ids."""
    ids = []
    async with session_scope(sessionmaker) as session:
        for login in logins:
            channel = sim.twitch.add_channel(login)
            session.add(
                Channel(
                    id=channel.id,
                    login=channel.login,
                    display_name=channel.display_name,
                    tracked=True,
                )
            )
            ids.append(channel.id)
    return ids


@dataclass
class Running:
    sim: Sim
    settings: Settings
    sessionmaker: Sessions
    client: EventSubClient
    keeper: UserTokenKeeper
    channel_ids: list[str]
    access_token: str
    refresh_token: str
    events: list[Event] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def es(self) -> Any:
        return self.sim.twitch.eventsub

    def open_sessions(self) -> list[Any]:
        return [s for s in self.es.sessions() if s.open]

    async def subscribed(self, count: int) -> str:
        """Until the client's session holds `count` subscriptions; its id."""

        def ready() -> str | None:
            sid = self.client.state.session_id
            if sid is None or len(self.client.state.subscriptions) != count:
                return None
            views = [s for s in self.es.sessions() if s.id == sid and s.open]
            return sid if views and len(views[0].subscription_ids) == count else None

        result: str = await wait_for(ready, f"{count} subscriptions on an open session")
        return result

    async def events_of(self, kind: type, count: int) -> list[Any]:
        found: list[Any] = await wait_for(
            lambda: (
                len([e for e in self.events if isinstance(e, kind)]) >= count
                and [e for e in self.events if isinstance(e, kind)]
            ),
            f"{count} {kind.__name__} events",
        )
        return found


@asynccontextmanager
async def running_client(
    sim: Sim,
    settings: Settings,
    sessionmaker: Sessions,
    logins: list[str],
    *,
    token_lifetime_s: int | None = None,
    start: bool = True,
    grace_s: float | None = GRACE_S,
) -> AsyncIterator[Running]:
    sim.twitch.eventsub.min_keepalive_s = KEEPALIVE_S
    settings = eventsub_settings(settings, sim)
    ids = await track(sessionmaker, sim, logins)
    access, refresh = sim.twitch.issue_user_token("clipbot", lifetime_s=token_lifetime_s)
    async with httpx.AsyncClient(timeout=10.0) as http:
        await connect_user_token(settings, sessionmaker, access, refresh, http=http)
        keeper = UserTokenKeeper(settings, sessionmaker, http)
        assert await keeper.load()
        store = live_handler(settings, sessionmaker)
        events: list[Event] = []

        async def handle(event: Event) -> None:
            events.append(event)
            await store(event)

        async def channels() -> list[str]:
            return list(ids)

        client = EventSubClient(
            ws_url=settings.twitch_eventsub_ws_url,
            api_url=settings.eventsub_api_url,
            client_id=settings.twitch_client_id,
            tokens=keeper,
            channels=channels,
            handler=handle,
            sessionmaker=sessionmaker,
            http=http,
            keepalive_s=KEEPALIVE_S,
            grace_s=grace_s,
        )
        running = Running(sim, settings, sessionmaker, client, keeper, ids, access, refresh, events)
        if start:
            running.task = asyncio.create_task(client.run(running.stop))
        try:
            yield running
        finally:
            running.stop.set()
            if running.task is not None:
                await asyncio.wait_for(running.task, DEADLINE_S)
