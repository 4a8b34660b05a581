"""GET /api/v1/clips and friends, on both databases."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import helix_clip, store_clips

PROBLEM = "application/problem+json"


async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    answer = await client.get("/api/v1/clips", params=params)
    assert answer.status_code == 200, answer.text
    return [clip["id"] for clip in answer.json()["data"]]


@pytest.fixture
async def archive(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, dict[str, Any]]:
    clips = {
        "a": helix_clip(
            id="ClipA",
            title="Insane clutch play",
            view_count=500,
            broadcaster_id="1001",
            broadcaster_name="AlphaStreams",
            game_id="33214",
            creator_id="7001",
            creator_name="ClipperOne",
            language="en",
            created_at="2025-01-03T10:00:00Z",
            is_featured=True,
        ),
        "b": helix_clip(
            id="ClipB",
            title="poggers moment",
            view_count=50,
            broadcaster_id="1002",
            broadcaster_name="BetaGaming",
            game_id="509658",
            creator_id="7002",
            creator_name="SomeoneElse",
            language="es",
            created_at="2025-01-05T10:00:00Z",
        ),
        "c": helix_clip(
            id="ClipC",
            title="clutch fail",
            view_count=5,
            broadcaster_id="1001",
            broadcaster_name="AlphaStreams",
            game_id="33214",
            creator_id="7002",
            creator_name="SomeoneElse",
            language="en",
            created_at="2025-01-01T10:00:00Z",
            video_id="123",
        ),
        "d": helix_clip(
            id="ClipD",
            title="just chatting",
            view_count=5000,
            broadcaster_id="1003",
            broadcaster_name="日本語チャンネル",
            game_id="",
            creator_id="7003",
            creator_name="ClutchKing",
            language="ja",
            created_at="2025-01-04T10:00:00Z",
        ),
    }
    report = await store_clips(sessionmaker, list(clips.values()))
    assert report.inserted == 4
    async with sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE game SET name = 'Just Chatting' WHERE id = '509658'"))
    return clips


@pytest.mark.usefixtures("archive")
async def test_text_search_covers_title_creator_and_channel(client: httpx.AsyncClient) -> None:
    assert set(await ids(client, q="clutch")) == {"ClipA", "ClipC", "ClipD"}
    assert await ids(client, q="pogg") == ["ClipB"]
    assert await ids(client, q="pogg ") == []
    assert await ids(client, q="beta") == ["ClipB"]
    assert await ids(client, q="insane clut") == ["ClipA"]
    assert await ids(client, q="!!!") == []


@pytest.mark.usefixtures("archive")
async def test_filters(client: httpx.AsyncClient) -> None:
    assert set(await ids(client, broadcaster="1001")) == {"ClipA", "ClipC"}
    assert set(await ids(client, broadcaster="alphastreams")) == {"ClipA", "ClipC"}
    assert set(await ids(client, broadcaster=["1002", "1003"])) == {"ClipB", "ClipD"}
    assert await ids(client, broadcaster="nobody") == []
    assert set(await ids(client, game="33214")) == {"ClipA", "ClipC"}
    assert await ids(client, game="just chatting") == ["ClipB"]
    assert set(await ids(client, creator="someoneelse")) == {"ClipB", "ClipC"}
    assert await ids(client, creator="7001") == ["ClipA"]
    assert await ids(client, language="ja") == ["ClipD"]
    assert set(await ids(client, min_views=500)) == {"ClipA", "ClipD"}
    assert await ids(client, featured="true") == ["ClipA"]
    assert set(await ids(client, created_after="2025-01-04T00:00:00Z")) == {"ClipB", "ClipD"}
    assert await ids(client, created_before="2025-01-02T00:00:00Z") == ["ClipC"]
    assert await ids(client, q="clutch", broadcaster="1001", min_views=100) == ["ClipA"]
    assert await ids(client, created_before="0001-01-01T00:00:00+14:00") == []
    assert len(await ids(client, created_after="0001-01-01T00:00:00-12:00")) == 4
    assert len(await ids(client, created_before="9999-12-31T23:59:59-12:00")) == 4


@pytest.mark.usefixtures("archive")
async def test_sorts(client: httpx.AsyncClient) -> None:
    assert await ids(client) == ["ClipB", "ClipD", "ClipA", "ClipC"]  # newest by default
    assert await ids(client, sort="oldest") == ["ClipC", "ClipA", "ClipD", "ClipB"]
    assert await ids(client, sort="views") == ["ClipD", "ClipA", "ClipB", "ClipC"]
    # relevance: a title match beats a creator-name match despite fewer views
    assert (await ids(client, q="clutch"))[0] == "ClipA"
    assert await ids(client, sort="relevance") == await ids(client, sort="views")


async def test_deleted_clips_are_left_out_unless_asked(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await store_clips(sessionmaker, [helix_clip(id="Gone", title="gone clip"), helix_clip()])
    async with sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE clip SET deleted_at = updated_at WHERE id = 'Gone'"))
    assert "Gone" not in await ids(client)
    assert await ids(client, q="gone") == []
    assert await ids(client, q="gone", include_deleted="true") == ["Gone"]
    one = await client.get("/api/v1/clips/Gone")
    assert one.status_code == 200
    assert one.json()["deleted_at"] is not None


async def test_one_clip_and_its_game_name(
    client: httpx.AsyncClient, archive: dict[str, dict[str, Any]]
) -> None:
    answer = await client.get("/api/v1/clips/ClipB")
    assert answer.status_code == 200
    body = answer.json()
    assert body["game_name"] == "Just Chatting"
    for field in ("title", "view_count", "broadcaster_id", "creator_name", "duration"):
        assert body[field] == archive["b"][field]
    assert body["video_id"] is None
    missing = await client.get("/api/v1/clips/NoSuchClip")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["status"] == 404


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "best"},
        {"limit": 0},
        {"limit": 1000},
        {"limit": "ten"},
        {"cursor": "x" * 600},
        {"q": "x" * 10_000},
        {"created_after": "yesterday"},
        {"created_before": "2025-13-01T00:00:00Z"},
        {"min_views": -1},
        {"broadcaster": "bad\x00name"},
        {"language": "english!"},
        {"featured": "maybe"},
    ],
)
async def test_bad_input_is_a_422_problem(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    answer = await client.get("/api/v1/clips", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == 422
    assert "\n" not in body["detail"]


async def test_cursor_pages_walk_without_duplicates_and_bind_to_their_query(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await store_clips(
        sessionmaker, [helix_clip(title=f"pog {i}", view_count=i % 4) for i in range(25)]
    )
    seen: list[str] = []
    params: dict[str, Any] = {"q": "pog", "sort": "views", "limit": 7}
    while True:
        page = (await client.get("/api/v1/clips", params=params)).json()
        seen += [c["id"] for c in page["data"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == 25 == len(set(seen))
    reused = await client.get(
        "/api/v1/clips", params={"q": "other", "sort": "views", "cursor": params["cursor"]}
    )
    assert reused.status_code == 400  # a cursor that cannot continue this query
    resorted = await client.get(
        "/api/v1/clips", params={"q": "pog", "sort": "newest", "cursor": params["cursor"]}
    )
    assert resorted.status_code == 400
    forged = await client.get("/api/v1/clips", params={"cursor": "not-a-real-cursor"})
    assert forged.status_code == 400
    assert forged.headers["content-type"] == PROBLEM


@pytest.mark.usefixtures("archive")
async def test_channels_and_games(client: httpx.AsyncClient) -> None:
    first = (await client.get("/api/v1/channels", params={"limit": 2})).json()
    assert [c["id"] for c in first["data"]] == ["1001", "1002"]
    rest = (await client.get("/api/v1/channels", params={"cursor": first["next_cursor"]})).json()
    assert [c["id"] for c in rest["data"]] == ["1003"]
    assert rest["next_cursor"] is None
    one = (await client.get("/api/v1/channels/AlphaStreams")).json()
    assert one["id"] == "1001"
    assert one["login"] == "alphastreams"
    localized = (await client.get("/api/v1/channels/1003")).json()
    assert localized["login"] is None
    assert (await client.get("/api/v1/channels/nobody")).status_code == 404
    games = (await client.get("/api/v1/games")).json()
    assert {g["id"] for g in games["data"]} == {"33214", "509658"}
    bad = await client.get("/api/v1/games", params={"cursor": first["next_cursor"]})
    assert bad.status_code == 400


async def test_health_and_status(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    deadline = time.monotonic() + 20
    while (ready := await client.get("/readyz")).status_code != 200:
        assert ready.json()["stream"] == "starting", ready.text  # its first look, then ready
        assert time.monotonic() < deadline, ready.text
        await asyncio.sleep(0.02)  # polling the condition above, with a deadline
    assert ready.json() == {"database": "ok", "redis": "not configured", "stream": "ready"}
    status = (await client.get("/api/v1/status")).json()
    assert status["mode"] == "demo"
    assert "simulated" in status["banner"]
    unknown = await client.get("/api/v1/nothing-here")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM


@pytest.fixture
async def lengths(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Clips of three creators with views and durations to filter on."""
    clips = [
        helix_clip(id="Short", view_count=10, duration=5.0, creator_id="7001", creator_name="Ann"),
        helix_clip(id="Mid", view_count=100, duration=30.0, creator_id="7002", creator_name="Bo B"),
        helix_clip(
            id="Mid2", view_count=150, duration=30.5, creator_id="7002", creator_name="Bo B"
        ),
        helix_clip(id="Long", view_count=1000, duration=60.0, creator_id="7003", creator_name="Cy"),
    ]
    await store_clips(sessionmaker, clips)


@pytest.mark.usefixtures("lengths")
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"max_views": 100}, {"Short", "Mid"}),
        ({"min_views": 100, "max_views": 150}, {"Mid", "Mid2"}),
        ({"max_views": 0}, set()),
        ({"min_duration": 30}, {"Mid", "Mid2", "Long"}),
        ({"max_duration": 30.5}, {"Short", "Mid", "Mid2"}),
        ({"min_duration": 30.5, "max_duration": 30.5}, {"Mid2"}),
        ({"min_duration": 0, "max_duration": 4.9}, set()),
        ({"creator": ["ann", "7003"]}, {"Short", "Long"}),
        ({"creator": ["bo b"]}, {"Mid", "Mid2"}),
        ({"creator": ["BO B", "nobody"]}, {"Mid", "Mid2"}),
        ({"creator": ["nobody", "9999"]}, set()),
        ({"creator": ["ann", "bo b"], "max_duration": 30, "sort": "views"}, {"Short", "Mid"}),
    ],
)
async def test_views_duration_and_creators_filters(
    client: httpx.AsyncClient, params: dict[str, Any], expected: set[str]
) -> None:
    whole = await ids(client, **params)
    assert set(whole) == expected
    assert len(whole) == len(expected)
    # One clip a page: the filters hold on every page the cursor leads to.
    walked: list[str] = []
    query = {**params, "limit": 1}
    while True:
        page = (await client.get("/api/v1/clips", params=query)).json()
        walked += [c["id"] for c in page["data"]]
        if not page["next_cursor"]:
            break
        query["cursor"] = page["next_cursor"]
    assert walked == whole


@pytest.mark.usefixtures("lengths")
async def test_new_filters_are_part_of_the_cache_key_and_of_the_cursor(
    client: httpx.AsyncClient,
) -> None:
    # Asked twice each, so the second answer comes from the cache.
    for _ in range(2):
        assert set(await ids(client, max_views=100)) == {"Short", "Mid"}
        assert set(await ids(client, max_views=1000)) == {"Short", "Mid", "Mid2", "Long"}
        assert await ids(client, min_duration=31) == ["Long"]
        assert await ids(client, creator=["cy"]) == ["Long"]
    first = (await client.get("/api/v1/clips", params={"max_views": 200, "limit": 1})).json()
    elsewhere = await client.get(
        "/api/v1/clips", params={"max_views": 300, "limit": 1, "cursor": first["next_cursor"]}
    )
    assert elsewhere.status_code == 400  # a cursor continues only its own query


async def test_at_most_twenty_creators(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/clips", params={"creator": ["a"] * 20})).status_code == 200
    answer = await client.get("/api/v1/clips", params={"creator": ["a"] * 21})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    ("params", "names"),
    [
        (
            {"created_after": "2025-01-05T00:00:00Z", "created_before": "2025-01-04T00:00:00Z"},
            ("created_after", "created_before"),
        ),
        ({"min_views": 10, "max_views": 9}, ("min_views", "max_views")),
        ({"min_duration": 30.5, "max_duration": 30}, ("min_duration", "max_duration")),
    ],
)
async def test_contradicting_filters_are_a_422_naming_them(
    client: httpx.AsyncClient, params: dict[str, Any], names: tuple[str, str]
) -> None:
    answer = await client.get("/api/v1/clips", params={"q": "pog", **params})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    detail = answer.json()["detail"]
    assert all(name in detail for name in names), detail
    # Equal bounds are a range of one instant, one count or one length: fine.
    low, high = names
    same = {low: params[low], high: params[low]}
    assert (await client.get("/api/v1/clips", params=same)).status_code == 200


@pytest.mark.usefixtures("archive")
async def test_language_in_any_case(client: httpx.AsyncClient) -> None:
    assert await ids(client, language="EN") == await ids(client, language="en")
    assert set(await ids(client, language="En")) == {"ClipA", "ClipC"}
    assert await ids(client, language="JA") == ["ClipD"]
    for tag in ("pt-BR", "OTHER", "asl"):
        assert await ids(client, language=tag) == []
    for garbage in ("english!", "e", "en-toolong", "e n", "other2"):
        answer = await client.get("/api/v1/clips", params={"language": garbage})
        assert answer.status_code == 422, garbage
