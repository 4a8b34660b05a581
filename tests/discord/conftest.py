"""A Discord simulator served over HTTP on loopback, in the test's own event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from clipwatch.discord.simulator import DiscordSimulator
from clipwatch.simhttp import LoopbackServer


@dataclass
class DiscordSim:
    discord: DiscordSimulator
    base: str


@pytest.fixture
async def discord_sim() -> AsyncIterator[DiscordSim]:
    discord = DiscordSimulator()
    server = LoopbackServer(discord)
    base = await server.start()
    try:
        yield DiscordSim(discord, base)
    finally:
        await server.stop()
