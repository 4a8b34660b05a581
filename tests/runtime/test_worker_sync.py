"""The worker passes its settings to the sync: a deletion is confirmed as configured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Clip
from clipwatch.runtime.worker import run_worker
from clipwatch.twitch import sync
from tests.twitch.conftest import Sim


async def stored_ids(sessionmaker: async_sessionmaker[AsyncSession]) -> set[str]:
    async with session_scope(sessionmaker) as session:
        return set((await session.scalars(select(Clip.id))).all())


async def deleted_ids(sessionmaker: async_sessionmaker[AsyncSession]) -> set[str]:
    async with session_scope(sessionmaker) as session:
        stmt = select(Clip.id).where(Clip.deleted_at.is_not(None))
        return set((await session.scalars(stmt)).all())


async def test_the_workers_deletion_wait_is_the_setting(
    twitch_settings: Settings, sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    channel = sim.twitch.add_channel("alpha", clips=0)
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    clip, kept = (
        sim.twitch.add_clip(channel.id, created_at=hour_ago, visible_at=hour_ago) for _ in "ab"
    )
    async with sim.client() as helix:
        await sync.add_channels(helix, sessionmaker, ["alpha"])
        await sync.sync_all(helix, sessionmaker, backfill=True)
        assert await stored_ids(sessionmaker) == {clip.id, kept.id}
        sim.twitch.delete_clip(clip.id)
        # The default (5 minutes between confirmations) keeps it a suspect for now.
        await run_worker(twitch_settings, helix, sessionmaker, interval=0.01, passes=3)
        assert await deleted_ids(sessionmaker) == set()
        # With no wait: suspect, first and second confirmation within three passes.
        instant = twitch_settings.model_copy(update={"deletion_confirm_minutes": 0})
        await run_worker(instant, helix, sessionmaker, interval=0.01, passes=3)
    assert await deleted_ids(sessionmaker) == {clip.id}
