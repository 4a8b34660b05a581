"""Helix-shaped clip objects for tests, and a way to store them through the import path."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.clips.importer import ImportReport, import_clips

_counter = itertools.count(1)
BASE_TIME = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def helix_clip(**overrides: Any) -> dict[str, Any]:
    """A valid Get Clips `data` element; override any field."""
    n = next(_counter)
    slug = overrides.pop("id", f"TestClipSlug-{n:08d}")
    clip: dict[str, Any] = {
        "id": slug,
        "url": f"https://clips.twitch.tv/{slug}",
        "embed_url": f"https://clips.twitch.tv/embed?clip={slug}",
        "broadcaster_id": "1001",
        "broadcaster_name": "AlphaStreams",
        "creator_id": "5001",
        "creator_name": "ClipperOne",
        "video_id": "",
        "game_id": "33214",
        "language": "en",
        "title": f"test clip {n}",
        "view_count": 10,
        "created_at": (BASE_TIME - timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "thumbnail_url": f"https://clips-media-assets2.twitch.tv/{slug}-preview-480x272.jpg",
        "duration": 30.0,
        "vod_offset": None,
        "is_featured": False,
    }
    clip.update(overrides)
    return clip


async def store_clips(
    sessionmaker: async_sessionmaker[AsyncSession], clips: list[dict[str, Any]]
) -> ImportReport:
    """Store clips exactly the way `clipwatch clips import` does."""
    return await import_clips(sessionmaker, [orjson.dumps(c) for c in clips])
