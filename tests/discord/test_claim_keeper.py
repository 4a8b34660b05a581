"""A delivery pass keeps its claim while it runs (discord/delivery.py `_keep_claimed`), on both
databases against the Discord simulator: a send that waits longer than the claim (Discord's
limits, a slow answer) is not taken over and sent again by another worker. Only a worker that
stopped lets its claim lapse (tests/discord/test_kill_delivery.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.discord.delivery import deliver_due
from clipwatch.discord.sender import Outcome, WebhookSender
from clipwatch.discord.webhook_url import WebhookTarget
from clipwatch.waiting import cancel_and_wait
from tests.discord.conftest import DiscordSim
from tests.discord.test_delivery import KEY, deliveries, store
from tests.discord.test_lifecycle import clip, route_with

CLAIM = timedelta(seconds=1)
DEADLINE_S = 10.0


class HeldSender(WebhookSender):
    """The real sender, each send held until the test lets it go."""

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self.sending = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, target: WebhookTarget, payload: dict[str, Any], **kw: Any) -> Outcome:
        self.sending.set()
        await self.release.wait()
        return await super().send(target, payload, **kw)


async def test_a_pass_slower_than_its_claim_keeps_it(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    await route_with(sessionmaker, discord_sim)
    await store(sessionmaker, [clip("Slow1", title="slow one")])
    held = HeldSender(f"{discord_sim.base}/api/v10")
    other = WebhookSender(f"{discord_sim.base}/api/v10")
    first = asyncio.create_task(deliver_due(sessionmaker, held, KEY, claim=CLAIM))
    try:
        async with asyncio.timeout(DEADLINE_S):
            await held.sending.wait()
        # Another worker looks for due rows for three claims' time: it never gets this one.
        until = time.monotonic() + 3 * CLAIM.total_seconds()
        looks = 0
        while time.monotonic() < until:
            report = await deliver_due(sessionmaker, other, KEY, claim=CLAIM)
            assert report.messages == 0, "the held claim was taken over"
            looks += 1
            await asyncio.sleep(0.1)  # polling interval of the other worker
        assert looks >= 10
        held.release.set()
        async with asyncio.timeout(DEADLINE_S):
            report = await first
    finally:
        if not first.done():  # a failed assertion above: the held pass is not left running
            await cancel_and_wait(first)
        await held.aclose()
        await other.aclose()
    assert report.sent == 1
    assert len(discord_sim.discord.received) == 1
    [row] = await deliveries(sessionmaker)
    assert row.status == "sent"
