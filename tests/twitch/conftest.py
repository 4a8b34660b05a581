"""A Twitch simulator served over HTTP on loopback, in the test's own event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from clipwatch.config import Settings
from clipwatch.simhttp import LoopbackServer
from clipwatch.twitch.client import HelixClient
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET, TwitchSimulator


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


@pytest.fixture
def make_sim() -> Callable[..., TwitchSimulator]:
    return TwitchSimulator


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    twitch = TwitchSimulator(seed=7, points_per_minute=100_000)
    server = LoopbackServer(twitch)
    base = await server.start()
    try:
        yield Sim(twitch, base)
    finally:
        await server.stop()


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
