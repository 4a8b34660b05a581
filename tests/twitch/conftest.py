"""A Twitch simulator served over HTTP on loopback, in the test's own event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import uvicorn

from clipwatch.config import Settings
from clipwatch.twitch.client import HelixClient
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET, TwitchSimulator
from tests.conftest import free_port

START_DEADLINE_S = 10.0


@dataclass
class Sim:
    twitch: TwitchSimulator
    base: str

    def client(self, **kwargs: object) -> HelixClient:
        return HelixClient(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            api_url=f"{self.base}/helix",
            auth_url=f"{self.base}/oauth2",
            **kwargs,  # type: ignore[arg-type]
        )


async def serve(twitch: TwitchSimulator) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    config = uvicorn.Config(twitch, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + START_DEADLINE_S
    while not server.started:
        assert not task.done(), "simulator stopped"
        assert time.monotonic() < deadline, "simulator did not start"
        await asyncio.sleep(0.01)  # polling interval while waiting on the condition above
    return server, task, f"http://127.0.0.1:{port}"


@pytest.fixture
def make_sim() -> Callable[..., TwitchSimulator]:
    return TwitchSimulator


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    twitch = TwitchSimulator(seed=7, points_per_minute=100_000)
    server, task, base = await serve(twitch)
    try:
        yield Sim(twitch, base)
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def twitch_settings(settings: Settings, sim: Sim) -> Settings:
    """The app's settings, with Twitch being the simulator."""
    return settings.model_copy(
        update={
            "twitch_client_id": CLIENT_ID,
            "twitch_client_secret": CLIENT_SECRET,
            "twitch_api_url": f"{sim.base}/helix",
            "twitch_auth_url": f"{sim.base}/oauth2",
        }
    )
