from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import helix_clip, store_clips


async def test_stored_clip_is_found_by_title_word(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await store_clips(sessionmaker, [helix_clip(title="Insane clutch play"), helix_clip()])
    answer = await client.get("/api/v1/clips", params={"q": "clut"})
    assert answer.status_code == 200
    assert [c["title"] for c in answer.json()["data"]] == ["Insane clutch play"]
