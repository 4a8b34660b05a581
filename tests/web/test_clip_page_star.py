"""The favourite star on a clip page (issue 17), in-process on both databases: a signed-in
member keeps and lets go of a clip from its page (the same favourites as the API); nobody
signed in sees no star; the page holding a viewer's star is never stored by a cache."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import helix_clip, store_clips
from tests.web.test_me_page import csrf, log_in, make_token


async def test_a_member_stars_and_unstars_a_clip_from_its_page(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await store_clips(sessionmaker, [helix_clip(id="Starry")])
    anonymous = await client.get("/clips/Starry")
    assert 'action="/clips/Starry/favourite"' not in anonymous.text
    assert anonymous.headers["cache-control"] == "no-cache"

    token = await make_token(sessionmaker, "ann")
    await log_in(client, token)
    proof = await csrf(client)
    page = await client.get("/clips/Starry")
    assert "☆ Add to favourites" in page.text
    assert page.headers["cache-control"] == "no-store"
    kept = await client.post("/clips/Starry/favourite", data={"csrf": proof, "keep": "1"})
    assert kept.status_code == 303
    assert "★ In your favourites" in (await client.get("/clips/Starry")).text
    mine = await client.get("/api/v1/me/favourites", headers={"Authorization": f"Bearer {token}"})
    assert [f["clip"]["id"] for f in mine.json()["data"]] == ["Starry"]
    dropped = await client.post("/clips/Starry/favourite", data={"csrf": proof, "keep": "0"})
    assert dropped.status_code == 303
    assert "☆ Add to favourites" in (await client.get("/clips/Starry")).text
    unproven = await client.post("/clips/Starry/favourite", data={"keep": "1"})
    assert unproven.status_code == 403
    missing = await client.post("/clips/NoSuch/favourite", data={"csrf": proof, "keep": "1"})
    assert missing.status_code == 404
