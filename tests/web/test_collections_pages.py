"""The collection pages (issue 17) in-process, on both databases: the owner's create, edit,
add, move, remove, share-key, post and delete flows (each read back through the API); who
gets a 404 page (private, unlisted without its key); the public list; the CSRF proof; bad
input told on the page with a 4xx, never a 500."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.accounts.secrets import seal
from clipwatch.accounts.service import Principal
from clipwatch.api.routers.collections_page import Refusal, _attempt
from clipwatch.clips import collections as collections_service
from clipwatch.clips.collections import MAX_COLLECTIONS
from clipwatch.config import Settings as AppSettings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Collection, Delivery, NotificationRoute
from clipwatch.db.repositories import collections as collections_repo
from tests.api.test_accounts import bearer, login, make_user
from tests.api.test_moderation import hide, moderator
from tests.factories import helix_clip, store_clips

Sessions = async_sessionmaker[AsyncSession]
FORM_TYPE = {"content-type": "application/x-www-form-urlencoded"}
Pairs = Sequence[tuple[str, str]]


@dataclass
class Member:
    """A browser signed in as a member: its session cookie and the CSRF proof of its pages."""

    http: httpx.AsyncClient
    cookie: str
    csrf: str
    token: str

    def headers(self, **more: str) -> dict[str, str]:
        return {"Cookie": f"cw_session={self.cookie}", **more}

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path, headers=self.headers())

    async def post(self, path: str, pairs: Pairs = (), *, proof: bool = True) -> httpx.Response:
        body = urlencode([*([("csrf", self.csrf)] if proof else []), *pairs])
        return await self.http.post(path, content=body, headers=self.headers(**FORM_TYPE))

    async def api(self, path: str) -> httpx.Response:
        return await self.http.get(f"/api/v1{path}", headers=bearer(self.token))


async def member(
    http: httpx.AsyncClient,
    sessionmaker: Sessions,
    name: str,
    *,
    admin: bool = False,
    scopes: tuple[str, ...] = ("read", "write"),
) -> Member:
    _, token = await make_user(
        sessionmaker, name, admin=admin, scopes=(*scopes, "admin") if admin else scopes
    )
    cookie, csrf, _ = await login(http, token)
    return Member(http, cookie, csrf, token)


async def stored(sessionmaker: Sessions, n: int) -> list[str]:
    clips = [helix_clip(id=f"Coll{i}", title=f"moment {i}") for i in range(n)]
    await store_clips(sessionmaker, clips)
    return [c["id"] for c in clips]


async def create(who: Member, title: str = "Best of", **fields: str) -> int:
    answer = await who.post("/collections", [("title", title), *fields.items()])
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/collections/([0-9]+)\?done=created", answer.headers["location"])
    assert found, answer.headers["location"]
    return int(found.group(1))


async def add(who: Member, cid: int, clip_id: str) -> httpx.Response:
    return await who.post("/collections/add", [("clip", clip_id), ("collection", str(cid))])


def version_of(html: str) -> str:
    found = re.search(r'name="version" value="([0-9]+)"', html)
    assert found, "no version in the page"
    return found.group(1)


def card_ids(html: str) -> list[str]:
    """The clips shown as cards, in the page's order."""
    start = html.index('<ol class="cards"')
    return re.findall(r'<a class="thumb" href="/clips/([^"]+)"', html[start : html.index("</ol>")])


def alert(html: str) -> str:
    found = re.search(r'<p class="problem" role="alert">(.*?)</p>', html, re.S)
    assert found, "no message on the page"
    return unescape(found.group(1))


def field_error(html: str, field_id: str) -> str:
    control = re.search(rf'<(?:input|textarea|select)[^>]*\bid="{field_id}"[^>]*>', html)
    assert control, field_id
    assert 'aria-invalid="true"' in control.group(0)
    found = re.search(rf'<p class="field-error" id="{field_id}-error">([^<]*)</p>', html)
    assert found, f"no error under {field_id}"
    return unescape(found.group(1))


async def api_order(who: Member, cid: int) -> list[str]:
    answer = await who.api(f"/collections/{cid}")
    assert answer.status_code == 200, answer.text
    return [item["clip"]["id"] for item in answer.json()["items"]]


async def owner_page(who: Member, cid: int) -> tuple[str, str]:
    page = await who.get(f"/collections/{cid}")
    assert page.status_code == 200, page.text
    return page.text, version_of(page.text)


# --- The owner's flows ------------------------------------------------------------------------


async def test_create_edit_and_delete_a_collection(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    ann = await member(client, sessionmaker, "ann")
    listing = await ann.get("/collections")
    assert listing.status_code == 200
    assert listing.headers["cache-control"] == "no-store"
    assert "You have no collections yet." in listing.text
    assert 'action="/collections"' in listing.text

    cid = await create(
        ann, "Best of <b>May</b>", description="line one\r\nline two", visibility="unlisted"
    )
    page = await ann.get(f"/collections/{cid}?done=created")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "Collection created." in page.text
    assert "Best of &lt;b&gt;May&lt;/b&gt;" in page.text  # escaped
    assert "by ann" in page.text
    read = (await ann.api(f"/collections/{cid}")).json()
    assert read["title"] == "Best of <b>May</b>"
    assert read["description"] == "line one line two"  # a textarea's line break: a space
    assert read["visibility"] == "unlisted"
    assert f"/collections/{cid}?key={read['share_key']}" in page.text
    listing = await ann.get("/collections")
    assert f'href="/collections/{cid}"' in listing.text

    saved = await ann.post(
        f"/collections/{cid}/edit",
        [
            ("title", "  Better of  "),
            ("description", ""),
            ("visibility", "public"),
            ("version", version_of(page.text)),
        ],
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/collections/{cid}?done=saved"
    read = (await ann.api(f"/collections/{cid}")).json()
    assert (read["title"], read["description"], read["visibility"]) == ("Better of", "", "public")

    confirm = await ann.get(f"/collections/{cid}/delete")
    assert confirm.status_code == 200
    assert "Delete the collection “Better of”?" in unescape(confirm.text)
    gone = await ann.post(f"/collections/{cid}/delete", [("version", version_of(confirm.text))])
    assert gone.status_code == 303
    assert gone.headers["location"] == "/collections?done=deleted"
    assert "Collection deleted." in (await ann.get("/collections?done=deleted")).text
    assert (await ann.api(f"/collections/{cid}")).status_code == 404
    assert (await ann.get(f"/collections/{cid}")).status_code == 404


async def test_add_move_and_remove_clips_in_order(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    clips = await stored(sessionmaker, 4)
    ann = await member(client, sessionmaker, "ann")
    cid = await create(ann)
    other = await create(ann, "Other one")

    clip_page = await ann.get(f"/clips/{clips[0]}")
    assert 'action="/collections/add"' in clip_page.text
    assert f'name="clip" value="{clips[0]}"' in clip_page.text
    chooser = await ann.get(f"/collections/add?clip={clips[0]}")
    assert chooser.status_code == 200
    assert chooser.headers["cache-control"] == "no-store"
    assert f'<option value="{cid}">Best of (0 clips)</option>' in chooser.text
    assert f'<option value="{other}">Other one (0 clips)</option>' in chooser.text
    for clip_id in clips:
        added = await add(ann, cid, clip_id)
        assert added.status_code == 303
        assert added.headers["location"] == f"/collections/{cid}?done=added"
    assert await api_order(ann, cid) == clips
    html, _ = await owner_page(ann, cid)
    assert card_ids(html) == clips

    # Down on the first, Up on the last: the page posts the neighbour's place.
    moved = await ann.post(
        f"/collections/{cid}/items/{clips[0]}/move",
        [("position", "1"), ("version", version_of(html))],
    )
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/collections/{cid}?done=moved"
    order = [clips[1], clips[0], clips[2], clips[3]]
    assert await api_order(ann, cid) == order
    html, version = await owner_page(ann, cid)
    assert card_ids(html) == order
    ups = re.findall(
        rf'action="/collections/{cid}/items/([^/]+)/move" method="post">\s*'
        r'<input type="hidden" name="csrf" value="[^"]+"><input type="hidden" name="version" '
        r'value="[0-9]+">\s*<input type="hidden" name="position" value="([0-9]+)">\s*'
        r'<button type="submit" class="secondary">Up',
        html,
    )
    assert ups == [(clips[0], "0"), (clips[2], "1"), (clips[3], "2")]
    await ann.post(
        f"/collections/{cid}/items/{clips[3]}/move", [("position", "2"), ("version", version)]
    )
    order = [clips[1], clips[0], clips[3], clips[2]]
    assert await api_order(ann, cid) == order

    html, version = await owner_page(ann, cid)
    removed = await ann.post(f"/collections/{cid}/items/{clips[0]}/remove", [("version", version)])
    assert removed.status_code == 303
    assert removed.headers["location"] == f"/collections/{cid}?done=removed"
    assert await api_order(ann, cid) == [clips[1], clips[3], clips[2]]
    positions = [i["position"] for i in (await ann.api(f"/collections/{cid}")).json()["items"]]
    assert positions == [0, 1, 2]


async def test_moving_skips_a_hidden_clip_and_the_page_says_it_is_not_shown(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    clips = await stored(sessionmaker, 3)
    ann = await member(client, sessionmaker, "ann")
    cid = await create(ann)
    for clip_id in clips:
        await add(ann, cid, clip_id)
    assert (await hide(client, await moderator(sessionmaker), clips[1], "spam")).status_code == 200
    html, version = await owner_page(ann, cid)
    assert card_ids(html) == [clips[0], clips[2]]
    assert "1 more is not shown" in html
    # Up on the last shown clip goes before the first shown one, past the hidden one.
    await ann.post(
        f"/collections/{cid}/items/{clips[2]}/move", [("position", "0"), ("version", version)]
    )
    assert await api_order(ann, cid) == [clips[2], clips[0]]


async def test_share_key_opens_an_unlisted_collection_until_rotated(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    clips = await stored(sessionmaker, 1)
    ann = await member(client, sessionmaker, "ann")
    bob = await member(client, sessionmaker, "bob")
    cid = await create(ann, "Link only", visibility="unlisted")
    await add(ann, cid, clips[0])
    key = (await ann.api(f"/collections/{cid}")).json()["share_key"]

    for answer in (
        await client.get(f"/collections/{cid}"),
        await bob.get(f"/collections/{cid}"),
        await client.get(f"/collections/{cid}?key=wrong"),
    ):
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")
        assert "Link only" not in answer.text
    shared = await client.get(f"/collections/{cid}?key={key}")
    assert shared.status_code == 200
    assert shared.headers["cache-control"] == "no-store"  # the key is in its address
    assert card_ids(shared.text) == clips
    assert "Link only" in shared.text
    assert 'name="version"' not in shared.text  # no owner's forms
    assert key not in shared.text.replace(f"key={key}", "")  # only in the address
    assert (await bob.get(f"/collections/{cid}?key={key}")).status_code == 200

    _, version = await owner_page(ann, cid)
    rotated = await ann.post(f"/collections/{cid}/share-key", [("version", version)])
    assert rotated.status_code == 303
    assert rotated.headers["location"] == f"/collections/{cid}?done=rotated"
    new_key = (await ann.api(f"/collections/{cid}")).json()["share_key"]
    assert new_key != key
    assert (await client.get(f"/collections/{cid}?key={key}")).status_code == 404
    assert (await client.get(f"/collections/{cid}?key={new_key}")).status_code == 200
    assert f"key={new_key}" in (await ann.get(f"/collections/{cid}")).text


async def test_private_collections_are_404_and_public_ones_are_listed(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    clips = await stored(sessionmaker, 2)
    ann = await member(client, sessionmaker, "ann")
    bob = await member(client, sessionmaker, "bob")
    root = await member(client, sessionmaker, "root", admin=True)
    private = await create(ann, "Secret stash")
    public = await create(ann, "For everyone", visibility="public", description="open to all")
    await add(ann, public, clips[1])
    await add(ann, public, clips[0])

    for answer in (
        await client.get(f"/collections/{private}"),
        await bob.get(f"/collections/{private}"),
    ):
        assert answer.status_code == 404
        assert "Secret stash" not in answer.text
        assert f"no collection {private}" in answer.text
    # Others' writes are 404 before the proof or the form is looked at.
    assert (await bob.post(f"/collections/{private}/edit", [("title", "x")])).status_code == 404
    assert (await bob.get(f"/collections/{private}/delete")).status_code == 404
    assert (await bob.post(f"/collections/{public}/delete")).status_code == 404
    assert (await add(bob, public, clips[0])).status_code == 404
    # An admin reads any collection, as through the API, and changes none.
    as_admin = await root.get(f"/collections/{private}")
    assert as_admin.status_code == 200
    assert 'name="version"' not in as_admin.text
    assert (await root.post(f"/collections/{private}/edit", [("title", "x")])).status_code == 404

    anonymous = await client.get("/collections")
    assert anonymous.status_code == 200
    assert anonymous.headers["cache-control"] == "no-cache"
    assert "For everyone" in anonymous.text
    assert "Secret stash" not in anonymous.text
    assert "Your collections" not in anonymous.text
    assert 'action="/collections"' not in anonymous.text
    assert '<a href="/collections">Collections</a>' in (await client.get("/")).text  # the nav
    page = await client.get(f"/collections/{public}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    assert "open to all" in page.text
    assert "by ann" in page.text
    assert card_ids(page.text) == [clips[1], clips[0]]
    assert 'name="version"' not in page.text
    assert "Secret stash" not in (await bob.get("/collections")).text
    clip_page = await client.get(f"/clips/{clips[0]}")
    assert 'action="/collections/add"' not in clip_page.text  # nobody signed in

    # The public list is paged (24 a page), newest first, each once.
    for i in range(25):
        await create(bob, f"bob's {i:02d}", visibility="public")
    first = await client.get("/collections")
    more = re.search(r'<a rel="next" href="([^"]+)">', first.text)
    assert more
    second = await client.get(unescape(more.group(1)))
    titles = re.findall(r"bob&#39;s ([0-9]{2})", first.text + second.text)
    assert titles == [f"{i:02d}" for i in range(24, -1, -1)]
    assert "For everyone" in second.text


async def test_post_a_collection_to_a_discord_route(
    client: httpx.AsyncClient, sessionmaker: Sessions, settings: AppSettings
) -> None:
    clips = await stored(sessionmaker, 1)
    ann = await member(client, sessionmaker, "ann")
    bob = await member(client, sessionmaker, "bob")
    cid = await create(ann)
    await add(ann, cid, clips[0])
    html, _ = await owner_page(ann, cid)
    assert "You have no Discord routes." in html
    mine = await route_of(sessionmaker, settings, "ann", "my channel")
    bobs = await route_of(sessionmaker, settings, "bob", "bob's channel")

    html, _ = await owner_page(ann, cid)
    assert f'<option value="{mine}">my channel</option>' in html
    assert "channel</option>" not in html.replace(">my channel</option>", "")  # not bob's
    posted = await ann.post(f"/collections/{cid}/post", [("route_id", str(mine))])
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/collections/{cid}?done=posted"
    again = await ann.post(f"/collections/{cid}/post", [("route_id", str(mine))])
    assert again.headers["location"] == f"/collections/{cid}?done=posted-before"
    assert "nothing new was queued" in (await ann.get(again.headers["location"])).text
    async with session_scope(sessionmaker) as session:
        rows = (await session.scalars(select(Delivery))).all()
        assert [(d.route_id, d.kind, d.clip_id) for d in rows] == [
            (mine, "collection", f"collection:{cid}")
        ]

    others = await ann.post(f"/collections/{cid}/post", [("route_id", str(bobs))])
    assert others.status_code == 409
    assert alert(others.text) == f"Not done: no route {bobs}."
    assert "Post to Discord" in others.text  # the collection's page, with the message
    for bad in ("first", "", "0", "1.5"):
        refused = await ann.post(f"/collections/{cid}/post", [("route_id", bad)])
        assert refused.status_code == 422, bad
        assert alert(refused.text).startswith("Not done: route_id: must be "), bad
    assert (
        await bob.post(f"/collections/{cid}/post", [("route_id", str(bobs))])
    ).status_code == 404


async def route_of(sessionmaker: Sessions, settings: AppSettings, owner: str, name: str) -> int:
    async with session_scope(sessionmaker) as session:
        user = await service.user_by_name(session, owner)
        route = NotificationRoute(
            user_id=user.id,
            name=name,
            webhook_id="123456789012345678",
            webhook_token_sealed=seal(settings.signing_key, "token"),
            filters={},
            template={"name": "card"},
            delay_seconds=0,
            batching=True,
            enabled=True,
        )
        session.add(route)
        await session.flush()
        return route.id


# --- Refusals ---------------------------------------------------------------------------------


async def test_every_form_needs_the_csrf_proof(
    client: httpx.AsyncClient, sessionmaker: Sessions, settings: AppSettings
) -> None:
    clips = await stored(sessionmaker, 2)
    ann = await member(client, sessionmaker, "ann")
    cid = await create(ann)
    await add(ann, cid, clips[0])
    route = await route_of(sessionmaker, settings, "ann", "r")
    before = (await ann.api(f"/collections/{cid}")).json()
    forms: list[tuple[str, Pairs]] = [
        ("/collections", [("title", "sneaky")]),
        ("/collections/add", [("clip", clips[1]), ("collection", str(cid))]),
        (f"/collections/{cid}/edit", [("title", "sneaky")]),
        (f"/collections/{cid}/items/{clips[0]}/move", [("position", "0")]),
        (f"/collections/{cid}/items/{clips[0]}/remove", []),
        (f"/collections/{cid}/share-key", []),
        (f"/collections/{cid}/post", [("route_id", str(route))]),
        (f"/collections/{cid}/delete", []),
    ]
    for path, pairs in forms:
        refused = await ann.post(path, pairs, proof=False)
        assert refused.status_code == 403, path
        assert "proof is missing or old" in refused.text
        forged = await ann.post(path, [("csrf", "not-the-proof"), *pairs], proof=False)
        assert forged.status_code == 403, path
        anonymous = await client.post(path, content=urlencode(pairs), headers=FORM_TYPE)
        assert anonymous.status_code == 303, path
        assert anonymous.headers["location"].startswith("/login?next=")
    assert (await ann.api(f"/collections/{cid}")).json() == before
    assert [c["title"] for c in (await ann.api("/collections")).json()["data"]] == ["Best of"]
    async with session_scope(sessionmaker) as session:
        assert (await session.scalars(select(Delivery))).all() == []


async def test_a_read_only_session_sees_no_forms_and_changes_nothing(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    ann = await member(client, sessionmaker, "ann")
    cid = await create(ann, "Mine")
    _, token = await make_token_for(sessionmaker, "ann")
    cookie, csrf, _ = await login(client, token)
    reader = Member(client, cookie, csrf, token)
    listing = await reader.get("/collections")
    assert f'href="/collections/{cid}"' in listing.text
    assert 'action="/collections"' not in listing.text
    page = await reader.get(f"/collections/{cid}")
    assert page.status_code == 200
    assert 'name="version"' not in page.text
    assert (await reader.post("/collections", [("title", "x")])).status_code == 403
    assert (await reader.post(f"/collections/{cid}/edit", [("title", "x")])).status_code == 403


async def make_token_for(sessionmaker: Sessions, name: str) -> tuple[int, str]:
    async with session_scope(sessionmaker) as session:
        user = await service.user_by_name(session, name)
        _, token = await service.create_token(
            session, user, name="reader", scopes=frozenset({"read"})
        )
        return user.id, token


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * 201, "must be at most 200 characters long"),
        ("tab\there", "must not contain control characters"),
    ],
)
async def test_a_bad_title_is_422_with_the_reason_under_the_field(
    client: httpx.AsyncClient, sessionmaker: Sessions, title: str, message: str
) -> None:
    ann = await member(client, sessionmaker, "ann")
    created = await ann.post("/collections", [("title", title), ("description", "kept")])
    assert created.status_code == 422
    assert message in field_error(created.text, "new-title")
    assert ">kept</textarea>" in created.text  # the form as typed
    assert (await ann.api("/collections")).json()["data"] == []

    cid = await create(ann, "Fine")
    _, version = await owner_page(ann, cid)
    edited = await ann.post(f"/collections/{cid}/edit", [("title", title), ("version", version)])
    assert edited.status_code == 422
    assert message in field_error(edited.text, "edit-title")
    assert (await ann.api(f"/collections/{cid}")).json()["title"] == "Fine"


async def test_other_bad_input_is_a_4xx_page_with_its_reason(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    clips = await stored(sessionmaker, 2)
    ann = await member(client, sessionmaker, "ann")
    bob = await member(client, sessionmaker, "bob")
    cid = await create(ann)
    bobs = await create(bob, "Bob's")
    await add(ann, cid, clips[0])

    bad_visibility = await ann.post("/collections", [("title", "t"), ("visibility", "secret")])
    assert bad_visibility.status_code == 422
    assert "must be 'private', 'unlisted' or 'public'" in field_error(
        bad_visibility.text, "new-visibility"
    )
    long_description = await ann.post("/collections", [("title", "t"), ("description", "d" * 2001)])
    assert long_description.status_code == 422
    assert "at most 2000" in field_error(long_description.text, "new-description")

    expectations: list[tuple[httpx.Response, int, str]] = [
        (await ann.get("/collections/abc"), 422, "must be a whole number"),
        (await ann.get("/collections/0"), 422, "collection_id: must be a whole number"),
        (await ann.get(f"/collections/{2**53 + 1}"), 422, f"must be {2**53} or less"),
        (await ann.get("/collections/999999"), 404, "no collection 999999"),
        (await ann.get(f"/collections/{cid}?done=bogus"), 422, "done"),
        (await ann.get(f"/collections/{cid}?key="), 422, "key"),
        (await ann.get("/collections?cursor=forged"), 400, "cursor"),
        (await ann.get("/collections/add?clip=NoSuchClip"), 404, "no clip with id NoSuchClip"),
        (await ann.get("/collections/add?clip=bad%20id"), 422, "clip"),
        (await ann.post("/collections/abc/edit", [("title", "x")]), 422, "whole number"),
        (await ann.post("/collections/999999/delete"), 404, "no collection 999999"),
        (await add(ann, cid, "NoSuchClip"), 409, "no clip with id NoSuchClip in the archive"),
        (await add(ann, cid, clips[0]), 409, f"clip {clips[0]} is in this collection already"),
        (await add(ann, bobs, clips[1]), 404, f"no collection {bobs}"),
        (await add(ann, 999999, clips[1]), 404, "no collection 999999"),
        (
            await ann.post("/collections/add", [("clip", clips[1]), ("collection", "x")]),
            422,
            "Choose",
        ),
        (
            await ann.post("/collections/add", [("clip", "a b"), ("collection", str(cid))]),
            422,
            "clip id",
        ),
        (
            await ann.post(f"/collections/{cid}/items/NoSuchClip/remove"),
            404,
            "is not in collection",
        ),
        (
            await ann.post(f"/collections/{cid}/items/{clips[1]}/move", [("position", "0")]),
            404,
            "is not in collection",
        ),
        (
            await ann.post(f"/collections/{cid}/items/{clips[0]}/move", [("position", "up")]),
            422,
            "Not done: position: must be a whole number",
        ),
        (
            await ann.post(f"/collections/{cid}/items/{clips[0]}/move", [("position", "1001")]),
            422,
            "must be 1000 or less",
        ),
        (await ann.post(f"/collections/{cid}/items/bad%20id/remove"), 422, "clip_id"),
    ]
    for answer, status, words in expectations:
        assert answer.status_code == status, (answer.request.url, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
        assert words in unescape(answer.text), (answer.request.url, words)
    assert await api_order(ann, cid) == [clips[0]]
    async with session_scope(sessionmaker) as session:
        assert (await session.get(Collection, cid)).version == 2  # created, one clip added
    # A refused write is undone, and the page it answers shows the collection as stored.
    refused = await ann.post(f"/collections/{cid}/items/{clips[1]}/move", [("position", "0")])
    assert refused.status_code == 404
    assert version_of(refused.text) == "2"


async def test_a_form_from_an_older_page_changes_nothing(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    clips = await stored(sessionmaker, 2)
    ann = await member(client, sessionmaker, "ann")
    cid = await create(ann, "Before")
    await add(ann, cid, clips[0])
    await add(ann, cid, clips[1])
    old_html, old = await owner_page(ann, cid)
    _, current = await owner_page(ann, cid)
    await ann.post(f"/collections/{cid}/edit", [("title", "Changed"), ("version", current)])

    stale: list[tuple[str, Pairs]] = [
        (f"/collections/{cid}/edit", [("title", "Mine"), ("version", old)]),
        (f"/collections/{cid}/items/{clips[1]}/move", [("position", "0"), ("version", old)]),
        (f"/collections/{cid}/items/{clips[0]}/remove", [("version", old)]),
        (f"/collections/{cid}/share-key", [("version", old)]),
        (f"/collections/{cid}/delete", [("version", old)]),
        (f"/collections/{cid}/delete", [("version", "v1")]),
    ]
    before = (await ann.api(f"/collections/{cid}")).json()
    for path, pairs in stale:
        answer = await ann.post(path, pairs)
        assert answer.status_code == 412, path
        assert "changed after this page was loaded" in alert(answer.text)
        assert version_of(answer.text) == str(int(current) + 1)  # the page as it is now
    assert (await ann.api(f"/collections/{cid}")).json() == before
    edited = await ann.post(f"/collections/{cid}/edit", [("title", "Mine"), ("version", old)])
    assert 'value="Mine"' in edited.text  # what was typed is kept
    assert "Before" in old_html


async def test_a_refused_write_is_undone_and_leaves_no_stale_copy(sessionmaker: Sessions) -> None:
    """The page a refusal answers reads the collection again: the savepoint's version bump is
    rolled back and not kept in the session's identity map (which a reference held elsewhere,
    here `held`, would otherwise keep alive)."""
    user_id, _ = await make_user(sessionmaker, "ann")
    ann = Principal(user_id, "ann", "member", frozenset({"read", "write"}), "session", 1)
    async with session_scope(sessionmaker) as session:
        cid = (
            await collections_service.create_collection(session, ann, {"title": "t"})
        ).collection.id
    async with session_scope(sessionmaker) as session:
        held = await collections_repo.get_collection(session, cid)

        async def move() -> str:
            await collections_service.move_item(session, ann, cid, "NotInIt", 0, None)
            return "/never"

        refusal = await _attempt(session, move)
        assert refusal == Refusal(404, f"Not done: clip NotInIt is not in collection {cid}.")
        again = await collections_repo.get_collection(session, cid)
        assert again is not None
        assert again.version == 1
        assert held is not None


async def test_the_pages_have_no_inline_script_or_style_unique_ids_and_their_stylesheet(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    clips = await stored(sessionmaker, 1)
    ann = await member(client, sessionmaker, "ann")
    cid = await create(ann, visibility="public")
    await add(ann, cid, clips[0])
    pages = [
        await client.get("/collections"),
        await client.get(f"/collections/{cid}"),
        await ann.get("/collections"),
        await ann.get(f"/collections/{cid}"),
        await ann.get(f"/collections/{cid}/delete"),
        await ann.get(f"/collections/add?clip={clips[0]}"),
        await ann.post("/collections", [("title", "")]),
    ]
    for page in pages:
        assert page.status_code in (200, 422), page.request.url
        assert "<style" not in page.text
        assert " style=" not in page.text
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)
        assert '<link rel="stylesheet" href="/static/collections.css">' in page.text
        ids = re.findall(r'\bid="([^"]+)"', page.text)
        assert len(ids) == len(set(ids)), (page.request.url, sorted(ids))
    sheet = await client.get("/static/collections.css")
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/css")


async def test_a_member_with_the_most_collections_is_told_on_the_page(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    clips = await stored(sessionmaker, 1)
    ann = await member(client, sessionmaker, "ann")
    chooser = await ann.get(f"/collections/add?clip={clips[0]}")
    assert "You have no collections yet." in chooser.text
    assert 'action="/collections/add"' not in chooser.text
    user_id = (await ann.api("/me")).json()["id"]
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        session.add_all(
            Collection(
                user_id=user_id,
                title=f"c{i}",
                description="",
                visibility="private",
                share_key=f"key{i}",
                version=1,
                created_at=now,
                updated_at=now,
            )
            for i in range(MAX_COLLECTIONS)
        )
    refused = await ann.post("/collections", [("title", "one more"), ("description", "d")])
    assert refused.status_code == 409
    assert (
        alert(refused.text) == f"Not created: a member keeps at most {MAX_COLLECTIONS} collections."
    )
    assert 'value="one more"' in refused.text
    assert len((await ann.get(f"/collections/add?clip={clips[0]}")).text.split("<option ")) == 501


# --- Any form, any address: a page, never a 500 -------------------------------------------------
# What a form field may hold that passes form_of (a NUL refuses the whole form: 400).
FIELD_TEXT = st.one_of(
    st.text(max_size=40).filter(lambda text: "\x00" not in text),
    st.sampled_from(["", " ", "0", "1", "2", "-1", "1.5", "9" * 30, "private", "public", "Coll0"]),
    st.just("x" * 2500),
)
ANY_TEXT = st.one_of(
    FIELD_TEXT,
    st.text(alphabet=st.characters(codec="utf-8"), max_size=10).map(lambda s: s + "\x00"),
)
# One path segment (a "/", even encoded, or nothing at all is another address, not these pages).
SEGMENT = ANY_TEXT.filter(lambda text: text.strip(".") != "" and "/" not in text)
NAMES = ["title", "description", "visibility", "version", "position", "route_id", "clip"]
FIELDS = st.lists(
    st.tuples(st.sampled_from([*NAMES, "key", "done", "cursor"]), ANY_TEXT), max_size=4
)
ACTIONS = ["edit", "delete", "share-key", "post", "items/Coll0/move", "items/Coll0/remove"]
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@dataclass
class Owned:
    """A member and a collection of theirs holding Coll0, made again when an example deletes
    it (a fixture outlives hypothesis' examples)."""

    member: Member
    cid: int = 0

    async def ready(self) -> tuple[Member, int]:
        if (await self.member.api(f"/collections/{self.cid}")).status_code != 200:
            self.cid = await create(self.member)
            assert (await add(self.member, self.cid, "Coll0")).status_code == 303
        return self.member, self.cid


@pytest.fixture
async def owner(client: httpx.AsyncClient, sessionmaker: Sessions) -> Owned:
    await stored(sessionmaker, 2)
    return Owned(await member(client, sessionmaker, "ann"))


async def _post_any(owner: Owned, segment: str, action: str, fields: Pairs, proof: bool) -> None:
    ann, cid = await owner.ready()
    if action in ("", "add"):
        path = f"/collections/{action}".rstrip("/")
    else:
        named = str(cid) if segment == "mine" else quote(segment, safe="")
        path = f"/collections/{named}/{action}"
    answer = await ann.post(path, fields, proof=proof)
    assert answer.status_code in (303, 400, 403, 404, 405, 409, 412, 422), (path, fields)
    if answer.status_code != 303:
        assert answer.headers["content-type"].startswith("text/html")
        assert "\x00" not in answer.text


@FUZZ
@given(
    action=st.sampled_from([*ACTIONS, "", "add"]),
    form=st.fixed_dictionaries({name: FIELD_TEXT for name in [*NAMES, "collection"]}),
)
async def test_any_owners_form_is_a_page_never_a_500(
    owner: Owned, action: str, form: dict[str, str]
) -> None:
    await _post_any(owner, "mine", action, list(form.items()), proof=True)


@FUZZ
@given(
    segment=st.one_of(st.just("mine"), st.just("999999"), SEGMENT),
    action=st.sampled_from([*ACTIONS, "", "add"]),
    form=st.fixed_dictionaries({}, optional={name: ANY_TEXT for name in [*NAMES, "collection"]}),
    proof=st.booleans(),
)
async def test_any_form_anywhere_is_a_page_never_a_500(
    owner: Owned, segment: str, action: str, form: dict[str, str], proof: bool
) -> None:
    await _post_any(owner, segment, action, list(form.items()), proof)


@FUZZ
@given(segment=SEGMENT, query=FIELDS, signed_in=st.booleans())
async def test_any_collection_address_is_a_page_never_a_500(
    owner: Owned, segment: str, query: Pairs, signed_in: bool
) -> None:
    ann, cid = await owner.ready()
    named = str(cid) if segment == "1" else quote(segment, safe="")
    for path in (f"/collections/{named}", "/collections", "/collections/add"):
        address = f"{path}?{urlencode(query)}" if query else path
        answer = await (ann.get(address) if signed_in else ann.http.get(address))
        assert answer.status_code in (200, 303, 400, 404, 422), address
        if answer.status_code != 303:
            assert answer.headers["content-type"].startswith("text/html")
