"""GET /api/v1/stream (Server-Sent Events) on both databases, with and without Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from clipwatch.accounts import service
from clipwatch.accounts.service import operator
from clipwatch.api.routers.stream import _resume_point
from clipwatch.cache.manager import CacheManager
from clipwatch.clips import moderation
from clipwatch.clips.stream import HOLD_MAX_S, StreamHub
from clipwatch.clips.stream_filter import StreamFilter
from clipwatch.config import Settings
from clipwatch.db.engine import (
    attach_cache,
    create_engine,
    create_sessionmaker,
    session_scope,
    touch,
)
from clipwatch.db.models import Channel, ChannelLive, Clip
from clipwatch.db.repositories.clip_stream import parse_snapshot
from clipwatch.db.repositories.sync_state import mark_deleted
from clipwatch.errors import InvalidInput
from clipwatch.monitoring.metrics import SSE_CLIENTS, SSE_DROPPED
from tests.api.sse_client import Served, Stream, open_stream, serve_app, wait_for
from tests.conftest import TEST_SECRET, app_client
from tests.factories import helix_clip, store_clips
from tests.processes import serving, wait_until_up

PROBLEM = "application/problem+json"
STOP_DEADLINE_S = 10.0  # uvicorn alone would wait for the streams forever


def chan(channel_id: str) -> dict[str, str]:
    """A clip's channel; its own name, so import creates its row (a login is unique)."""
    return {"broadcaster_id": channel_id, "broadcaster_name": f"Chan{channel_id}"}


@pytest.fixture
def stream_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"sse_heartbeat_seconds": 0.5})


@pytest.fixture
async def served(
    stream_settings: Settings, engine: AsyncEngine, cache: CacheManager
) -> AsyncIterator[Served]:
    """The app on a socket, sharing the test engine's cache (as the embedded worker does)."""
    async with serve_app(stream_settings, cache) as served:
        yield served


@pytest.fixture
async def http(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as client:
        yield client


async def seq_of(sessionmaker: async_sessionmaker[AsyncSession], clip_id: str) -> int:
    async with sessionmaker() as session:
        return int((await session.scalars(select(Clip.seq).where(Clip.id == clip_id))).one())


async def barrier(served: Served, stream: Stream, seq: int) -> None:
    """Everything up to `seq` was handed to `stream`'s queue, and written: two heartbeats
    after the release follow every frame queued before it (frames are written in order)."""
    await wait_for(lambda: served.hub.released >= seq, f"the hub to release {seq}")
    seen = stream.heartbeats()
    await wait_for(lambda: stream.heartbeats() >= seen + 2, "two heartbeats")


async def test_a_stored_clip_reaches_the_client_as_clips_shows_it(
    served: Served, http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    stream = await open_stream(http)
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.retries, "a retry hint comes first"
    await store_clips(sessionmaker, [helix_clip(id="NewClip", title="fresh one")])
    await wait_for(lambda: stream.clip_ids() == ["NewClip"], "the clip event")
    event = stream.of("clip")[0]
    assert event.id == await seq_of(sessionmaker, "NewClip")
    listed = (await http.get("/api/v1/clips", params={"q": "fresh"})).json()["data"]
    assert event.data == listed[0]
    await stream.close()


async def test_a_write_nobody_announced_still_arrives_at_the_next_look(
    served: Served, http: httpx.AsyncClient, stream_settings: Settings
) -> None:
    """Redis down, or an engine without the cache: no notice, the once-a-second look."""
    stream = await open_stream(http)
    silent = create_engine(stream_settings)  # no cache attached: no generation moves
    try:
        await store_clips(create_sessionmaker(silent), [helix_clip(id="Unannounced")])
    finally:
        await silent.dispose()
    await wait_for(lambda: stream.clip_ids() == ["Unannounced"], "the clip at the next look")
    await stream.close()


async def test_heartbeats_keep_an_idle_stream_open(served: Served, http: httpx.AsyncClient) -> None:
    stream = await open_stream(http)
    await wait_for(lambda: stream.heartbeats() >= 3, "three heartbeats")
    assert not stream.events
    await stream.close()


FILTERS: list[dict[str, Any]] = [
    {"broadcaster": "2002"},
    {"game": "Fortnite"},
    {"min_views": 100},
    {"q": "clutch"},
    {"language": "ES"},
    {"creator": "ClipperTwo"},
    {"featured": "true", "max_duration": 20},
    {"broadcaster": ["2001", "2002"], "q": "fail"},
]


async def test_each_client_gets_what_its_filters_match_as_clips_answers(
    served: Served, http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await store_clips(sessionmaker, [helix_clip(id="Seed", game_id="33214")])
    async with sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE game SET name = 'Fortnite' WHERE id = '33214'"))
    seed = await seq_of(sessionmaker, "Seed")
    await wait_for(lambda: served.hub.released >= seed, "the hub past the seed clip")
    streams = [await open_stream(http, params=f) for f in FILTERS]
    everything = await open_stream(http)
    clips = [
        helix_clip(id="A", **chan("2001"), title="clutch play", view_count=500),
        helix_clip(id="B", **chan("2002"), title="big fail", language="es"),
        helix_clip(
            id="C", **chan("2002"), game_id="99", creator_id="5002", creator_name="ClipperTwo"
        ),
        helix_clip(id="D", **chan("2003"), title="Clutch fail", is_featured=True, duration=15.0),
        helix_clip(id="E", **chan("2003"), game_id="33214", view_count=150),
    ]
    await store_clips(sessionmaker, clips)
    last = max([await seq_of(sessionmaker, c["id"]) for c in clips])
    await wait_for(lambda: len(everything.clip_ids()) == 5, "every clip on the open stream")
    for params, stream in zip(FILTERS, streams, strict=True):
        await barrier(served, stream, last)
        answer = await http.get("/api/v1/clips", params={**params, "sort": "oldest"})
        expected = {c["id"] for c in answer.json()["data"]} - {"Seed"}
        assert answer.status_code == 200, answer.text
        assert expected, (params, answer.text)  # every filter matches something: the test can fail
        assert sorted(stream.clip_ids()) == sorted(expected), params
        ids = [e.id for e in stream.of("clip")]
        assert ids == sorted(ids)
    for stream in [*streams, everything]:
        await stream.close()


async def test_last_event_id_gets_exactly_the_missed_clips_then_live_ones(
    served: Served, http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    first = await open_stream(http, params={"broadcaster": "3001"})
    await store_clips(sessionmaker, [helix_clip(id="Seen", **chan("3001"))])
    await wait_for(lambda: first.clip_ids() == ["Seen"], "the first clip")
    last_id = first.of("clip")[-1].id
    await first.close()
    missed = [helix_clip(id=f"Missed{n}", **chan("3001")) for n in range(5)]
    others = [helix_clip(id=f"Other{n}", **chan("3002")) for n in range(3)]
    await store_clips(sessionmaker, missed[:2] + others + missed[2:])
    newest = max([await seq_of(sessionmaker, c["id"]) for c in missed + others])
    # Released before the client comes back: what it gets is the replay, not live events.
    await wait_for(lambda: served.hub.released >= newest, "the hub past the missed clips")
    wanted = [c["id"] for c in missed]
    for how in ("header", "query"):
        resumed = await open_stream(
            http,
            params={
                "broadcaster": "3001",
                **({"last_event_id": last_id} if how == "query" else {}),
            },
            headers={"Last-Event-ID": str(last_id)} if how == "header" else None,
        )
        await wait_for(lambda r=resumed: r.heartbeats() > 0, f"the replay's end ({how})")
        assert resumed.clip_ids() == wanted, how
        ids = [e.id for e in resumed.of("clip")]
        assert ids == sorted(ids)
        assert len(set(ids)) == len(wanted)
        await store_clips(sessionmaker, [helix_clip(id=f"Live-{how}", **chan("3001"))])
        wanted.append(f"Live-{how}")  # live on this stream; missed by the next one
        await wait_for(lambda r=resumed: r.clip_ids() == wanted, "the live clip after it")
        await resumed.close()


async def test_a_last_event_id_ahead_of_this_process_is_not_sent_again(
    served: Served, http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Reconnected to a process whose watermark is behind the one it left: the clips up to
    its id (which it has) do not come again."""
    await store_clips(sessionmaker, [helix_clip(id="Had")])
    had = await seq_of(sessionmaker, "Had")
    await wait_for(lambda: served.hub.released >= had, "the hub past it")
    stream = await open_stream(http, headers={"Last-Event-ID": str(had + 1)})
    await store_clips(sessionmaker, [helix_clip(id="AlsoHad")])
    assert await seq_of(sessionmaker, "AlsoHad") == had + 1
    await store_clips(sessionmaker, [helix_clip(id="New")])
    await wait_for(lambda: "New" in stream.clip_ids(), "the next clip")
    assert stream.clip_ids() == ["New"]
    await stream.close()


async def test_a_long_absence_is_replayed_over_reconnects_without_gaps(
    served: Served, http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    served.hub.replay_limit = 3
    await store_clips(sessionmaker, [helix_clip(id=f"Gone{n:02d}") for n in range(8)])
    newest = await seq_of(sessionmaker, "Gone07")
    await wait_for(lambda: served.hub.released >= newest, "the hub past the clips")
    received: list[str] = []
    last = 0
    for _ in range(10):
        stream = await open_stream(http, headers={"Last-Event-ID": str(last)})
        await wait_for(lambda s=stream: s.ended or s.heartbeats() > 0, "the replay's end")
        received += stream.clip_ids()
        if stream.of("clip"):
            last = stream.of("clip")[-1].id or last
        ended_for_more = any(e.data["reason"] == "replay_limit" for e in stream.of("error"))
        await stream.close()
        if not ended_for_more:
            break
    assert received == [f"Gone{n:02d}" for n in range(8)]


async def test_a_replay_reads_a_bounded_number_of_rows_then_says_what_it_skipped(
    served: Served, http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    served.hub.replay_scan = 4  # rows; the filter below matches one clip in five
    clips = [helix_clip(id=f"Far{n}", **chan("3101" if n % 5 == 4 else "3102")) for n in range(10)]
    await store_clips(sessionmaker, clips)
    newest = await seq_of(sessionmaker, "Far9")
    await wait_for(lambda: served.hub.released >= newest, "the hub past the clips")
    first = await seq_of(sessionmaker, "Far0")
    stream = await open_stream(
        http, params={"broadcaster": "3101"}, headers={"Last-Event-ID": str(first - 1)}
    )
    await wait_for(lambda: bool(stream.of("replay.truncated")), "the truncation notice")
    assert stream.clip_ids() == []  # Far4 is the fifth row: past the four read
    notice = stream.of("replay.truncated")[0]
    assert notice.id is None
    assert notice.data == {"after": first + 3, "upto": newest}
    await store_clips(sessionmaker, [helix_clip(id="Near", **chan("3101"))])
    await wait_for(lambda: stream.clip_ids() == ["Near"], "live clips after it")
    await stream.close()


async def test_updates_and_deletions_are_told(
    served: Served, http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clip = helix_clip(id="Changing", **chan("4001"), view_count=10)
    await store_clips(sessionmaker, [clip])
    stored = await seq_of(sessionmaker, "Changing")
    await wait_for(lambda: served.hub.released >= stored, "the hub past the clip")
    stream = await open_stream(http, params={"broadcaster": "4001"})
    await store_clips(sessionmaker, [{**clip, "view_count": 99, "title": "renamed"}])
    await wait_for(lambda: bool(stream.of("clip.updated")), "clip.updated")
    updated = stream.of("clip.updated")[0]
    assert updated.id is None  # only clip events carry ids
    assert (updated.data["view_count"], updated.data["title"]) == (99, "renamed")
    async with session_scope(sessionmaker) as session:
        assert await mark_deleted(session, ["Changing"], datetime.now(UTC)) == 1
    await wait_for(lambda: bool(stream.of("clip.deleted")), "clip.deleted")
    assert stream.of("clip.deleted")[0].data["deleted_at"] is not None
    assert not stream.of("clip")
    await stream.close()


async def test_a_hidden_clip_is_told_gone_without_a_word_of_it_and_never_replayed(
    served: Served, http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    first = await open_stream(http, params={"broadcaster": "4101"})
    clips = [helix_clip(id=f"Hush{n}", title=f"secret {n}", **chan("4101")) for n in range(3)]
    await store_clips(sessionmaker, clips)
    await wait_for(lambda: len(first.clip_ids()) == 3, "the three clips")
    async with session_scope(sessionmaker) as session:
        await moderation.hide(session, operator("test"), "Hush1", "a leaked address")
    await wait_for(lambda: bool(first.of("clip.deleted")), "clip.deleted")
    assert first.of("clip.deleted")[0].data == {"id": "Hush1", "hidden": True}
    last_seen = first.of("clip")[0].id  # Hush0's: Hush1 and Hush2 were missed by the next
    await first.close()
    resumed = await open_stream(
        http, params={"broadcaster": "4101"}, headers={"Last-Event-ID": str(last_seen)}
    )
    await wait_for(lambda: resumed.heartbeats() > 0, "the replay's end")
    assert resumed.clip_ids() == ["Hush2"]
    async with session_scope(sessionmaker) as session:
        assert await moderation.unhide(session, operator("test"), "Hush1")
    await wait_for(lambda: bool(resumed.of("clip.updated")), "clip.updated")
    assert resumed.of("clip.updated")[0].data["title"] == "secret 1"
    await resumed.close()


async def test_a_channel_going_live_is_told_to_streams_of_that_channel(
    served: Served, http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mine = await open_stream(http, params={"broadcaster": "5001"})
    other = await open_stream(http, params={"broadcaster": "5002"})
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        session.add(Channel(id="5001", login="livechan", display_name="LiveChan", tracked=True))
        session.add(
            ChannelLive(
                channel_id="5001",
                live=True,
                stream_id="s1",
                started_at=now,
                title="hello",
                source="poll",
                changed_at=now,
                checked_at=now,
            )
        )
        touch(session, "live", "ch:5001")
    await wait_for(lambda: bool(mine.of("channel.live")), "channel.live")
    event = mine.of("channel.live")[0]
    assert event.id is None
    assert event.data["channel"] == {"id": "5001", "login": "livechan", "display_name": "LiveChan"}
    assert event.data["live"]["title"] == "hello"
    assert event.data["live"]["source"] == "poll"
    assert event.data["ended_at"] is None
    async with session_scope(sessionmaker) as session:
        row = await session.get(ChannelLive, "5001")
        assert row is not None
        row.live, row.changed_at, row.ended_at = False, datetime.now(UTC), datetime.now(UTC)
        touch(session, "live", "ch:5001")
    await wait_for(lambda: len(mine.of("channel.live")) == 2, "the channel going offline")
    offline = mine.of("channel.live")[1].data
    assert offline["live"] is None
    assert offline["ended_at"] is not None
    seen = other.heartbeats()
    await wait_for(lambda: other.heartbeats() >= seen + 2, "heartbeats on the other stream")
    assert not other.of("channel.live")
    await mine.close()
    await other.close()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "newest"}, "sort"),
        ({"cursor": "abc"}, "cursor"),
        ({"limit": "5"}, "limit"),
        ({"period": "week"}, "period"),
        ({"min_views": "-1"}, "min_views"),
        ({"min_views": "1.0"}, "min_views"),
        ({"last_event_id": "abc"}, "last_event_id"),
        ({"last_event_id": "-3"}, "last_event_id"),
        ({"language": "english!"}, "language"),
        (
            {"created_after": "2025-02-01T00:00:00Z", "created_before": "2025-01-01T00:00:00Z"},
            "created_after",
        ),
        ({"feed": "theirs"}, "feed"),
    ],
)
async def test_bad_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    answer = await client.get("/api/v1/stream", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert field in answer.text


async def test_a_last_event_id_header_that_is_no_id_is_422(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/stream", headers={"Last-Event-ID": "clip-7"})
    assert answer.status_code == 422
    assert "Last-Event-ID" in answer.text


async def test_feed_mine_needs_credentials_and_follows_the_preferences(
    served: Served, http: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert (await http.get("/api/v1/stream", params={"feed": "mine"})).status_code == 401
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, "viewer")
        _token, plaintext = await service.create_token(
            session, user, name="t", scopes=frozenset({"read", "write"})
        )
    auth = {"Authorization": f"Bearer {plaintext}"}
    answer = await http.put(
        "/api/v1/me/preferences", json={"channels": ["6001"], "min_views": 20}, headers=auth
    )
    assert answer.status_code == 200, answer.text
    await store_clips(sessionmaker, [helix_clip(**chan("6001"), id="Known")])
    known = await seq_of(sessionmaker, "Known")
    await wait_for(lambda: served.hub.released >= known, "the hub past the known clip")
    bad = await http.get("/api/v1/stream", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    feed = await open_stream(http, params={"feed": "mine"}, headers=auth)
    assert feed.status == 200
    await store_clips(
        sessionmaker,
        [
            helix_clip(id="Followed", **chan("6001"), view_count=50),
            helix_clip(id="TooFew", **chan("6001"), view_count=5),
            helix_clip(id="NotFollowed", **chan("6002"), view_count=50),
        ],
    )
    last = max([await seq_of(sessionmaker, i) for i in ("Followed", "TooFew", "NotFollowed")])
    await barrier(served, feed, last)
    assert feed.clip_ids() == ["Followed"]
    await feed.close()


async def test_beyond_the_client_limit_the_answer_is_503_with_retry_after(
    settings: Settings, engine: AsyncEngine, cache: CacheManager
) -> None:
    limited = settings.model_copy(update={"sse_max_clients": 2, "sse_heartbeat_seconds": 0.5})
    async with (
        serve_app(limited, cache) as served,
        httpx.AsyncClient(base_url=served.base, timeout=30) as http,
    ):
        streams = [await open_stream(http) for _ in range(2)]
        assert [s.status for s in streams] == [200, 200]
        assert SSE_CLIENTS._value.get() == 2
        limited_before = SSE_DROPPED.labels("limit")._value.get()
        refused = await open_stream(http)
        assert refused.status == 503
        assert int(refused.headers["retry-after"]) > 0
        assert SSE_DROPPED.labels("limit")._value.get() == limited_before + 1
        await streams[0].close()
        await wait_for(lambda: len(served.hub.subscribers) == 1, "the closed stream to go")
        again = await open_stream(http)
        assert again.status == 200
        for stream in [*streams, again]:
            await stream.close()


async def test_the_connect_counts_against_the_rate_limit(
    settings: Settings, engine: AsyncEngine, cache: CacheManager
) -> None:
    limited = settings.model_copy(update={"rate_limit_anonymous": "2/minute"})
    async with (
        serve_app(limited, cache) as served,
        httpx.AsyncClient(base_url=served.base, timeout=30) as http,
    ):
        streams = [await open_stream(http) for _ in range(2)]
        refused = await open_stream(http)
        assert refused.status == 429
        assert "retry-after" in refused.headers
        assert len(served.hub.subscribers) == 2
        for stream in streams:
            await stream.close()


# --- the hub itself: a slow client ----------------------------------------------------------


async def test_a_slow_client_is_dropped_with_a_retry_hint_and_the_fast_one_gets_everything(
    sessionmaker: async_sessionmaker[AsyncSession], cache: CacheManager
) -> None:
    hub = StreamHub(
        sessionmaker, render_clip=lambda c, _g: c.id.encode(), queue_size=8, max_clients=10
    )
    cache.add_listener(hub.notice)
    await hub.start()
    try:
        await wait_for(lambda: hub.ready, "the hub's first look")
        slow = hub.subscribe(StreamFilter())
        fast = hub.subscribe(StreamFilter())
        got: list[bytes] = []

        async def drain() -> None:
            while fast.final is None:
                got.extend(await fast.take(0.1))

        draining = asyncio.create_task(drain())
        dropped_before = SSE_DROPPED.labels("slow")._value.get()
        for batch in range(4):  # 20 clips, more than the slow client's queue holds
            await store_clips(sessionmaker, [helix_clip(id=f"S{batch}-{n}") for n in range(5)])
        await wait_for(lambda: len(got) == 20, "every clip on the fast client")
        assert slow.ended
        assert slow not in hub.subscribers
        assert fast in hub.subscribers
        assert not fast.ended
        final = slow.final or b""
        assert b"event: error" in final
        assert b"retry: " in final
        assert b'"slow"' in final
        assert SSE_DROPPED.labels("slow")._value.get() == dropped_before + 1
        ids = [frame.split(b"\ndata: ")[1].strip() for frame in got]
        assert ids == [f"S{b}-{n}".encode() for b in range(4) for n in range(5)]
        fast.end(b"")
        await draining
    finally:
        cache.remove_listener(hub.notice)
        await hub.close()


@pytest.mark.parametrize("early_writer_has_the_older_id", [False, True])
async def test_postgresql_a_clip_committing_late_below_a_released_one_is_not_lost(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    cache: CacheManager,
    early_writer_has_the_older_id: bool,
) -> None:
    """seq 1 taken by a transaction that commits after the one holding seq 2: the stream
    waits for it, then hands out both in order (SQLite has one writer: no such case).
    When the early writer took its transaction id first (it wrote elsewhere before its
    clips, as a sync pass does), the late one's id is above the snapshot's `xmax` and
    `pg_current_snapshot()` does not list it: the stream must still wait."""
    if not database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL commits seqs out of order")
    hub = StreamHub(
        sessionmaker, render_clip=lambda c, _g: c.id.encode(), queue_size=64, max_clients=10
    )
    cache.add_listener(hub.notice)
    await hub.start()
    try:
        await wait_for(lambda: hub.ready, "the hub's first look")
        sub = hub.subscribe(StreamFilter())
        await store_clips(sessionmaker, [helix_clip(id="Before")])
        await wait_for(lambda: b"Before" in b"".join(sub.frames), "the first clip")
        slow_session = sessionmaker()
        early_session = sessionmaker()
        async with slow_session.begin():
            if early_writer_has_the_older_id:
                await early_session.begin()
                await early_session.execute(text("SELECT pg_current_xact_id()"))
            await slow_session.execute(
                Clip.__table__.insert().values(**_row("Late"))
            )  # takes the lower seq, commits last
            if early_writer_has_the_older_id:
                await early_session.execute(Clip.__table__.insert().values(**_row("Early")))
                await early_session.commit()
                await cache.bump(["clips"])
            else:
                await store_clips(sessionmaker, [helix_clip(id="Early")])
            late_seq = await _seq_in(slow_session, "Late")
            assert late_seq < await seq_of(sessionmaker, "Early")
            woken = hub.wakeups
            await wait_for(lambda: hub.wakeups >= woken + 5, "the hub to look again")
            assert b"Early" not in b"".join(sub.frames)  # held back: Late may still commit
        await slow_session.close()
        await early_session.close()
        await cache.bump(["clips"])
        await wait_for(lambda: b"Early" in b"".join(sub.frames), "both clips")
        order = [f.split(b"data: ")[1].strip() for f in sub.frames]
        assert order[-2:] == [b"Late", b"Early"]
    finally:
        cache.remove_listener(hub.notice)
        await hub.close()


async def test_postgresql_not_ready_while_the_streams_first_look_waits_on_a_writer(
    database_url: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    cache: CacheManager,
) -> None:
    """A process whose stream would refuse clients (503) is not ready: /readyz says so until
    the hub's first look is done (here: a writer that started before it commits)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL commits seqs out of order")
    writer = sessionmaker()
    async with writer.begin():
        await writer.execute(Clip.__table__.insert().values(**_row("Held")))
        async with app_client(settings, cache=cache) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["stream"] == "starting"
            assert ready.json()["database"] == "ok"
            refused = await http.get("/api/v1/stream")
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            await writer.commit()
            await wait_for_answer(http, "/readyz", 200)
            assert (await http.get("/readyz")).json()["stream"] == "ready"
    await writer.close()


async def test_postgresql_a_transaction_in_another_database_holds_nothing_back(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], cache: CacheManager
) -> None:
    """Transaction ids are the server's: a long transaction of another database on the same
    PostgreSQL (another application's; another test run's) is listed by every snapshot,
    yet can never write a clip here. It holds neither the first look nor a new clip back
    (each waited HOLD_MAX_S for it before)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL has transactions of other databases in its snapshots")
    elsewhere = create_async_engine(make_url(database_url).set(database="postgres"))
    hub = StreamHub(
        sessionmaker, render_clip=lambda c, _g: c.id.encode(), queue_size=64, max_clients=10
    )
    try:
        async with elsewhere.connect() as other:
            await other.execute(text("SELECT pg_current_xact_id()"))  # takes an id, stays open
            cache.add_listener(hub.notice)
            started = time.monotonic()
            await hub.start()
            await wait_for(lambda: hub.ready, "the hub's first look")
            assert time.monotonic() - started < HOLD_MAX_S / 2
            sub = hub.subscribe(StreamFilter())
            await store_clips(sessionmaker, [helix_clip(id="Meanwhile")])
            await cache.bump(["clips"])
            stored = time.monotonic()
            await wait_for(lambda: b"Meanwhile" in b"".join(sub.frames), "the new clip")
            assert time.monotonic() - stored < HOLD_MAX_S / 2
            await other.rollback()
    finally:
        cache.remove_listener(hub.notice)
        await hub.close()
        await elsewhere.dispose()


async def test_closing_as_a_change_is_noticed_stops_the_hub(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """The close's cancel lands in the turn the hub is woken: the hub stops (with
    `asyncio.wait_for` on Python 3.11 it ran on and the close waited for ever)."""
    for _ in range(3):
        await _close_as_woken(sessionmaker)


async def _close_as_woken(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    hub = StreamHub(
        sessionmaker, render_clip=lambda c, _g: c.id.encode(), queue_size=8, max_clients=1
    )
    await hub.start()
    await wait_for(lambda: hub.ready, "the hub's first look")
    # Parked in its wait (no public way to ask): woken and cancelled in one turn.
    await wait_for(lambda: bool(hub._wake._waiters), "the hub to wait")
    task = hub._task
    assert task is not None
    hub.notice(["clips"])
    await asyncio.wait_for(hub.close(), STOP_DEADLINE_S)
    assert task.done(), "the hub runs on after its close"


async def wait_for_answer(http: httpx.AsyncClient, path: str, status: int) -> None:
    until = asyncio.get_running_loop().time() + 20
    while (await http.get(path)).status_code != status:
        assert asyncio.get_running_loop().time() < until, f"{path} never answered {status}"
        await asyncio.sleep(0.02)  # polling the condition above, with a deadline


def _row(clip_id: str) -> dict[str, Any]:
    clip = helix_clip(id=clip_id)
    clip["created_at"] = datetime.fromisoformat(clip["created_at"].replace("Z", "+00:00"))
    clip["video_id"] = None
    return clip


async def _seq_in(session: AsyncSession, clip_id: str) -> int:
    return int((await session.scalars(select(Clip.seq).where(Clip.id == clip_id))).one())


# --- two processes through Redis ------------------------------------------------------------


async def test_with_redis_a_clip_written_by_one_process_reaches_a_client_of_another(
    stream_settings: Settings, engine: AsyncEngine, redis_url: str, redis_prefix: str
) -> None:
    shared = stream_settings.model_copy(
        update={"redis_url": redis_url, "redis_key_prefix": redis_prefix}
    )
    writer_cache = CacheManager(redis_url, prefix=redis_prefix)
    reader_cache = CacheManager(redis_url, prefix=redis_prefix)
    await writer_cache.start()
    await reader_cache.start()
    writer_engine = create_engine(shared)
    attach_cache(writer_engine, writer_cache)
    try:
        async with serve_app(shared, writer_cache), serve_app(shared, reader_cache) as reader:
            await wait_for(reader_cache.feed_is_current, "the reader's Redis feed")
            async with httpx.AsyncClient(base_url=reader.base, timeout=30) as http:
                stream = await open_stream(http, params={"broadcaster": "7001"})
                before = reader.hub.wakeups
                await store_clips(
                    create_sessionmaker(writer_engine),
                    [helix_clip(id="Across", **chan("7001"))],
                )
                await wait_for(lambda: stream.clip_ids() == ["Across"], "the clip across")
                assert reader.hub.wakeups > before
                await stream.close()
    finally:
        await writer_engine.dispose()
        await writer_cache.close()
        await reader_cache.close()


# --- a real `clipwatch serve` stops at once with clients connected -----------------------------


async def test_serve_stops_promptly_with_streams_open(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "CLIPWATCH_DATABASE_URL": database_url,
        "CLIPWATCH_SECRET_KEY": TEST_SECRET,
        "CLIPWATCH_TWITCH_CLIENT_ID": "stream-test",
        "CLIPWATCH_TWITCH_CLIENT_SECRET": "stream-test",
        "CLIPWATCH_LOG_LEVEL": "warning",
    }
    with serving(tmp_path, env, "--no-worker", "--no-access-log") as (base, process):
        # Alive is not ready: streams are refused (503) until the hub's first look.
        wait_until_up(f"{base}/readyz", process, "a ready clipwatch serve")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            streams = [await open_stream(http) for _ in range(3)]
            assert [s.status for s in streams] == [200, 200, 200]
            process.send_signal(signal.SIGTERM)
            code = await asyncio.get_running_loop().run_in_executor(
                None, lambda: process.wait(timeout=STOP_DEADLINE_S)
            )
            assert code == 0
            await wait_for(lambda: all(s.ended for s in streams), "the streams to end")
            for stream in streams:
                assert [e.data["reason"] for e in stream.of("error")] == ["shutdown"]
                assert stream.retries[-1] > 0


async def test_over_http_a_client_that_stops_reading_is_dropped_and_a_reading_one_is_not(
    settings: Settings,
    engine: AsyncEngine,
    cache: CacheManager,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    small = settings.model_copy(update={"sse_queue_size": 8, "sse_heartbeat_seconds": 0.5})
    async with (
        serve_app(small, cache) as served,
        httpx.AsyncClient(base_url=served.base, timeout=30) as http,
    ):
        reading = await open_stream(http)
        loop = asyncio.get_running_loop()
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills sooner
        stalled.setblocking(False)
        host, port = served.base.removeprefix("http://").split(":")
        await loop.sock_connect(stalled, (host, int(port)))
        await loop.sock_sendall(stalled, b"GET /api/v1/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        await wait_for(lambda: len(served.hub.subscribers) == 2, "both clients subscribed")
        dropped_before = SSE_DROPPED.labels("slow")._value.get()
        stored: list[str] = []
        for batch in range(100):  # until the stalled client's socket and queue are full
            if len(served.hub.subscribers) < 2:
                break
            clips = [
                helix_clip(id=f"Flood{batch:03d}-{n:03d}", title="x " * 60) for n in range(200)
            ]
            await store_clips(sessionmaker, clips)
            stored.extend(c["id"] for c in clips)
            total = len(stored)
            await wait_for(lambda n=total: len(reading.clip_ids()) == n, "the reader to follow")
        assert len(served.hub.subscribers) == 1, f"not dropped after {len(stored)} clips"
        assert SSE_DROPPED.labels("slow")._value.get() == dropped_before + 1
        await store_clips(sessionmaker, [helix_clip(id="After")])
        await wait_for(lambda: reading.clip_ids()[-1:] == ["After"], "the reader goes on")
        assert reading.clip_ids() == [*stored, "After"]
        assert not reading.of("error")
        stalled.close()
        await reading.close()


# --- pure parts ---------------------------------------------------------------------------------


@given(st.text(max_size=40) | st.integers(0, 2**70).map(str) | st.sampled_from(["²", "٣", "7 "]))
def test_any_last_event_id_header_is_an_id_or_a_422(header: str) -> None:
    value = header.strip()
    if not value:
        assert _resume_point(header, None) is None
    elif value.isascii() and value.isdigit() and int(value) < 2**63:
        assert _resume_point(header, None) == int(value)
    else:
        with pytest.raises(InvalidInput, match="Last-Event-ID"):
            _resume_point(header, None)


@given(
    xmin=st.integers(1, 1000),
    spread=st.integers(0, 50),
    running=st.sets(st.integers(0, 50)),
    xid=st.integers(0, 1100),
)
def test_a_snapshot_says_which_transactions_ended(
    xmin: int, spread: int, running: set[int], xid: int
) -> None:
    xmax = xmin + spread
    inside = {xmin + r for r in running if xmin + r < xmax}
    text_form = f"{xmin}:{xmax}:{','.join(str(x) for x in sorted(inside))}"
    snapshot = parse_snapshot(text_form)
    assert snapshot.running == frozenset(inside)
    assert snapshot.ended(xid) == (xid < xmin or (xid < xmax and xid not in inside))
