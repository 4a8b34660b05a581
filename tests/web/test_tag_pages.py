"""Tags on the pages (issue 17), in-process on both databases: chips on cards and clip pages
link to the search for the tag (the search form has a Tag field); a signed-in member puts a tag
on a clip and takes it off from its page (CSRF-proofed), sees their private tags there and
nobody else does; bad form input is a 4xx page."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import helix_clip, store_clips
from tests.web.test_me_page import csrf, log_in, make_token

Sessions = async_sessionmaker[AsyncSession]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_chips_link_to_the_search_and_members_tag_from_the_clip_page(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await store_clips(
        sessionmaker,
        [helix_clip(id="Chip1", title="first one"), helix_clip(id="Chip2", title="second one")],
    )
    admin = await make_token(
        sessionmaker, "boss", admin=True, scopes=frozenset({"read", "write", "admin"})
    )
    funny = await client.post("/api/v1/tags", json={"name": "funny"}, headers=bearer(admin))
    assert funny.status_code == 201, funny.text
    funny_id = funny.json()["id"]

    anonymous = await client.get("/clips/Chip1")
    assert 'id="tagging-heading"' not in anonymous.text
    assert "#funny" not in anonymous.text

    token = await make_token(sessionmaker, "ann")
    mine = await client.post(
        "/api/v1/tags", json={"name": "rewatch", "private": True}, headers=bearer(token)
    )
    mine_id = mine.json()["id"]
    await log_in(client, token)
    proof = await csrf(client)
    page = await client.get("/clips/Chip1")
    assert page.headers["cache-control"] == "no-store"
    assert "No tags yet." in page.text
    assert f'<option value="{funny_id}">funny</option>' in page.text
    assert f'<option value="{mine_id}">rewatch (yours only)</option>' in page.text

    for tag_id in (funny_id, mine_id):
        put = await client.post("/clips/Chip1/tags", data={"csrf": proof, "tag": str(tag_id)})
        assert put.status_code == 303, put.text
    page = await client.get("/clips/Chip1")
    assert 'href="/?tag=funny">#funny</a>' in page.text
    assert "#rewatch</a> <small>(yours only)</small>" in page.text
    assert 'aria-label="Take #funny off"' in page.text

    # Cards on the search page carry the community chip, and the chip's search finds the clip.
    client.cookies.clear()
    results = await client.get("/", params={"tag": "funny"})
    assert results.status_code == 200
    assert "/clips/Chip1" in results.text
    assert "/clips/Chip2" not in results.text
    assert 'href="/?tag=funny">#funny</a>' in results.text
    assert 'name="tag" value="funny"' in results.text
    assert "#rewatch" not in results.text
    public = await client.get("/clips/Chip1")
    assert 'href="/?tag=funny">#funny</a>' in public.text
    assert "rewatch" not in public.text

    # Another member sees the community chip, may not take it off, never sees ann's own tag.
    bob = await make_token(sessionmaker, "bob")
    await log_in(client, bob)
    bob_proof = await csrf(client)
    theirs = await client.get("/clips/Chip1")
    assert "rewatch" not in theirs.text
    assert 'aria-label="Take #funny off"' not in theirs.text
    refused = await client.post(
        "/clips/Chip1/tags/remove", data={"csrf": bob_proof, "tag": str(funny_id)}
    )
    assert refused.status_code == 403
    hidden = await client.post("/clips/Chip1/tags", data={"csrf": bob_proof, "tag": str(mine_id)})
    assert hidden.status_code == 404

    # ann takes hers off again.
    client.cookies.clear()
    await log_in(client, token)
    proof = await csrf(client)
    off = await client.post("/clips/Chip1/tags/remove", data={"csrf": proof, "tag": str(funny_id)})
    assert off.status_code == 303, off.text[-600:]
    assert "#funny" not in (await client.get("/clips/Chip1")).text


async def test_bad_tag_forms_are_refused_with_a_page(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await store_clips(sessionmaker, [helix_clip(id="Chip3")])
    token = await make_token(sessionmaker, "ann")
    await log_in(client, token)
    proof = await csrf(client)
    for value in ("", "x", "01", "-1", "1.0", "9" * 40):
        answer = await client.post("/clips/Chip3/tags", data={"csrf": proof, "tag": value})
        assert answer.status_code == 422, (value, answer.status_code)
        assert "choose a tag" in answer.text
    assert (await client.post("/clips/Chip3/tags", data={"tag": "1"})).status_code == 403
    unknown = await client.post("/clips/Chip3/tags", data={"csrf": proof, "tag": "424242"})
    assert unknown.status_code == 404
    assert "text/html" in unknown.headers["content-type"]
