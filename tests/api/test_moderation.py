"""Moderation through the API (issue 17), on both databases: who may hide, what a hidden clip
leaves (every public answer) and keeps (the archive, a re-sync), the audit log and roles."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.db.engine import session_scope
from tests.api.test_accounts import PROBLEM, bearer, make_user
from tests.factories import helix_clip, store_clips

Sessions = async_sessionmaker[AsyncSession]
ALPHA = {"broadcaster_id": "1001", "broadcaster_name": "AlphaStreams"}


async def moderator(sessionmaker: Sessions, name: str = "mo") -> str:
    user_id, token = await make_user(sessionmaker, name)
    async with session_scope(sessionmaker) as session:
        user = await service.user_by_name(session, name)
        assert user.id == user_id
        assert await service.set_role(session, user, "moderator")
    return token


async def seeded(sessionmaker: Sessions) -> list[dict[str, Any]]:
    clips = [
        helix_clip(id=f"Mod{i}", title=f"secret address {i}", view_count=100 + i, **ALPHA)
        for i in range(3)
    ]
    await store_clips(sessionmaker, clips)
    return clips


async def hide(client: httpx.AsyncClient, token: str, clip_id: str, reason: str) -> httpx.Response:
    return await client.put(
        f"/api/v1/clips/{clip_id}/hidden", json={"reason": reason}, headers=bearer(token)
    )


async def public_views(client: httpx.AsyncClient) -> dict[str, Any]:
    """What anyone can see of the archive, from each public surface of the API and pages."""
    search = await client.get("/api/v1/clips", params={"limit": 100})
    words = await client.get("/api/v1/clips", params={"q": "secret", "limit": 100})
    stats = await client.get("/api/v1/channels/alphastreams/stats", params={"period": "all"})
    export = await client.get("/api/v1/clips/export", params={"format": "csv", "max_rows": 1000})
    page = await client.get("/", params={"q": "secret"})
    for answer in (search, words, stats, export, page):
        assert answer.status_code == 200, answer.text
    rows = list(csv.DictReader(io.StringIO(export.text)))
    return {
        "search": {c["id"] for c in search.json()["data"]},
        "words": {c["id"] for c in words.json()["data"]},
        "stats_clips": stats.json()["clips"],
        "stats_top": {c["id"] for c in stats.json()["top_clips"]},
        "export": {r["id"] for r in rows},
        "page": {f"Mod{i}" for i in range(3) if f"/clips/Mod{i}" in page.text},
    }


async def test_a_hidden_clip_leaves_every_public_answer_and_comes_back(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await seeded(sessionmaker)
    _, alice = await make_user(sessionmaker, "alice")
    assert (
        await client.put("/api/v1/me/favourites/Mod1", headers=bearer(alice))
    ).status_code == 204
    every = {"Mod0", "Mod1", "Mod2"}
    before = await public_views(client)
    assert before == {
        "search": every,
        "words": every,
        "stats_clips": 3,
        "stats_top": every,
        "export": every,
        "page": every,
    }
    mo = await moderator(sessionmaker)

    answer = await hide(client, mo, "Mod1", "  a leaked   address ")
    assert answer.status_code == 200, answer.text
    hidden = answer.json()
    assert (hidden["reason"], hidden["hidden_by"], hidden["clip"]["id"]) == (
        "a leaked address",
        "mo",
        "Mod1",
    )

    rest = every - {"Mod1"}
    assert await public_views(client) == {
        "search": rest,
        "words": rest,
        "stats_clips": 2,
        "stats_top": rest,
        "export": rest,
        "page": rest,
    }
    for url in ("/api/v1/clips/Mod1", "/clips/Mod1"):
        gone = await client.get(url)
        assert gone.status_code == 404, (url, gone.text)
        assert "secret address 1" not in gone.text
    kept = await client.get("/api/v1/me/favourites", headers=bearer(alice))
    assert [f["clip"]["id"] for f in kept.json()["data"]] == []
    assert (
        await client.put("/api/v1/me/favourites/Mod1", headers=bearer(alice))
    ).status_code == 404
    # Moderators still find it.
    listed = await client.get("/api/v1/moderation/hidden", headers=bearer(mo))
    assert [h["clip"]["id"] for h in listed.json()["data"]] == ["Mod1"]

    # A re-sync stores the clip again (new views): it stays hidden.
    await store_clips(
        sessionmaker, [helix_clip(id="Mod1", title="secret address 1", view_count=999, **ALPHA)]
    )
    assert (await client.get("/api/v1/clips/Mod1")).status_code == 404
    assert (await public_views(client))["search"] == rest

    back = await client.delete("/api/v1/clips/Mod1/hidden", headers=bearer(mo))
    assert back.status_code == 204, back.text
    after = await public_views(client)
    assert (after["search"], after["export"], after["stats_clips"]) == (every, every, 3)
    assert (await client.get("/api/v1/clips/Mod1")).json()["view_count"] == 999
    kept = await client.get("/api/v1/me/favourites", headers=bearer(alice))
    assert [f["clip"]["id"] for f in kept.json()["data"]] == ["Mod1"]  # kept all along


async def test_only_moderators_and_admins_hide(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await seeded(sessionmaker)
    _, member = await make_user(sessionmaker, "member")
    _, reader = await make_user(sessionmaker, "reader", scopes=("read",))
    _, admin = await make_user(sessionmaker, "boss", admin=True, scopes=("read", "write", "admin"))
    mo = await moderator(sessionmaker)
    async with session_scope(sessionmaker) as session:
        user = await service.user_by_name(session, "reader")
        await service.set_role(session, user, "moderator")  # a moderator, but read-only token

    anonymous = await client.put("/api/v1/clips/Mod0/hidden", json={"reason": "x"})
    assert anonymous.status_code == 401
    for token in (member, reader):
        answer = await hide(client, token, "Mod0", "x")
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert (
            await client.delete("/api/v1/clips/Mod0/hidden", headers=bearer(token))
        ).status_code == 403
        assert (
            await client.get("/api/v1/moderation/hidden", headers=bearer(token))
        ).status_code == 403
    assert (await client.get("/api/v1/clips/Mod0")).status_code == 200

    assert (await hide(client, admin, "Mod0", "by an admin")).status_code == 200
    assert (await hide(client, mo, "Mod2", "by a moderator")).status_code == 200
    missing = await hide(client, mo, "NoSuchClip", "x")
    assert missing.status_code == 404
    # The audit log is the admins'.
    assert (await client.get("/api/v1/audit", headers=bearer(mo))).status_code == 403
    assert (await client.get("/api/v1/audit", headers=bearer(admin))).status_code == 200


async def test_bad_reasons_are_refused(client: httpx.AsyncClient, sessionmaker: Sessions) -> None:
    await seeded(sessionmaker)
    mo = await moderator(sessionmaker)
    for body in (
        {},
        {"reason": ""},
        {"reason": "   "},
        {"reason": "a\nb"},
        {"reason": "x" * 501},
        {"reason": "ok", "extra": 1},
        {"reason": 5},
    ):
        answer = await client.put("/api/v1/clips/Mod0/hidden", json=body, headers=bearer(mo))
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == PROBLEM
    assert (await client.get("/api/v1/clips/Mod0")).status_code == 200


async def test_hiding_is_idempotent_and_audited(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await seeded(sessionmaker)
    mo = await moderator(sessionmaker)
    admin_id, admin = await make_user(
        sessionmaker, "boss", admin=True, scopes=("read", "write", "admin")
    )
    assert (await hide(client, mo, "Mod0", "first")).status_code == 200
    again = await hide(client, mo, "Mod0", "second")
    assert again.status_code == 200
    assert again.json()["reason"] == "first"  # nothing changed
    assert (await client.delete("/api/v1/clips/Mod0/hidden", headers=bearer(mo))).status_code == 204
    assert (await client.delete("/api/v1/clips/Mod0/hidden", headers=bearer(mo))).status_code == 204
    assert (await client.delete("/api/v1/clips/Mod2/hidden", headers=bearer(mo))).status_code == 204

    log = (await client.get("/api/v1/audit", headers=bearer(admin))).json()
    assert [(e["action"], e["target"], e["actor"], e["reason"]) for e in log["data"]] == [
        ("clip.unhide", "Mod0", "mo", None),
        ("clip.hide", "Mod0", "mo", "first"),
    ]
    assert log["next_cursor"] is None

    # Roles: an admin makes a moderator; audited too; pages of one over the cursor.
    member_id, _ = await make_user(sessionmaker, "newbie")
    made = await client.put(
        f"/api/v1/users/{member_id}/role", json={"role": "moderator"}, headers=bearer(admin)
    )
    assert made.status_code == 200, made.text
    assert made.json()["role"] == "moderator"
    bad = await client.put(
        f"/api/v1/users/{member_id}/role", json={"role": "owner"}, headers=bearer(admin)
    )
    assert bad.status_code == 422
    assert (
        await client.put(
            f"/api/v1/users/{admin_id}/role", json={"role": "admin"}, headers=bearer(mo)
        )
    ).status_code == 403
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/audit", params=params, headers=bearer(admin))).json()
        seen += [e["action"] for e in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["user.role", "clip.unhide", "clip.hide"]
    only = await client.get("/api/v1/audit", params={"action": "clip.hide"}, headers=bearer(admin))
    assert [e["target"] for e in only.json()["data"]] == ["Mod0"]
    wrong = await client.get(
        "/api/v1/audit", params={"limit": 1, "cursor": cursor or "AAAA"}, headers=bearer(admin)
    )
    assert wrong.status_code in (400, 422)
