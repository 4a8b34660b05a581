"""Get Streams polling (runtime/live_poll.py, HelixClient.get_streams) against the Twitch
simulator, on both databases: batches of 100, offline only from a complete answer, a failed
or partial answer changing nothing, odd records costing themselves, the worker task."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Channel, ChannelLive, ChannelSync, Stream
from clipwatch.runtime.live_poll import live_poll_forever, poll_live, read_streams
from clipwatch.runtime.supervisor import Supervisor
from clipwatch.twitch.client import HelixClient, TwitchError
from clipwatch.twitch.helix import HelixStream
from clipwatch.twitch.live import went_online
from tests.twitch.conftest import Sim

GRACE = timedelta(seconds=120)
FINAL = timedelta(seconds=180)
DEADLINE_S = 20.0


async def track(
    sessionmaker: async_sessionmaker[AsyncSession], sim: Sim, logins: list[str]
) -> list[str]:
    ids = []
    async with session_scope(sessionmaker) as session:
        for login in logins:
            channel = sim.twitch.add_channel(login)
            session.add(
                Channel(id=channel.id, login=login, display_name=channel.display_name, tracked=True)
            )
            ids.append(channel.id)
    return ids


def go_live(sim: Sim, channel_id: str, started: datetime | None = None) -> None:
    # `live` is what Get Streams reads; the simulator makes up the stream's details.
    sim.twitch.live[channel_id] = (started or datetime.now(UTC)).replace(microsecond=0)


async def rows(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, ChannelLive]:
    async with session_scope(sessionmaker) as session:
        return {r.channel_id: r for r in (await session.scalars(select(ChannelLive))).all()}


async def poll(sim: Sim, sessionmaker: async_sessionmaker[AsyncSession], **kwargs: Any) -> Any:
    client = sim.client(**kwargs)
    try:
        return await poll_live(client, sessionmaker, eventsub_grace=GRACE, final_pass_after=FINAL)
    finally:
        await client.aclose()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def streams_requests(sim: Sim) -> list[str]:
    return [query for path, query in sim.twitch.requests if path == "/helix/streams"]


async def test_a_round_stores_who_is_live_and_who_ended(
    sessionmaker: async_sessionmaker[AsyncSession], sim: Sim
) -> None:
    ids = await track(sessionmaker, sim, ["alpha", "beta", "gamma"])
    go_live(sim, ids[0])
    go_live(sim, ids[1])
    report = await poll(sim, sessionmaker)
    assert (report.channels, report.live, report.online, report.offline) == (3, 2, 2, 0)
    state = await rows(sessionmaker)
    assert state[ids[0]].live
    assert state[ids[1]].live
    assert not state[ids[2]].live  # checked, offline
    assert state[ids[0]].source == "poll"
    assert state[ids[0]].stream_id
    assert state[ids[0]].title
    assert state[ids[0]].started_at == sim.twitch.live[ids[0]]

    del sim.twitch.live[ids[0]]
    report = await poll(sim, sessionmaker)
    assert (report.online, report.offline) == (0, 1)
    state = await rows(sessionmaker)
    assert not state[ids[0]].live
    assert state[ids[1]].live
    async with session_scope(sessionmaker) as session:
        sync_row = await session.get(ChannelSync, ids[0])
        assert sync_row is not None
        assert sync_row.final_pass_at is not None
        ended = (await session.scalars(select(Stream).where(Stream.channel_id == ids[0]))).one()
        assert ended.ended_at is not None


async def test_batches_of_100_one_request_each(
    sessionmaker: async_sessionmaker[AsyncSession], sim: Sim
) -> None:
    ids = await track(sessionmaker, sim, [f"chan{i:03d}" for i in range(230)])
    for channel_id in ids[::7]:
        go_live(sim, channel_id)
    report = await poll(sim, sessionmaker)
    assert report.requests == 3
    queries = streams_requests(sim)
    assert len(queries) == 3  # 1 point per 100 channels
    assert [q.count("user_id=") for q in queries] == [100, 100, 30]
    assert all("first=100" in q for q in queries)
    state = await rows(sessionmaker)
    assert {c for c, r in state.items() if r.live} == set(ids[::7])
    assert len(state) == 230


async def test_a_failed_answer_changes_nothing(
    sessionmaker: async_sessionmaker[AsyncSession], sim: Sim
) -> None:
    ids = await track(sessionmaker, sim, ["alpha", "beta"])
    go_live(sim, ids[0])
    await poll(sim, sessionmaker)
    del sim.twitch.live[ids[0]]
    sim.twitch.add_fault("5xx", count=5)
    report = await poll(sim, sessionmaker, max_attempts=2)
    assert report.failed_batches == 1
    assert report.last_error
    assert (await rows(sessionmaker))[ids[0]].live  # not taken for offline
    sim.twitch.faults.clear()
    report = await poll(sim, sessionmaker)
    assert report.offline == 1


async def test_a_partial_answer_changes_nothing(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Page one answered, page two failed: the batch is unknown this round."""
    async with session_scope(sessionmaker) as session:
        for i in range(3):
            session.add(Channel(id=f"90{i}", login=f"p{i}", display_name=f"P{i}", tracked=True))
    await went_online(
        sessionmaker, "902", stream_id="s", started_at=None, stream_type="live", source="poll"
    )

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        if request.url.params.get("after"):
            return httpx.Response(503, json={"error": "Service Unavailable", "status": 503})
        stream = {"id": "s0", "user_id": "900", "title": "x", "started_at": "2026-11-27T01:00:00Z"}
        return httpx.Response(200, json={"data": [stream], "pagination": {"cursor": "next"}})

    client = HelixClient(
        client_id="c",
        client_secret="s",
        api_url="http://twitch.test/helix",
        auth_url="http://twitch.test/oauth2",
        max_attempts=2,
        http=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
    )
    try:
        with pytest.raises(TwitchError):
            await client.get_streams(["900", "901", "902"])
        report = await poll_live(client, sessionmaker, eventsub_grace=GRACE, final_pass_after=FINAL)
    finally:
        await client.aclose()
    assert report.failed_batches == 1
    state = await rows(sessionmaker)
    assert "900" not in state  # page one's live channel was not stored either
    assert state["902"].live  # and the live one not taken for offline


async def test_odd_records_cost_themselves(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with session_scope(sessionmaker) as session:
        for i in range(4):
            session.add(Channel(id=f"80{i}", login=f"o{i}", display_name=f"O{i}", tracked=True))
    for channel_id in ("802", "803"):
        await went_online(
            sessionmaker,
            channel_id,
            stream_id=f"old{channel_id}",
            started_at=None,
            stream_type="live",
            source="poll",
            at=datetime.now(UTC) - timedelta(hours=1),
        )
    data: list[Any] = [
        {
            "user_id": "800",
            "viewer_count": "many",
            "title": 42,
            "started_at": "yesterday",
            "type": None,
        },
        {"user_id": "801", "id": "s801", "title": "ok\x00\n", "viewer_count": 5, "extra": {"x": 1}},
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx.Response(200, json={"data": data, "pagination": {}})

    client = HelixClient(
        client_id="c",
        client_secret="s",
        api_url="http://twitch.test/helix",
        auth_url="http://twitch.test/oauth2",
        http=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
    )
    try:
        report = await poll_live(client, sessionmaker, eventsub_grace=GRACE, final_pass_after=FINAL)
        state = await rows(sessionmaker)
        assert state["800"].live  # odd details, still live
        assert state["800"].viewer_count == 0
        assert (state["801"].live, state["801"].title, state["801"].viewer_count) == (True, "ok", 5)
        assert not state["802"].live
        assert not state["803"].live
        assert report.offline == 2
        # A record naming no channel: whose was it? No absence is believed this round.
        data[:] = [{"user_id": None, "id": "x"}, "not an object"]
        report = await poll_live(client, sessionmaker, eventsub_grace=GRACE, final_pass_after=FINAL)
    finally:
        await client.aclose()
    assert (report.bad_records, report.unsure, report.offline) == (2, 4, 0)
    state = await rows(sessionmaker)
    assert state["800"].live
    assert state["801"].live


async def test_a_poll_does_not_undo_a_young_event(
    sessionmaker: async_sessionmaker[AsyncSession], sim: Sim
) -> None:
    [channel_id] = await track(sessionmaker, sim, ["alpha"])
    # stream.online arrived; Get Streams does not list the stream yet.
    assert await went_online(
        sessionmaker,
        channel_id,
        stream_id="e1",
        started_at=datetime.now(UTC),
        stream_type="live",
        source="eventsub",
    )
    report = await poll(sim, sessionmaker)
    assert report.offline == 0
    assert (await rows(sessionmaker))[channel_id].live


@given(
    asked=st.lists(
        st.sampled_from([str(i) for i in range(10)]), min_size=1, max_size=10, unique=True
    ),
    records=st.lists(
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=5),
            st.dictionaries(
                st.sampled_from(["user_id", "id", "title", "viewer_count", "started_at", "type"]),
                st.one_of(
                    st.none(),
                    st.integers(),
                    st.text(max_size=8),
                    st.sampled_from([str(i) for i in range(12)]),
                ),
            ),
        ),
        max_size=12,
    ),
)
def test_read_streams_never_raises_and_never_guesses(asked: list[str], records: list[Any]) -> None:
    answer, bad = read_streams(asked, records)
    assert set(answer.seen) <= set(asked)
    assert bad <= len(records)
    named = {r.get("user_id") for r in records if isinstance(r, dict)}
    if answer.unsure:
        assert bad > 0
    # A channel is live only if a record named it.
    assert all(channel_id in {str(n) for n in named} for channel_id in answer.seen)


async def test_one_poller_holds_the_lease_and_another_takes_over_when_it_stops(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], sim: Sim
) -> None:
    [channel_id] = await track(sessionmaker, sim, ["alpha"])
    fast = settings.model_copy(update={"live_poll_seconds": 0.2})
    stops = [asyncio.Event(), asyncio.Event()]
    supervisor = Supervisor("test-worker")
    clients = [sim.client(), sim.client()]

    async def body(n: int) -> Any:
        owner = f"p{n}"  # two processes' pollers, as two owners of the lease
        return await live_poll_forever(
            fast, clients[n], sessionmaker, stops[n], supervisor.task(owner), owner=owner
        )

    async def until_live(wanted: bool) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while (await rows(sessionmaker)).get(channel_id, ChannelLive(live=False)).live != wanted:
            assert time.monotonic() < deadline, f"the poll never saw live={wanted}"
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(body(n)) for n in range(2)]
    try:
        go_live(sim, channel_id)
        await until_live(True)
        await asyncio.sleep(0.5)  # a few more rounds: still one poller
        asking = [c.stats.requests > 0 for c in clients]
        assert sorted(asking) == [False, True]
        holder = asking.index(True)
        other = 1 - holder
        assert supervisor.task(f"p{holder}").detail.get("leader") is True
        # The holder stops (and gives the lease up): the other polls from then on.
        stops[holder].set()
        await tasks[holder]
        del sim.twitch.live[channel_id]
        await until_live(False)
        assert clients[other].stats.requests > 0
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
        for c in clients:
            await c.aclose()


async def test_a_channel_going_live_shows_in_the_api_within_2_s_by_polling_alone(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    sim: Sim,
    client: httpx.AsyncClient,
) -> None:
    """The poll side of "stream.online → live in the API within 2 s and its cadence changes;
    stream.offline → back to offline, with the final pass" (no EventSub at all here)."""
    [channel_id] = await track(sessionmaker, sim, ["alpha"])
    fast = settings.model_copy(update={"live_poll_seconds": 0.25, "stream_end_pass_seconds": 180})
    polls_before = metric("clipwatch_streams_polls_total", outcome="ok")
    onlines_before = metric("clipwatch_live_changes_total", change="online", source="poll")
    offlines_before = metric("clipwatch_live_changes_total", change="offline", source="poll")
    stop = asyncio.Event()
    twitch = sim.client()
    task = asyncio.create_task(
        live_poll_forever(fast, twitch, sessionmaker, stop, Supervisor("t").task("live_poll"))
    )

    async def live_in_api() -> Any:
        answer = await client.get("/api/v1/channels/alpha")
        assert answer.status_code == 200
        return answer.json()["live"]

    async def until(wanted: bool, since: float) -> float:
        while (await live_in_api() is not None) is not wanted:
            assert time.monotonic() - since < 2.0, f"not {'live' if wanted else 'offline'} in 2 s"
            await asyncio.sleep(0.02)
        return time.monotonic() - since

    try:
        deadline = time.monotonic() + DEADLINE_S
        while channel_id not in await rows(sessionmaker):  # the first round ran
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert await live_in_api() is None  # and that answer is cached now
        began = time.monotonic()
        sim.twitch.go_live(channel_id, title="Speedrun", viewer_count=42)
        took_online = await until(True, began)
        assert metric("clipwatch_live_changes_total", change="online", source="poll") == (
            onlines_before + 1
        )
        live = await live_in_api()
        assert (live["title"], live["viewer_count"], live["source"]) == ("Speedrun", 42, "poll")
        async with session_scope(sessionmaker) as session:
            state = await session.get(ChannelSync, channel_id)
            assert state is not None
            assert state.next_sync_at is not None  # its recent clips are due at once
            assert state.next_sync_at <= datetime.now(UTC)

        began = time.monotonic()
        sim.twitch.go_offline(channel_id)
        took_offline = await until(False, began)
        ended = (await rows(sessionmaker))[channel_id].ended_at
        assert ended is not None
        async with session_scope(sessionmaker) as session:
            state = await session.get(ChannelSync, channel_id)
            assert state is not None
            assert state.final_pass_at == ended + timedelta(seconds=180)
        assert metric("clipwatch_live_changes_total", change="offline", source="poll") == (
            offlines_before + 1
        )
        assert metric("clipwatch_streams_polls_total", outcome="ok") > polls_before
        deadline = time.monotonic() + DEADLINE_S
        while metric("clipwatch_channels_live") != 0:  # set at the end of each round
            assert time.monotonic() < deadline, "clipwatch_channels_live stayed above 0"
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task
        await twitch.aclose()
    print(
        f"poll 0.25 s: live in the API after {took_online:.2f} s, "
        f"offline after {took_offline:.2f} s"
    )


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=700),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(), inner)),
    max_leaves=5,
)


@given(
    st.fixed_dictionaries(
        {"user_id": st.one_of(st.from_regex(r"[0-9]{1,12}", fullmatch=True), json_values)},
        optional={
            name: json_values
            for name in (
                "id",
                "user_login",
                "game_id",
                "game_name",
                "type",
                "title",
                "viewer_count",
                "started_at",
                "language",
                "tags",
                "is_mature",
            )
        },
    )
)
def test_a_stream_record_of_any_shape_is_read_or_refused_alone(record: dict[str, Any]) -> None:
    try:
        stream = HelixStream.model_validate(record)
    except ValidationError:
        return  # only a record naming no usable channel is refused
    assert stream.user_id == str(record["user_id"])
    assert 0 <= stream.viewer_count < 2**31
    assert len(stream.title) <= 500
    assert len(stream.type) <= 16
    assert len(stream.language) <= 16
    for text in (stream.title, stream.game_name, stream.type, stream.language):
        assert "\x00" not in text
    assert stream.started_at is None or stream.started_at.tzinfo is not None


async def test_get_streams_follows_pages_and_stops_on_a_repeated_cursor() -> None:
    asked: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        after = request.url.params.get("after")
        asked.append(after)
        cursor = {None: "p2", "p2": "p3", "p3": "p3"}[after]
        return httpx.Response(
            200, json={"data": [{"user_id": after or "1"}], "pagination": {"cursor": cursor}}
        )

    client = HelixClient(
        client_id="c",
        client_secret="s",
        api_url="http://twitch.test/helix",
        auth_url="http://twitch.test/oauth2",
        http=httpx.AsyncClient(transport=httpx.MockTransport(answer)),
    )
    try:
        streams = await client.get_streams(["1", "p2", "p3"])
        with pytest.raises(ValueError, match="100"):
            await client.get_streams([str(i) for i in range(101)])
        assert await client.get_streams([]) == []
    finally:
        await client.aclose()
    assert asked == [None, "p2", "p3"]
    assert [s["user_id"] for s in streams] == ["1", "p2", "p3"]
