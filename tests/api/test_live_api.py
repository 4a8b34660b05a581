"""Live state in the API, on both databases: `live` on /channels and /channels/{login}
(cached answers outdated by every live change), and /channels/{login}/streams (history,
keyset pages newest first, strict query)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.models import Channel
from clipwatch.twitch.live import channel_updated, went_offline, went_online

T0 = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)


async def channels(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with session_scope(sessionmaker) as session:
        session.add(Channel(id="111", login="alpha", display_name="Alpha", tracked=True))
        session.add(Channel(id="222", login="beta", display_name="Beta", tracked=True))
        session.add(Channel(id="333", login="gamma", display_name="Gamma", tracked=False))


async def get(client: httpx.AsyncClient, path: str, **params: Any) -> Any:
    answer = await client.get(f"/api/v1{path}", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def by_login(page: dict[str, Any]) -> dict[str, Any]:
    return {c["login"]: c for c in page["data"]}


async def test_live_shows_at_once_and_goes_back_to_null(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await channels(sessionmaker)
    # Read first, so the answers are cached: the change must outdate them.
    before = by_login(await get(client, "/channels"))
    assert all(c["live"] is None for c in before.values())
    assert (await get(client, "/channels/alpha"))["live"] is None

    started = T0
    assert await went_online(
        sessionmaker,
        "111",
        stream_id="900",
        started_at=started,
        stream_type="live",
        source="eventsub",
        at=T0 + timedelta(seconds=3),
    )
    assert await channel_updated(
        sessionmaker, "111", source="eventsub", title="Any% run", game_id="42", game_name="Doom"
    )
    assert await went_online(
        sessionmaker,
        "111",
        stream_id="900",
        started_at=started,
        stream_type="live",
        source="poll",
        viewer_count=321,
        at=T0 + timedelta(minutes=1),
    )
    listed = by_login(await get(client, "/channels"))
    one = await get(client, "/channels/alpha")
    expected = {
        "since": "2026-11-20T18:00:00Z",
        "title": "Any% run",
        "game": {"id": "42", "name": "Doom"},
        "viewer_count": 321,
        "type": "live",
        "source": "eventsub",  # who said it went live; the poll only confirmed
        "checked_at": "2026-11-20T18:01:00Z",
    }
    for live in (listed["alpha"]["live"], one["live"]):
        assert {**live, "since": live["since"].replace("+00:00", "Z")} | {
            "checked_at": live["checked_at"].replace("+00:00", "Z")
        } == expected
    assert listed["beta"]["live"] is None
    assert listed["gamma"]["live"] is None
    # By id too.
    assert (await get(client, "/channels/111"))["live"]["viewer_count"] == 321

    assert await went_offline(sessionmaker, "111", source="eventsub", at=T0 + timedelta(hours=1))
    assert (await get(client, "/channels/alpha"))["live"] is None
    assert by_login(await get(client, "/channels"))["alpha"]["live"] is None


async def test_untracked_channels_never_show_live(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await channels(sessionmaker)
    assert await went_online(
        sessionmaker, "111", stream_id="1", started_at=T0, stream_type="live", source="poll"
    )
    # Untracked since: the stored row stays, the API does not show it.
    async with session_scope(sessionmaker) as session:
        channel = await session.get(Channel, "111")
        assert channel is not None
        channel.tracked = False
    assert (await get(client, "/channels/alpha"))["live"] is None


async def make_history(sessionmaker: async_sessionmaker[AsyncSession], n: int) -> None:
    for i in range(n):
        start = T0 + timedelta(days=i)
        assert await went_online(
            sessionmaker,
            "111",
            stream_id=f"s{i}",
            started_at=start,
            stream_type="live",
            source="eventsub",
            title=f"stream {i}",
            viewer_count=10 * i,
            at=start,
        )
        if i < n - 1:
            assert await went_offline(
                sessionmaker, "111", source="eventsub", at=start + timedelta(hours=2)
            )


async def test_stream_history_pages_newest_first(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await channels(sessionmaker)
    await make_history(sessionmaker, 5)
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await get(client, "/channels/alpha/streams", **params)
        assert len(page["data"]) <= 2
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [s["twitch_stream_id"] for s in seen] == ["s4", "s3", "s2", "s1", "s0"]
    assert seen[0]["ended_at"] is None  # still running
    assert seen[1]["ended_at"] is not None
    assert (seen[1]["title"], seen[1]["peak_viewers"]) == ("stream 3", 30)
    assert (await get(client, "/channels/beta/streams")) == {"data": [], "next_cursor": None}
    # A new stream outdates the cached first page.
    first = await get(client, "/channels/alpha/streams", limit=1)
    await went_offline(sessionmaker, "111", source="eventsub", at=T0 + timedelta(days=9))
    await went_online(
        sessionmaker,
        "111",
        stream_id="s9",
        started_at=T0 + timedelta(days=10),
        stream_type="live",
        source="eventsub",
    )
    again = await get(client, "/channels/alpha/streams", limit=1)
    assert first["data"][0]["twitch_stream_id"] == "s4"
    assert again["data"][0]["twitch_stream_id"] == "s9"


async def test_stream_history_refuses_what_it_does_not_take(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await channels(sessionmaker)
    await make_history(sessionmaker, 3)
    assert (await client.get("/api/v1/channels/nobody/streams")).status_code == 404
    unknown = await client.get("/api/v1/channels/alpha/streams", params={"sort": "old"})
    assert unknown.status_code == 422
    assert "sort" in unknown.json()["detail"]
    for limit in ("0", "101", "1.5"):
        bad = await client.get("/api/v1/channels/alpha/streams", params={"limit": limit})
        assert bad.status_code == 422
    assert (
        await client.get("/api/v1/channels/alpha/streams", params={"cursor": "made-up"})
    ).status_code == 400
    # A cursor of another channel's history does not continue this one.
    page = await get(client, "/channels/alpha/streams", limit=1)
    other = await client.get(
        "/api/v1/channels/beta/streams", params={"cursor": page["next_cursor"]}
    )
    assert other.status_code == 400
    # Nor one of the channel list.
    listing = await get(client, "/channels", limit=1)
    assert listing["next_cursor"]
    mixed = await client.get(
        "/api/v1/channels/alpha/streams", params={"cursor": listing["next_cursor"]}
    )
    assert mixed.status_code == 400
