"""Favourites through the API (issue 17), on both databases: keep, read back newest first
over cursors, let go; idempotent both ways; another member's favourites are out of reach."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.test_accounts import PROBLEM, bearer, make_user
from tests.factories import helix_clip, store_clips

BASE = "/api/v1/me/favourites"


async def walk(client: httpx.AsyncClient, token: str, limit: int) -> list[dict[str, Any]]:
    """Every favourite over `next_cursor`, with a bound on the number of pages."""
    kept: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        answer = await client.get(BASE, params=params, headers=bearer(token))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["data"]) <= limit
        kept.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return kept
    raise AssertionError("the walk never ended")


async def test_keep_read_back_and_let_go(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    clips = [helix_clip(title=f"clip {i}", view_count=10 * i) for i in range(5)]
    await store_clips(sessionmaker, clips)
    ids = [c["id"] for c in clips]
    for clip_id in ids:
        answer = await client.put(f"{BASE}/{clip_id}", headers=bearer(alice))
        assert answer.status_code == 204, answer.text
    again = await client.put(f"{BASE}/{ids[0]}", headers=bearer(alice))
    assert again.status_code == 204  # idempotent: still kept once, at its first time

    for limit in (1, 2, 5, 100):
        kept = await walk(client, alice, limit)
        assert [k["clip"]["id"] for k in kept] == ids[::-1]  # newest kept first, each once
    first = (await client.get(BASE, headers=bearer(alice))).json()["data"]
    assert first[-1]["clip"]["title"] == "clip 0"
    assert first[-1]["clip"]["view_count"] == 0
    assert first[0]["favourited_at"] >= first[-1]["favourited_at"]

    gone = await client.delete(f"{BASE}/{ids[2]}", headers=bearer(alice))
    assert gone.status_code == 204
    assert (await client.delete(f"{BASE}/{ids[2]}", headers=bearer(alice))).status_code == 204
    kept = await walk(client, alice, 2)
    assert [k["clip"]["id"] for k in kept] == [ids[4], ids[3], ids[1], ids[0]]


async def test_a_clip_not_in_the_archive_cannot_be_kept(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    answer = await client.put(f"{BASE}/NoSuchClip", headers=bearer(alice))
    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert (await client.get(BASE, headers=bearer(alice))).json()["data"] == []


async def test_each_member_sees_only_their_own(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    _, bob = await make_user(sessionmaker, "bob")
    clips = [helix_clip() for _ in range(3)]
    await store_clips(sessionmaker, clips)
    for clip in clips:
        await client.put(f"{BASE}/{clip['id']}", headers=bearer(alice))
    await client.put(f"{BASE}/{clips[0]['id']}", headers=bearer(bob))
    # Bob letting go of a clip only Alice kept changes nothing of hers.
    await client.delete(f"{BASE}/{clips[1]['id']}", headers=bearer(bob))

    bobs = (await client.get(BASE, headers=bearer(bob))).json()
    assert [k["clip"]["id"] for k in bobs["data"]] == [clips[0]["id"]]
    alices = await walk(client, alice, 100)
    assert len(alices) == 3
    # Alice's cursor continues only Alice's list.
    page = (await client.get(BASE, params={"limit": 1}, headers=bearer(alice))).json()
    stolen = await client.get(
        BASE, params={"limit": 1, "cursor": page["next_cursor"]}, headers=bearer(bob)
    )
    assert stolen.status_code == 400
    assert stolen.headers["content-type"] == PROBLEM


async def test_credentials_and_scopes(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, reader = await make_user(sessionmaker, "reader", scopes=("read",))
    clip = helix_clip()
    await store_clips(sessionmaker, [clip])
    for method in ("PUT", "DELETE"):
        anonymous = await client.request(method, f"{BASE}/{clip['id']}")
        assert anonymous.status_code == 401
        read_only = await client.request(method, f"{BASE}/{clip['id']}", headers=bearer(reader))
        assert read_only.status_code == 403
    assert (await client.get(BASE)).status_code == 401
    assert (await client.get(BASE, headers=bearer(reader))).status_code == 200


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (f"{BASE}/bad%20id", {}),
        (f"{BASE}/{'x' * 129}", {}),
        (BASE, {"limit": 0}),
        (BASE, {"limit": 101}),
        (BASE, {"cursor": "not a cursor!"}),
    ],
)
async def test_bad_input_is_a_clear_4xx(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    path: str,
    params: dict[str, Any],
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    method = "GET" if path == BASE else "PUT"
    answer = await client.request(method, path, params=params, headers=bearer(alice))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM


async def test_clips_favourite_true_is_the_callers_favourites_with_every_filter_and_sort(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    _, bob = await make_user(sessionmaker, "bob")
    clips = [
        helix_clip(title=f"{'pog' if i % 2 else 'calm'} moment {i}", view_count=100 + i)
        for i in range(8)
    ]
    await store_clips(sessionmaker, clips)
    kept = [c["id"] for c in clips[:6]]
    for clip_id in kept:
        assert (await client.put(f"{BASE}/{clip_id}", headers=bearer(alice))).status_code == 204
    await client.put(f"{BASE}/{clips[7]['id']}", headers=bearer(bob))

    async def ids(token: str, **params: Any) -> list[str]:
        found: list[str] = []
        cursor = None
        for _ in range(50):
            query = {"favourite": "true", "limit": 2, **params}
            if cursor:
                query["cursor"] = cursor
            answer = await client.get("/api/v1/clips", params=query, headers=bearer(token))
            assert answer.status_code == 200, answer.text
            found += [c["id"] for c in answer.json()["data"]]
            cursor = answer.json()["next_cursor"]
            if cursor is None:
                return found
        raise AssertionError("the walk never ended")

    by_views = sorted(kept, key=lambda i: -next(c["view_count"] for c in clips if c["id"] == i))
    assert await ids(alice, sort="views") == by_views
    assert sorted(await ids(alice, sort="newest")) == sorted(kept)
    pogs = [c["id"] for c in clips[:6] if c["title"].startswith("pog")]
    assert sorted(await ids(alice, q="pog")) == sorted(pogs)  # relevance, with the text match
    assert sorted(await ids(alice, q="pog", sort="views")) == sorted(pogs)
    assert await ids(alice, min_views=104, sort="views") == [kept[5], kept[4]]
    assert await ids(bob) == [clips[7]["id"]]

    # The caller's own: not cached for everyone, not without credentials, cursors not shared.
    assert (await client.get("/api/v1/clips", params={"favourite": "true"})).status_code == 401
    first = await client.get(
        "/api/v1/clips", params={"favourite": "true", "limit": 1}, headers=bearer(alice)
    )
    stolen = await client.get(
        "/api/v1/clips",
        params={"favourite": "true", "limit": 1, "cursor": first.json()["next_cursor"]},
        headers=bearer(bob),
    )
    assert stolen.status_code == 400
    everyone = await client.get("/api/v1/clips", params={"limit": 100}, headers=bearer(bob))
    assert len(everyone.json()["data"]) == len(clips)
