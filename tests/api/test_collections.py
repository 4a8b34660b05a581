"""Collections through the API (issue 17), on both databases: create, read, list, change and
delete; items added, moved and removed keeping positions 0..n-1; who may see what (404,
never 403); If-Match against stale and concurrent writers; hidden clips left out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.clips.collections import seen_versions
from clipwatch.db.engine import session_scope
from clipwatch.db.models import CollectionItem, NotificationRoute
from tests.api.test_accounts import PROBLEM, bearer, make_user
from tests.api.test_moderation import hide, moderator
from tests.factories import helix_clip, store_clips

BASE = "/api/v1/collections"
Sessions = async_sessionmaker[AsyncSession]


async def clips(sessionmaker: Sessions, n: int) -> list[str]:
    made = [helix_clip(id=f"Col{i}", title=f"clip {i}") for i in range(n)]
    await store_clips(sessionmaker, made)
    return [c["id"] for c in made]


async def create(
    client: httpx.AsyncClient, token: str, title: str = "Best of", **body: Any
) -> dict[str, Any]:
    answer = await client.post(BASE, json={"title": title, **body}, headers=bearer(token))
    assert answer.status_code == 201, answer.text
    assert answer.headers["etag"] == f'"c{answer.json()["id"]}-v1"'
    return dict(answer.json())


async def add(
    client: httpx.AsyncClient, token: str, cid: int, clip_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"{BASE}/{cid}/items", json={"clip_id": clip_id, **body}, headers=bearer(token)
    )


async def order(client: httpx.AsyncClient, token: str, cid: int) -> list[str]:
    answer = await client.get(f"{BASE}/{cid}", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    return [item["clip"]["id"] for item in answer.json()["items"]]


async def stored_positions(sessionmaker: Sessions, cid: int) -> dict[str, int]:
    async with session_scope(sessionmaker) as session:
        rows = await session.execute(
            select(CollectionItem.clip_id, CollectionItem.position).where(
                CollectionItem.collection_id == cid
            )
        )
        return {clip_id: position for clip_id, position in rows.all()}


def gapless(positions: dict[str, int]) -> bool:
    return sorted(positions.values()) == list(range(len(positions)))


async def test_create_read_list_change_and_delete(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    made = await create(client, alice, "Best of", description="the good ones")
    assert made["owner"] == "alice"
    assert made["visibility"] == "private"
    assert made["item_count"] == 0
    assert made["items"] == []
    assert made["share_key"]
    cid = made["id"]

    read = await client.get(f"{BASE}/{cid}", headers=bearer(alice))
    assert read.status_code == 200
    assert read.json()["description"] == "the good ones"
    assert read.headers["etag"] == f'"c{cid}-v1"'
    assert read.headers["cache-control"] == "private, no-store"
    assert "x-cache" not in read.headers  # never the shared cache's answer

    changed = await client.patch(
        f"{BASE}/{cid}", json={"title": "Better of", "visibility": "public"}, headers=bearer(alice)
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Better of"
    assert changed.json()["description"] == "the good ones"  # not named: unchanged
    assert changed.json()["visibility"] == "public"
    assert changed.headers["etag"] == f'"c{cid}-v2"'

    second = await create(client, alice, "Second")
    listed = await client.get(BASE, headers=bearer(alice))
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()["data"]] == [second["id"], cid]  # newest first

    gone = await client.delete(f"{BASE}/{cid}", headers=bearer(alice))
    assert gone.status_code == 204
    assert (await client.get(f"{BASE}/{cid}", headers=bearer(alice))).status_code == 404
    listed = await client.get(BASE, headers=bearer(alice))
    assert [c["id"] for c in listed.json()["data"]] == [second["id"]]


async def test_lists_walk_over_cursors(client: httpx.AsyncClient, sessionmaker: Sessions) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    _, bob = await make_user(sessionmaker, "bob")
    ids = [(await create(client, alice, f"c{i}", visibility="public"))["id"] for i in range(5)]
    await create(client, bob, "bob's private")
    public_of_bob = (await create(client, bob, "bob's", visibility="public"))["id"]
    for params, token, expected in (
        ({}, alice, ids[::-1]),
        ({"public": "true"}, None, [public_of_bob, *ids[::-1]]),
    ):
        seen: list[int] = []
        cursor = None
        for _ in range(20):
            query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            headers = bearer(token) if token else {}
            page = await client.get(BASE, params=query, headers=headers)
            assert page.status_code == 200, page.text
            seen.extend(c["id"] for c in page.json()["data"])
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == expected
    public = await client.get(BASE, params={"public": "true"})
    assert all(c["share_key"] is None for c in public.json()["data"])
    # Alice's cursor continues only her own walk.
    first = await client.get(BASE, params={"limit": 2}, headers=bearer(alice))
    stolen = {"limit": 2, "cursor": first.json()["next_cursor"]}
    assert (await client.get(BASE, params=stolen, headers=bearer(bob))).status_code == 400
    assert (await client.get(BASE)).status_code == 401


async def test_items_keep_their_order_without_gaps(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    a, b, c, d, e = await clips(sessionmaker, 5)
    cid = (await create(client, alice))["id"]
    for clip_id in (a, b, c):
        assert (await add(client, alice, cid, clip_id)).status_code == 201
    first = await add(client, alice, cid, d, position=0)
    assert first.status_code == 201
    assert [i["clip"]["id"] for i in first.json()["items"]] == [d, a, b, c]
    assert [i["position"] for i in first.json()["items"]] == [0, 1, 2, 3]
    far = await add(client, alice, cid, e, position=999)  # past the end: at the end
    assert far.status_code == 201
    assert await order(client, alice, cid) == [d, a, b, c, e]

    moved = await client.put(f"{BASE}/{cid}/items/{d}", json={"position": 3}, headers=bearer(alice))
    assert moved.status_code == 200, moved.text
    assert [i["clip"]["id"] for i in moved.json()["items"]] == [a, b, c, d, e]
    back = await client.put(f"{BASE}/{cid}/items/{e}", json={"position": 1}, headers=bearer(alice))
    assert [i["clip"]["id"] for i in back.json()["items"]] == [a, e, b, c, d]
    last = await client.put(f"{BASE}/{cid}/items/{a}", json={"position": 50}, headers=bearer(alice))
    assert [i["clip"]["id"] for i in last.json()["items"]] == [e, b, c, d, a]
    assert gapless(await stored_positions(sessionmaker, cid))

    removed = await client.delete(f"{BASE}/{cid}/items/{b}", headers=bearer(alice))
    assert removed.status_code == 204
    assert removed.headers["etag"] == f'"c{cid}-v10"'  # one version per write
    assert await order(client, alice, cid) == [e, c, d, a]
    assert gapless(await stored_positions(sessionmaker, cid))

    again = await add(client, alice, cid, c)
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert (await add(client, alice, cid, "NotInTheArchive")).status_code == 409
    not_in = await client.delete(f"{BASE}/{cid}/items/{b}", headers=bearer(alice))
    assert not_in.status_code == 404
    moved_absent = await client.put(
        f"{BASE}/{cid}/items/{b}", json={"position": 0}, headers=bearer(alice)
    )
    assert moved_absent.status_code == 404
    final = await client.get(f"{BASE}/{cid}", headers=bearer(alice))
    assert final.headers["etag"] == f'"c{cid}-v10"'  # refused writes changed nothing
    assert final.json()["item_count"] == 4


async def test_others_get_404_for_every_method(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    _, bob = await make_user(sessionmaker, "bob")
    [clip_id] = await clips(sessionmaker, 1)
    private = (await create(client, alice, "mine"))["id"]
    assert (await add(client, alice, private, clip_id)).status_code == 201
    unlisted = await create(client, alice, "by link", visibility="unlisted")
    public = (await create(client, alice, "for all", visibility="public"))["id"]
    bob_route = await route_of(sessionmaker, "bob")

    for cid in (private, unlisted["id"], public):
        tries = [
            client.patch(f"{BASE}/{cid}", json={"title": "x"}, headers=bearer(bob)),
            client.delete(f"{BASE}/{cid}", headers=bearer(bob)),
            client.post(f"{BASE}/{cid}/share-key", headers=bearer(bob)),
            add(client, bob, cid, clip_id),
            client.put(f"{BASE}/{cid}/items/{clip_id}", json={"position": 0}, headers=bearer(bob)),
            client.delete(f"{BASE}/{cid}/items/{clip_id}", headers=bearer(bob)),
            client.post(f"{BASE}/{cid}/post", json={"route_id": bob_route}, headers=bearer(bob)),
        ]
        for answer in await asyncio.gather(*tries):
            assert answer.status_code == 404, (cid, answer.request.method, answer.request.url)
            assert answer.headers["content-type"] == PROBLEM
    for cid in (private, unlisted["id"]):
        assert (await client.get(f"{BASE}/{cid}", headers=bearer(bob))).status_code == 404
        assert (await client.get(f"{BASE}/{cid}")).status_code == 404
    assert (await client.get(f"{BASE}/999999")).status_code == 404

    anonymous = await client.get(f"{BASE}/{public}")
    assert anonymous.status_code == 200
    assert anonymous.json()["share_key"] is None
    assert anonymous.headers["cache-control"] == "private, no-cache"
    key = unlisted["share_key"]
    other = "y" if key.endswith("x") else "x"  # a key ending in "x" made this flaky (1 in 64)
    wrong = await client.get(f"{BASE}/{unlisted['id']}", params={"key": key[:-1] + other})
    assert wrong.status_code == 404
    by_link = await client.get(f"{BASE}/{unlisted['id']}", params={"key": key})
    assert by_link.status_code == 200
    assert by_link.json()["share_key"] is None
    # A private collection's key opens nothing: only unlisted ones are read by link.
    private_key = (await client.get(f"{BASE}/{private}", headers=bearer(alice))).json()["share_key"]
    assert (await client.get(f"{BASE}/{private}", params={"key": private_key})).status_code == 404

    rotated = await client.post(f"{BASE}/{unlisted['id']}/share-key", headers=bearer(alice))
    assert rotated.status_code == 200
    assert rotated.json()["share_key"] != key
    assert (await client.get(f"{BASE}/{unlisted['id']}", params={"key": key})).status_code == 404

    listed = await client.get(BASE, headers=bearer(bob))
    assert listed.json()["data"] == []
    # Nothing of Alice's changed.
    assert await order(client, alice, private) == [clip_id]
    assert (await client.get(f"{BASE}/{private}", headers=bearer(alice))).json()["title"] == "mine"


async def test_read_only_tokens_read_but_do_not_write(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    _, reader = await make_user(sessionmaker, "reader", scopes=("read",))
    cid = (await create(client, alice, visibility="public"))["id"]
    assert (await client.post(BASE, json={"title": "x"}, headers=bearer(reader))).status_code == 403
    assert (await client.get(BASE, headers=bearer(reader))).status_code == 200
    assert (await client.get(f"{BASE}/{cid}", headers=bearer(reader))).status_code == 200
    answer = await client.patch(f"{BASE}/{cid}", json={"title": "x"}, headers=bearer(reader))
    assert answer.status_code == 403
    assert (await client.post(BASE, json={"title": "x"})).status_code == 401


async def test_admins_read_any_collection_but_change_none(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    _, admin = await make_user(sessionmaker, "root", admin=True, scopes=("read", "write", "admin"))
    cid = (await create(client, alice))["id"]
    read = await client.get(f"{BASE}/{cid}", headers=bearer(admin))
    assert read.status_code == 200
    assert read.json()["share_key"] is None
    answer = await client.patch(f"{BASE}/{cid}", json={"title": "x"}, headers=bearer(admin))
    assert answer.status_code == 404


async def test_a_stale_if_match_changes_nothing(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    a, b = await clips(sessionmaker, 2)
    cid = (await create(client, alice, "v1"))["id"]
    stale = f'"c{cid}-v1"'
    fresh = await client.patch(
        f"{BASE}/{cid}", json={"title": "v2"}, headers={**bearer(alice), "If-Match": stale}
    )
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == f'"c{cid}-v2"'
    headers = {**bearer(alice), "If-Match": stale}
    weak = {**bearer(alice), "If-Match": f'W/"c{cid}-v2"'}
    made_up = {**bearer(alice), "If-Match": "made-up"}
    refused = [
        await client.patch(f"{BASE}/{cid}", json={"title": "v3"}, headers=headers),
        await client.post(f"{BASE}/{cid}/items", json={"clip_id": a}, headers=headers),
        await client.post(f"{BASE}/{cid}/share-key", headers=headers),
        await client.delete(f"{BASE}/{cid}", headers=headers),
        await client.patch(f"{BASE}/{cid}", json={"title": "v3"}, headers=weak),
        await client.patch(f"{BASE}/{cid}", json={"title": "v3"}, headers=made_up),
    ]
    for answer in refused:
        assert answer.status_code == 412, answer.text
        assert answer.headers["content-type"] == PROBLEM
    now = await client.get(f"{BASE}/{cid}", headers=bearer(alice))
    assert now.json()["title"] == "v2"
    assert now.json()["items"] == []
    assert now.headers["etag"] == f'"c{cid}-v2"'

    current = {**bearer(alice), "If-Match": f'"c{cid}-v1", "c{cid}-v2"'}
    added = await client.post(f"{BASE}/{cid}/items", json={"clip_id": b}, headers=current)
    assert added.status_code == 201
    anything = {**bearer(alice), "If-Match": "*"}
    assert (await client.delete(f"{BASE}/{cid}/items/{b}", headers=anything)).status_code == 204


async def test_concurrent_writers_with_one_etag_one_wins_and_nothing_is_lost(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    a, b = await clips(sessionmaker, 2)
    cid = (await create(client, alice, "start"))["id"]
    etag = f'"c{cid}-v1"'
    headers = {**bearer(alice), "If-Match": etag}
    answers = await asyncio.gather(
        client.patch(f"{BASE}/{cid}", json={"title": "by one"}, headers=headers),
        client.patch(f"{BASE}/{cid}", json={"description": "by two"}, headers=headers),
    )
    assert sorted(r.status_code for r in answers) == [200, 412]
    [loser] = [r for r in answers if r.status_code == 412]
    winner = next(r for r in answers if r.status_code == 200)
    fresh = await client.get(f"{BASE}/{cid}", headers=bearer(alice))
    assert fresh.headers["etag"] == winner.headers["etag"] == f'"c{cid}-v2"'
    retried = await client.patch(
        f"{BASE}/{cid}",
        json=json.loads(loser.request.content),
        headers={**bearer(alice), "If-Match": fresh.headers["etag"]},
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["title"] == "by one"
    assert retried.json()["description"] == "by two"

    etag = retried.headers["etag"]
    headers = {**bearer(alice), "If-Match": etag}
    adds = await asyncio.gather(
        add_with(client, headers, cid, a), add_with(client, headers, cid, b)
    )
    assert sorted(r.status_code for r in adds) == [201, 412]
    [lost] = [r for r in adds if r.status_code == 412]
    current = (await client.get(f"{BASE}/{cid}", headers=bearer(alice))).headers["etag"]
    retry = await client.post(
        f"{BASE}/{cid}/items",
        json=json.loads(lost.request.content),
        headers={**bearer(alice), "If-Match": current},
    )
    assert retry.status_code == 201, retry.text
    assert sorted(await order(client, alice, cid)) == sorted([a, b])
    assert gapless(await stored_positions(sessionmaker, cid))


async def add_with(
    client: httpx.AsyncClient, headers: dict[str, str], cid: int, clip_id: str
) -> httpx.Response:
    return await client.post(f"{BASE}/{cid}/items", json={"clip_id": clip_id}, headers=headers)


async def test_concurrent_adds_without_if_match_all_land_in_order(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    ids = await clips(sessionmaker, 6)
    cid = (await create(client, alice))["id"]
    answers = await asyncio.gather(*(add(client, alice, cid, c, position=0) for c in ids))
    assert [r.status_code for r in answers] == [201] * 6
    assert sorted(await order(client, alice, cid)) == sorted(ids)
    assert gapless(await stored_positions(sessionmaker, cid))
    final = await client.get(f"{BASE}/{cid}", headers=bearer(alice))
    assert final.headers["etag"] == f'"c{cid}-v7"'


async def test_hidden_clips_are_left_out_for_everyone(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    mo = await moderator(sessionmaker)
    a, b, c = await clips(sessionmaker, 3)
    cid = (await create(client, alice, visibility="public"))["id"]
    for clip_id in (a, b, c):
        assert (await add(client, alice, cid, clip_id)).status_code == 201
    assert (await hide(client, mo, b, "leaked address")).status_code == 200
    for headers in (bearer(alice), {}):
        answer = await client.get(f"{BASE}/{cid}", headers=headers)
        items = answer.json()["items"]
        assert [i["clip"]["id"] for i in items] == [a, c]
        assert [i["position"] for i in items] == [0, 2]  # the hidden clip keeps its place
        assert "leaked" not in answer.text
    refused = await add(client, alice, (await create(client, alice))["id"], b)
    assert refused.status_code == 409
    assert (await client.delete(f"/api/v1/clips/{b}/hidden", headers=bearer(mo))).status_code == 204
    assert await order(client, alice, cid) == [a, b, c]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("", {"title": ""}),
        ("", {"title": "x" * 201}),
        ("", {"title": "line\nbreak"}),
        ("", {"title": "ok", "description": "d" * 2001}),
        ("", {"title": "ok", "visibility": "secret"}),
        ("", {"title": "ok", "owner": "bob"}),
        ("", {"title": 5}),
        ("/{cid}/items", {"clip_id": "bad id!"}),
        ("/{cid}/items", {"clip_id": "Col0", "position": -1}),
        ("/{cid}/items", {"clip_id": "Col0", "position": "1"}),
        ("/{cid}/items", {"clip_id": "Col0", "position": 1001}),
        ("/{cid}/post", {"route_id": 0}),
        ("/{cid}/post", {"route_id": "1"}),
    ],
)
async def test_bad_input_is_a_422_problem(
    client: httpx.AsyncClient, sessionmaker: Sessions, path: str, body: dict[str, Any]
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    cid = (await create(client, alice))["id"]
    answer = await client.post(f"{BASE}{path.format(cid=cid)}", json=body, headers=bearer(alice))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM


@pytest.mark.parametrize("bad", ["0", "01", "1.0", "-1", "x", str(2**60)])
async def test_bad_ids_are_422(client: httpx.AsyncClient, sessionmaker: Sessions, bad: str) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    answer = await client.get(f"{BASE}/{bad}", headers=bearer(alice))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM


async def route_of(sessionmaker: Sessions, owner: str) -> int:
    async with session_scope(sessionmaker) as session:
        user = await service.user_by_name(session, owner)
        route = NotificationRoute(
            user_id=user.id,
            name="r",
            webhook_id="1",
            webhook_token_sealed="x",
            filters={},
            template={"name": "card"},
            delay_seconds=0,
            batching=True,
            enabled=True,
        )
        session.add(route)
        await session.flush()
        return route.id


# --- the If-Match parser -------------------------------------------------------------------


@given(st.integers(1, 2**53), st.integers(1, 2**40), st.integers(1, 2**40))
def test_if_match_names_the_versions_of_this_collection_only(
    cid: int, version: int, other: int
) -> None:
    tag = f'"c{cid}-v{version}"'
    assert seen_versions(None, cid) is None
    assert seen_versions("*", cid) is None
    assert seen_versions(f" {tag} ", cid) == {version}
    assert seen_versions(f'{tag}, "c{cid}-v{other}"', cid) == {version, other}
    assert seen_versions(f"W/{tag}", cid) == frozenset()  # weak tags never match (strong)
    assert seen_versions(f'"c{cid + 1}-v{version}"', cid) == frozenset()


@given(st.text(max_size=200))
def test_if_match_never_raises_and_accepts_only_well_formed_tags(header: str) -> None:
    seen = seen_versions(header, 7)
    if seen is None:
        assert "*" in header
    else:
        assert all(f'"c7-v{v}"' in header for v in seen)
