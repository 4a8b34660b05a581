"""Moderation on the clip page (issue 17), in-process on both databases: a moderator hides a
clip with a reason and unhides it from its page; everyone else gets a 404 page for it, and a
member's form post is refused."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.db.engine import session_scope
from tests.factories import helix_clip, store_clips
from tests.web.test_me_page import csrf, log_in, make_token

Sessions = async_sessionmaker[AsyncSession]


async def test_a_moderator_hides_and_unhides_from_the_clip_page(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await store_clips(sessionmaker, [helix_clip(id="PageClip", title="secret title")])
    anonymous = await client.get("/clips/PageClip")
    assert anonymous.status_code == 200
    assert "Moderation" not in anonymous.text

    token = await make_token(sessionmaker, "mo")
    async with session_scope(sessionmaker) as session:
        await service.set_role(session, await service.user_by_name(session, "mo"), "moderator")
    await log_in(client, token)
    proof = await csrf(client)
    page = await client.get("/clips/PageClip")
    assert 'action="/clips/PageClip/hide"' in page.text
    assert page.headers["cache-control"] == "no-store"

    empty = await client.post("/clips/PageClip/hide", data={"csrf": proof, "reason": " "})
    assert empty.status_code == 422
    assert "a reason is required" in empty.text
    unproven = await client.post("/clips/PageClip/hide", data={"reason": "x"})
    assert unproven.status_code == 403
    done = await client.post("/clips/PageClip/hide", data={"csrf": proof, "reason": "doxxing"})
    assert done.status_code == 303
    assert done.headers["location"] == "/clips/PageClip"
    mine = await client.get("/clips/PageClip")
    assert mine.status_code == 200
    assert "Hidden by mo" in mine.text
    assert "doxxing" in mine.text
    assert 'action="/clips/PageClip/unhide"' in mine.text

    async with httpx.AsyncClient(transport=client._transport, base_url=client.base_url) as other:
        gone = await other.get("/clips/PageClip")
        assert gone.status_code == 404
        assert "secret title" not in gone.text
        search = await other.get("/", params={"q": "secret"})
        assert "/clips/PageClip" not in search.text

    back = await client.post("/clips/PageClip/unhide", data={"csrf": proof})
    assert back.status_code == 303
    async with httpx.AsyncClient(transport=client._transport, base_url=client.base_url) as other:
        assert (await other.get("/clips/PageClip")).status_code == 200


async def test_a_member_cannot_hide_from_a_page(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await store_clips(sessionmaker, [helix_clip(id="PageClip2")])
    await log_in(client, await make_token(sessionmaker, "ann"))
    proof = await csrf(client)
    page = await client.get("/clips/PageClip2")
    assert "/hide" not in page.text
    refused = await client.post("/clips/PageClip2/hide", data={"csrf": proof, "reason": "x"})
    assert refused.status_code == 404
    assert (await client.get("/clips/PageClip2")).status_code == 200
    nobody = await client.post(
        "/clips/PageClip2/unhide",
        content=b"",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert nobody.status_code in (303, 403)
