"""Tags through the API (issue 17), on both databases: the vocabulary (admins) and private
tags (their owner only: 404 for anyone else), tags on clips, `tag=`, `q` words matching tags,
bulk tagging (by ids and from a search, bounded, one transaction), the export's tags column,
and cached answers changing when tags do."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.clips import tags as tag_service
from tests.api.test_accounts import bearer, make_user
from tests.api.test_moderation import hide, moderator
from tests.factories import helix_clip, store_clips

Sessions = async_sessionmaker[AsyncSession]
ALPHA = {"broadcaster_id": "1001", "broadcaster_name": "AlphaStreams"}
BETA = {"broadcaster_id": "1002", "broadcaster_name": "BetaPlays"}


async def seeded(sessionmaker: Sessions) -> None:
    await store_clips(
        sessionmaker,
        [
            helix_clip(id="T0", title="ace in the hole", view_count=10, **ALPHA),
            helix_clip(id="T1", title="clutch round", view_count=20, **ALPHA),
            helix_clip(id="T2", title="silly dance", view_count=30, **BETA),
            helix_clip(id="T3", title="clutch again", view_count=40, **BETA),
        ],
    )


async def people(sessionmaker: Sessions) -> dict[str, str]:
    _, admin = await make_user(sessionmaker, "boss", admin=True, scopes=("read", "write", "admin"))
    _, alice = await make_user(sessionmaker, "alice")
    _, bob = await make_user(sessionmaker, "bob")
    _, reader = await make_user(sessionmaker, "reader", scopes=("read",))
    return {"admin": admin, "alice": alice, "bob": bob, "reader": reader}


async def new_tag(
    client: httpx.AsyncClient, token: str, name: str, *, private: bool = False, **more: Any
) -> dict[str, Any]:
    answer = await client.post(
        "/api/v1/tags", json={"name": name, "private": private, **more}, headers=bearer(token)
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def ids(client: httpx.AsyncClient, token: str | None = None, **params: Any) -> list[str]:
    headers = bearer(token) if token else {}
    answer = await client.get("/api/v1/clips", params={"limit": 100, **params}, headers=headers)
    assert answer.status_code == 200, answer.text
    return sorted(c["id"] for c in answer.json()["data"])


async def put_tag(client: httpx.AsyncClient, token: str, clip: str, tag: int) -> httpx.Response:
    return await client.put(f"/api/v1/clips/{clip}/tags/{tag}", headers=bearer(token))


async def test_the_vocabulary_is_the_admins_and_tags_go_on_clips(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await seeded(sessionmaker)
    who = await people(sessionmaker)
    refused = await client.post(
        "/api/v1/tags", json={"name": "funny"}, headers=bearer(who["alice"])
    )
    assert refused.status_code == 403, refused.text
    funny = await new_tag(client, who["admin"], "Funny", description="made us laugh")
    assert (funny["name"], funny["scope"], funny["clip_count"]) == ("funny", "community", 0)
    again = await client.post("/api/v1/tags", json={"name": "FUNNY"}, headers=bearer(who["admin"]))
    assert again.status_code == 409, again.text

    # A member with write puts it on; a reader may not; unknown clip or tag: 404.
    assert (await put_tag(client, who["reader"], "T2", funny["id"])).status_code == 403
    assert (await put_tag(client, who["alice"], "Nope", funny["id"])).status_code == 404
    assert (await put_tag(client, who["alice"], "T2", 987654)).status_code == 404
    on = await put_tag(client, who["alice"], "T2", funny["id"])
    assert on.status_code == 200, on.text
    assert [(t["name"], t["added_by"]) for t in on.json()["data"]] == [("funny", "alice")]
    assert (await put_tag(client, who["alice"], "T2", funny["id"])).status_code == 200  # again

    clip = (await client.get("/api/v1/clips/T2")).json()
    assert clip["tags"] == ["funny"]
    assert await ids(client, tag="funny") == ["T2"]
    assert await ids(client, tag="FUNNY") == ["T2"]
    assert await ids(client, tag="unknown") == []
    listed = (await client.get("/api/v1/tags")).json()["data"]
    assert [(t["name"], t["clip_count"]) for t in listed] == [("funny", 1)]

    # Bob did not put it on: he may not take it off; a moderator may; alice may.
    gone = await client.delete(f"/api/v1/clips/T2/tags/{funny['id']}", headers=bearer(who["bob"]))
    assert gone.status_code == 403, gone.text
    mo = await moderator(sessionmaker)
    gone = await client.delete(f"/api/v1/clips/T2/tags/{funny['id']}", headers=bearer(mo))
    assert gone.status_code == 204, gone.text
    assert (await client.get("/api/v1/clips/T2")).json()["tags"] == []
    assert await ids(client, tag="funny") == []
    gone = await client.delete(f"/api/v1/clips/T2/tags/{funny['id']}", headers=bearer(mo))
    assert gone.status_code == 204  # idempotent


async def test_private_tags_are_their_owners_alone(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await seeded(sessionmaker)
    who = await people(sessionmaker)
    mine = await new_tag(client, who["alice"], "to-edit", private=True)
    assert mine["scope"] == "private"
    assert (await put_tag(client, who["alice"], "T1", mine["id"])).status_code == 200

    assert await ids(client, who["alice"], tag="to-edit") == ["T1"]
    # Nobody else sees it, by id, by name or on the clip; the admin neither.
    for token in (who["bob"], who["admin"], None):
        headers = bearer(token) if token else {}
        for method, url in [
            ("GET", f"/api/v1/tags/{mine['id']}"),
            ("PATCH", f"/api/v1/tags/{mine['id']}"),
            ("DELETE", f"/api/v1/tags/{mine['id']}"),
            ("PUT", f"/api/v1/clips/T0/tags/{mine['id']}"),
            ("DELETE", f"/api/v1/clips/T1/tags/{mine['id']}"),
            ("POST", f"/api/v1/tags/{mine['id']}/clips"),
        ]:
            body = {"clip_ids": ["T0"]} if method == "POST" else {}
            answer = await client.request(
                method, url, headers=headers, json=body if method in ("POST", "PATCH") else None
            )
            expected = 404 if token is not None or method == "GET" else 401
            assert answer.status_code == expected, (token, method, url, answer.text)
        assert await ids(client, token, tag="to-edit") == []
        names = [
            t["name"] for t in (await client.get("/api/v1/tags", headers=headers)).json()["data"]
        ]
        assert "to-edit" not in names
        on_clip = await client.get("/api/v1/clips/T1/tags", headers=headers)
        assert on_clip.json()["data"] == []
    # The public clip answer carries community tags only.
    assert (await client.get("/api/v1/clips/T1")).json()["tags"] == []
    # Its owner's view of the clip has it.
    on_clip = await client.get("/api/v1/clips/T1/tags", headers=bearer(who["alice"]))
    assert [(t["name"], t["scope"]) for t in on_clip.json()["data"]] == [("to-edit", "private")]
    # A private tag may not take a community tag's name; two members may share a name.
    await new_tag(client, who["admin"], "funny")
    taken = await client.post(
        "/api/v1/tags", json={"name": "funny", "private": True}, headers=bearer(who["bob"])
    )
    assert taken.status_code == 409, taken.text
    bobs = await new_tag(client, who["bob"], "to-edit", private=True)
    assert bobs["id"] != mine["id"]
    assert await ids(client, who["bob"], tag="to-edit") == []


async def test_search_words_match_community_tags(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await seeded(sessionmaker)
    who = await people(sessionmaker)
    fail = await new_tag(client, who["admin"], "epic-fail")
    mine = await new_tag(client, who["alice"], "dance-party", private=True)
    for clip in ("T0", "T2"):
        assert (await put_tag(client, who["alice"], clip, fail["id"])).status_code == 200
    assert (await put_tag(client, who["alice"], "T1", mine["id"])).status_code == 200

    assert await ids(client, q="epic") == ["T0", "T2"]
    assert await ids(client, q="fail") == ["T0", "T2"]
    assert await ids(client, q="epi") == ["T0", "T2"]  # the last word as a prefix
    assert await ids(client, q="epi ") == []  # a finished word: no prefix
    # A word of the tag and a word of the title: each matches one or the other.
    assert await ids(client, q="fail dance") == ["T2"]
    assert await ids(client, q="clutch") == ["T1", "T3"]  # text only, as before
    assert await ids(client, q="epic clutch") == []
    # Private tags are not in the search's words (for anyone).
    assert await ids(client, who["alice"], q="party") == []
    for sort in ("relevance", "views", "newest", "oldest"):
        assert await ids(client, q="fail", sort=sort) == ["T0", "T2"], sort
    # tag= and q together, and with a channel.
    assert await ids(client, q="silly", tag="epic-fail") == ["T2"]
    assert await ids(client, q="fail", broadcaster="alphastreams") == ["T0"]
    # Renaming the tag changes what its words find (cached answers included).
    renamed = await client.patch(
        f"/api/v1/tags/{fail['id']}", json={"name": "great-save"}, headers=bearer(who["admin"])
    )
    assert renamed.status_code == 200, renamed.text
    assert await ids(client, q="fail") == []
    assert await ids(client, q="save") == ["T0", "T2"]
    assert (await client.get("/api/v1/clips/T0")).json()["tags"] == ["great-save"]
    # Deleting it takes it off every clip.
    deleted = await client.delete(f"/api/v1/tags/{fail['id']}", headers=bearer(who["admin"]))
    assert deleted.status_code == 204, deleted.text
    assert await ids(client, q="save") == []
    assert (await client.get("/api/v1/clips/T0")).json()["tags"] == []


async def test_several_tags_filter_together_and_pages_walk(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await store_clips(
        sessionmaker,
        [helix_clip(id=f"W{i:02d}", title=f"walk {i}", view_count=i, **ALPHA) for i in range(30)],
    )
    who = await people(sessionmaker)
    even = await new_tag(client, who["admin"], "even")
    third = await new_tag(client, who["admin"], "third")
    evens = [f"W{i:02d}" for i in range(0, 30, 2)]
    thirds = [f"W{i:02d}" for i in range(0, 30, 3)]
    for tag, clips in ((even, evens), (third, thirds)):
        answer = await client.post(
            f"/api/v1/tags/{tag['id']}/clips",
            json={"clip_ids": clips},
            headers=bearer(who["alice"]),
        )
        assert answer.status_code == 200, answer.text
    assert await ids(client, tag=["even", "third"]) == sorted(set(evens) & set(thirds))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"tag": "even", "limit": 4, "sort": "views"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/clips", params=params)).json()
        seen += [c["id"] for c in page["data"]]
        assert all(c["tags"][0] == "even" for c in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(evens, reverse=True)
    too_many = await client.get("/api/v1/clips", params={"tag": ["a", "b", "c", "d", "e", "f"]})
    assert too_many.status_code == 422
    for bad in ("", "-x", "a--b", "a b", "x" * 33, "a_b", "a\x00"):
        answer = await client.get("/api/v1/clips", params={"tag": bad})
        assert answer.status_code == 422, (bad, answer.text)


async def test_bulk_by_ids_and_from_a_search(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await seeded(sessionmaker)
    who = await people(sessionmaker)
    tag = await new_tag(client, who["admin"], "clutch-play")
    url = f"/api/v1/tags/{tag['id']}/clips"
    answer = await client.post(
        url, json={"clip_ids": ["T1", "T1", "Nope", "T0"]}, headers=bearer(who["alice"])
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"tagged": 2, "already": 0, "full": [], "not_found": ["Nope"]}
    answer = await client.post(
        f"{url}/from-search", params={"q": "clutch"}, headers=bearer(who["alice"])
    )
    # "clutch" finds T1 and T3 by title, and T0 by its tag's word.
    assert answer.json() == {"tagged": 1, "already": 2, "full": [], "not_found": []}
    assert await ids(client, tag="clutch-play") == ["T0", "T1", "T3"]
    # Bad bodies: 422, never 500.
    for body in ({}, {"clip_ids": []}, {"clip_ids": ["a b"]}, {"clip_ids": ["x"] * 1001}):
        bad = await client.post(url, json=body, headers=bearer(who["alice"]))
        assert bad.status_code == 422, (body, bad.text)


async def test_a_search_that_finds_too_many_tags_nothing(
    client: httpx.AsyncClient, sessionmaker: Sessions, monkeypatch: Any
) -> None:
    monkeypatch.setattr(tag_service, "BULK_MAX", 3)
    await seeded(sessionmaker)
    who = await people(sessionmaker)
    tag = await new_tag(client, who["admin"], "lots")
    answer = await client.post(
        f"/api/v1/tags/{tag['id']}/clips/from-search", headers=bearer(who["alice"])
    )
    assert answer.status_code == 422, answer.text
    assert "more than 3" in answer.json()["detail"]
    assert await ids(client, tag="lots") == []
    answer = await client.post(
        f"/api/v1/tags/{tag['id']}/clips/from-search",
        params={"broadcaster": "alphastreams"},
        headers=bearer(who["alice"]),
    )
    assert answer.json()["tagged"] == 2
    assert await ids(client, tag="lots") == ["T0", "T1"]


async def test_a_clip_carries_at_most_so_many_tags(
    client: httpx.AsyncClient, sessionmaker: Sessions, monkeypatch: Any
) -> None:
    monkeypatch.setattr(tag_service, "PER_CLIP_MAX", 2)
    await seeded(sessionmaker)
    who = await people(sessionmaker)
    made = [await new_tag(client, who["admin"], f"t{i}") for i in range(3)]
    for tag in made[:2]:
        assert (await put_tag(client, who["alice"], "T0", tag["id"])).status_code == 200
    full = await put_tag(client, who["alice"], "T0", made[2]["id"])
    assert full.status_code == 409, full.text
    bulk = await client.post(
        f"/api/v1/tags/{made[2]['id']}/clips",
        json={"clip_ids": ["T0", "T1"]},
        headers=bearer(who["alice"]),
    )
    assert bulk.json() == {"tagged": 1, "already": 0, "full": ["T0"], "not_found": []}
    # Private tags count apart.
    mine = await new_tag(client, who["alice"], "mine", private=True)
    assert (await put_tag(client, who["alice"], "T0", mine["id"])).status_code == 200


async def test_the_export_has_a_tags_column(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await seeded(sessionmaker)
    who = await people(sessionmaker)
    for name in ("zeta", "alpha"):
        tag = await new_tag(client, who["admin"], name)
        assert (await put_tag(client, who["alice"], "T1", tag["id"])).status_code == 200
    private = await new_tag(client, who["alice"], "secret", private=True)
    assert (await put_tag(client, who["alice"], "T1", private["id"])).status_code == 200
    for token in (None, who["alice"]):
        headers = bearer(token) if token else {}
        answer = await client.get("/api/v1/clips/export", params={"max_rows": 100}, headers=headers)
        assert answer.status_code == 200, answer.text
        rows = {r["id"]: r["tags"] for r in csv.DictReader(io.StringIO(answer.text))}
        assert rows == {"T0": "", "T1": "alpha zeta", "T2": "", "T3": ""}
        lines = await client.get(
            "/api/v1/clips/export",
            params={"format": "jsonl", "max_rows": 100, "tag": "alpha"},
            headers=headers,
        )
        assert [line for line in lines.text.splitlines() if '"T1"' in line]
        assert '"tags":"alpha zeta"' in lines.text
    # The private tag filters the owner's export.
    mine = await client.get(
        "/api/v1/clips/export", params={"tag": "secret"}, headers=bearer(who["alice"])
    )
    assert [r["id"] for r in csv.DictReader(io.StringIO(mine.text))] == ["T1"]


async def test_vocabulary_changes_are_audited_and_validated(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    who = await people(sessionmaker)
    tag = await new_tag(client, who["admin"], "old-name")
    renamed = await client.patch(
        f"/api/v1/tags/{tag['id']}",
        json={"name": "new-name", "description": "better"},
        headers=bearer(who["admin"]),
    )
    assert renamed.json()["name"] == "new-name"
    refused = await client.patch(
        f"/api/v1/tags/{tag['id']}", json={"name": "x"}, headers=bearer(who["alice"])
    )
    assert refused.status_code == 403
    assert (
        await client.delete(f"/api/v1/tags/{tag['id']}", headers=bearer(who["admin"]))
    ).status_code == 204
    log = await client.get(
        "/api/v1/audit", params={"target": f"tag:{tag['id']}"}, headers=bearer(who["admin"])
    )
    assert [e["action"] for e in log.json()["data"]] == ["tag.delete", "tag.update", "tag.create"]
    for body in (
        {"name": ""},
        {"name": "has space"},
        {"name": "x" * 33},
        {"name": "ok", "description": "x" * 201},
        {"name": "ok", "description": "bell\x07"},
        {"name": "ok", "extra": 1},
        {"name": 5},
    ):
        bad = await client.post("/api/v1/tags", json=body, headers=bearer(who["admin"]))
        assert bad.status_code == 422, (body, bad.text)
    for path in ("/api/v1/tags/0", "/api/v1/tags/01", "/api/v1/tags/x"):
        assert (await client.get(path)).status_code == 422


async def test_a_hidden_clip_cannot_be_tagged_and_its_tags_stay(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await seeded(sessionmaker)
    who = await people(sessionmaker)
    tag = await new_tag(client, who["admin"], "keep")
    assert (await put_tag(client, who["alice"], "T0", tag["id"])).status_code == 200
    mo = await moderator(sessionmaker)
    assert (await hide(client, mo, "T0", "a leak")).status_code == 200
    assert await ids(client, tag="keep") == []
    assert (await put_tag(client, who["alice"], "T0", tag["id"])).status_code == 404

    async def counted() -> tuple[int, int]:  # in the list and in the tag's own answer
        listed = (await client.get("/api/v1/tags")).json()
        [row] = [t for t in listed["data"] if t["id"] == tag["id"]]
        one = (await client.get(f"/api/v1/tags/{tag['id']}")).json()
        return row["clip_count"], one["clip_count"]

    assert await counted() == (0, 0)  # the hidden clip is not counted
    assert (await client.delete("/api/v1/clips/T0/hidden", headers=bearer(mo))).status_code == 204
    assert await ids(client, tag="keep") == ["T0"]
    assert await counted() == (1, 1)


async def test_favourites_and_collections_show_the_community_tags(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    await seeded(sessionmaker)
    who = await people(sessionmaker)
    tag = await new_tag(client, who["admin"], "keeper")
    mine = await new_tag(client, who["alice"], "mine-only", private=True)
    for tag_id in (tag["id"], mine["id"]):
        assert (await put_tag(client, who["alice"], "T2", tag_id)).status_code == 200
    alice = bearer(who["alice"])
    assert (await client.put("/api/v1/me/favourites/T2", headers=alice)).status_code == 204
    kept = await client.get("/api/v1/me/favourites", headers=alice)
    assert [f["clip"]["tags"] for f in kept.json()["data"]] == [["keeper"]]
    made = await client.post("/api/v1/collections", json={"title": "best"}, headers=alice)
    assert made.status_code == 201, made.text
    collection = made.json()["id"]
    added = await client.post(
        f"/api/v1/collections/{collection}/items", json={"clip_id": "T2"}, headers=alice
    )
    assert added.status_code in (200, 201), added.text
    shown = await client.get(f"/api/v1/collections/{collection}", headers=alice)
    assert [i["clip"]["tags"] for i in shown.json()["items"]] == [["keeper"]]
