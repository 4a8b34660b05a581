"""Demo mode's data: until the Twitch simulator drives a real sync, a seeded synthetic archive."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.clips.importer import ImportReport, import_clips
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Clip
from clipwatch.twitch.synthetic import World

DEMO_CLIPS = 3_000


async def seed_demo_archive(
    sessionmaker: async_sessionmaker[AsyncSession], clips: int = DEMO_CLIPS
) -> ImportReport | None:
    """Fill an empty demo database with synthetic clips from the last 90 days."""
    async with session_scope(sessionmaker) as session:
        if (await session.execute(select(func.count()).select_from(Clip))).scalar_one():
            return None
    world = World(seed=7, channels=12, games=20)
    lines = (orjson.dumps(c) for c in world.clips(clips, span_days=90, end=datetime.now(UTC)))
    return await import_clips(sessionmaker, lines)
