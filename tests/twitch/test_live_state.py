"""twitch/live.py over db/repositories/live_state.py, on both databases: the stored live
state, stream history, how poll and EventSub agree, cadence marks, notices and cache bumps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.cache.manager import CacheManager
from clipwatch.db.engine import session_scope
from clipwatch.db.models import (
    Channel,
    ChannelLive,
    ChannelSync,
    Delivery,
    NotificationRoute,
    Stream,
)
from clipwatch.twitch.live import channel_updated, went_offline, went_online

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CH = "4001"


async def add_channel(
    sessionmaker: async_sessionmaker[AsyncSession],
    channel_id: str = CH,
    login: str = "alpha",
    *,
    tracked: bool = True,
) -> None:
    async with session_scope(sessionmaker) as session:
        session.add(
            Channel(id=channel_id, login=login, display_name=login.title(), tracked=tracked)
        )


async def add_route(
    sessionmaker: async_sessionmaker[AsyncSession], name: str, **values: Any
) -> int:
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, f"owner-{name}")
        route = NotificationRoute(
            user_id=user.id,
            name=name,
            webhook_id="123456789012345678",
            webhook_token_sealed="sealed",
            filters=values.pop("filters", {}),
            template={"name": "card"},
            delay_seconds=0,
            batching=True,
            enabled=values.pop("enabled", True),
            **values,
        )
        session.add(route)
        await session.flush()
        return route.id


async def live_row(sessionmaker: async_sessionmaker[AsyncSession], channel_id: str = CH) -> Any:
    async with session_scope(sessionmaker) as session:
        return await session.get(ChannelLive, channel_id)


async def streams(
    sessionmaker: async_sessionmaker[AsyncSession], channel_id: str = CH
) -> list[Stream]:
    async with session_scope(sessionmaker) as session:
        stmt = select(Stream).where(Stream.channel_id == channel_id).order_by(Stream.started_at)
        return list((await session.scalars(stmt)).all())


async def sync_row(sessionmaker: async_sessionmaker[AsyncSession], channel_id: str = CH) -> Any:
    async with session_scope(sessionmaker) as session:
        return await session.get(ChannelSync, channel_id)


async def outbox(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Delivery]:
    async with session_scope(sessionmaker) as session:
        return list((await session.scalars(select(Delivery).order_by(Delivery.id))).all())


def online(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "stream_id": "s1",
        "started_at": T0,
        "stream_type": "live",
        "source": "eventsub",
        "at": T0 + timedelta(seconds=5),
    }
    values.update(changes)
    return values


async def test_online_then_offline_stores_state_history_and_cadence(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_channel(sessionmaker)
    before = datetime.now(UTC)
    assert await went_online(
        sessionmaker, CH, **online(title="Speedrun", game_id="33", game_name="Doom", viewer_count=7)
    )
    live = await live_row(sessionmaker)
    assert live.live is True
    assert (live.stream_id, live.started_at, live.title, live.game_name) == (
        "s1",
        T0,
        "Speedrun",
        "Doom",
    )
    assert (live.viewer_count, live.stream_type, live.source) == (7, "live", "eventsub")
    assert live.changed_at == T0 + timedelta(seconds=5)
    state = await sync_row(sessionmaker)
    assert state.next_sync_at >= before - timedelta(seconds=1)  # due at once
    assert state.final_pass_at is None
    [stream] = await streams(sessionmaker)
    assert (stream.twitch_stream_id, stream.started_at, stream.ended_at) == ("s1", T0, None)
    assert (stream.title, stream.game_id, stream.peak_viewers) == ("Speedrun", "33", 7)

    end = T0 + timedelta(hours=2)
    assert await went_offline(
        sessionmaker, CH, source="eventsub", at=end, final_pass_after=timedelta(seconds=180)
    )
    live = await live_row(sessionmaker)
    assert (live.live, live.ended_at, live.viewer_count) == (False, end, None)
    assert live.title == "Speedrun"  # the channel's last title stays known
    [stream] = await streams(sessionmaker)
    assert stream.ended_at == end
    state = await sync_row(sessionmaker)
    assert state.final_pass_at == end + timedelta(seconds=180)
    assert state.next_sync_at >= before - timedelta(seconds=1)
    # Offline again: nothing changes.
    assert not await went_offline(
        sessionmaker, CH, source="eventsub", at=end + timedelta(seconds=1)
    )


async def test_untracked_and_unknown_channels_are_ignored(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_channel(sessionmaker, "4002", "beta", tracked=False)
    for channel_id in ("4002", "no-such"):
        assert not await went_online(sessionmaker, channel_id, **online())
        assert not await went_offline(sessionmaker, channel_id, source="poll")
        assert not await channel_updated(sessionmaker, channel_id, source="eventsub", title="x")
        assert await live_row(sessionmaker, channel_id) is None
        assert await streams(sessionmaker, channel_id) == []


async def test_repeated_online_is_one_stream_and_one_notice(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_channel(sessionmaker)
    wanted = await add_route(sessionmaker, "wants", notify_live=True, notify_stream_end=True)
    await add_route(sessionmaker, "other-channel", notify_live=True, filters={"channels": ["zeta"]})
    by_login = await add_route(
        sessionmaker, "by-login", notify_live=True, filters={"channels": ["alpha"]}
    )
    await add_route(sessionmaker, "silent")  # notify_live off
    await add_route(sessionmaker, "disabled", notify_live=True, enabled=False)

    assert await went_online(sessionmaker, CH, **online())
    # The same stream again, from either source: no new stream, no new notice.
    assert not await went_online(sessionmaker, CH, **online())
    assert not await went_online(sessionmaker, CH, **online(source="poll"))
    rows = await outbox(sessionmaker)
    assert sorted((d.route_id, d.kind, d.clip_id) for d in rows) == sorted(
        [(wanted, "live", "live:s1"), (by_login, "live", "live:s1")]
    )
    assert len(await streams(sessionmaker)) == 1

    end = T0 + timedelta(hours=1)
    assert await went_offline(
        sessionmaker, CH, source="eventsub", at=end, final_pass_after=timedelta(seconds=180)
    )
    ends = [d for d in await outbox(sessionmaker) if d.kind == "stream_end"]
    assert [(d.route_id, d.clip_id) for d in ends] == [(wanted, "end:s1")]
    # After the final pass, with a margin: the clips of the stream's end are stored by then.
    assert ends[0].next_attempt_at > end + timedelta(seconds=180)
    assert ends[0].payload is not None
    assert ends[0].payload["channel_id"] == CH

    # The same stream seen live again (an offline that was not): one row, no new notice.
    assert await went_online(sessionmaker, CH, **online(at=end + timedelta(seconds=30)))
    [stream] = await streams(sessionmaker)
    assert stream.ended_at is None
    assert len([d for d in await outbox(sessionmaker) if d.kind == "live"]) == 2


async def test_poll_refreshes_viewers_title_game_and_keeps_peak(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_channel(sessionmaker)
    assert await went_online(sessionmaker, CH, **online(viewer_count=10))
    at = T0 + timedelta(minutes=1)
    for viewers, title in ((50, "a"), (30, "b")):
        at += timedelta(minutes=1)
        assert await went_online(
            sessionmaker,
            CH,
            **online(
                source="poll",
                at=at,
                viewer_count=viewers,
                title=title,
                game_id="9",
                game_name="Chess",
            ),
        )
    live = await live_row(sessionmaker)
    assert (live.viewer_count, live.title, live.game_id, live.game_name) == (30, "b", "9", "Chess")
    assert live.checked_at == at
    assert live.changed_at == T0 + timedelta(seconds=5)  # still the time it went live
    [stream] = await streams(sessionmaker)
    assert (stream.peak_viewers, stream.title, stream.game_name) == (50, "b", "Chess")
    # A poll that only confirms: checked_at moves, nothing "changed".
    assert not await went_online(
        sessionmaker, CH, **online(source="poll", at=at + timedelta(minutes=1), viewer_count=30)
    )
    assert (await live_row(sessionmaker)).checked_at == at + timedelta(minutes=1)


async def test_poll_contradicting_a_young_eventsub_change_is_ignored(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_channel(sessionmaker)
    went = T0 + timedelta(seconds=5)
    assert await went_online(sessionmaker, CH, **online(at=went))
    grace = timedelta(seconds=120)
    # Get Streams does not show the stream yet: ignored while the event is young.
    assert not await went_offline(
        sessionmaker, CH, source="poll", at=went + timedelta(seconds=30), eventsub_grace=grace
    )
    assert (await live_row(sessionmaker)).live is True
    # Later, a poll that still does not see it wins.
    assert await went_offline(
        sessionmaker,
        CH,
        source="poll",
        at=went + grace + timedelta(seconds=1),
        eventsub_grace=grace,
    )
    assert (await live_row(sessionmaker)).live is False

    # stream.offline, then a poll that still shows the ended stream: ignored.
    assert await went_online(
        sessionmaker,
        CH,
        **online(stream_id="s2", started_at=T0 + timedelta(hours=1), at=T0 + timedelta(hours=1)),
    )
    off = T0 + timedelta(hours=2)
    assert await went_offline(sessionmaker, CH, source="eventsub", at=off)
    assert not await went_online(
        sessionmaker,
        CH,
        **online(
            stream_id="s2",
            started_at=T0 + timedelta(hours=1),
            source="poll",
            at=off + timedelta(seconds=20),
        ),
    )
    assert (await live_row(sessionmaker)).live is False
    # A poll showing a new stream after that is believed.
    assert await went_online(
        sessionmaker,
        CH,
        **online(
            stream_id="s3",
            started_at=off + timedelta(seconds=10),
            source="poll",
            at=off + timedelta(seconds=40),
        ),
    )
    live = await live_row(sessionmaker)
    assert (live.live, live.stream_id, live.source) == (True, "s3", "poll")


async def test_a_poll_keeps_the_type_stream_online_gave(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_channel(sessionmaker)
    assert await went_online(sessionmaker, CH, **online(stream_type="rerun"))
    assert await went_online(
        sessionmaker, CH, **online(stream_type="live", source="poll", viewer_count=3)
    )
    live = await live_row(sessionmaker)
    assert (live.stream_type, live.viewer_count) == ("rerun", 3)


async def test_a_channel_update_is_no_event_a_poll_must_wait_for(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """channel.update made the channel's row; a poll seeing it live (even naming no stream)
    right after is believed: nothing ended."""
    await add_channel(sessionmaker)
    assert await channel_updated(sessionmaker, CH, source="eventsub", title="Soon", at=T0)
    assert await went_online(
        sessionmaker, CH, **online(stream_id=None, source="poll", at=T0 + timedelta(seconds=10))
    )
    assert (await live_row(sessionmaker)).live is True


async def test_another_stream_id_closes_the_old_stream_and_a_stale_one_is_ignored(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_channel(sessionmaker)
    await add_route(sessionmaker, "both", notify_live=True, notify_stream_end=True)
    assert await went_online(
        sessionmaker, CH, **online(stream_id="s1", started_at=T0, source="poll", at=T0)
    )
    later = T0 + timedelta(hours=3)
    assert await went_online(
        sessionmaker,
        CH,
        **online(stream_id="s2", started_at=later, source="poll", at=later + timedelta(minutes=1)),
    )
    first, second = await streams(sessionmaker)
    assert (first.twitch_stream_id, first.ended_at) == ("s1", later)
    assert (second.twitch_stream_id, second.ended_at) == ("s2", None)
    assert (await sync_row(sessionmaker)).final_pass_at == later + timedelta(seconds=180)
    kinds = sorted((d.kind, d.clip_id) for d in await outbox(sessionmaker))
    assert kinds == [("live", "live:s1"), ("live", "live:s2"), ("stream_end", "end:s1")]
    # A stale answer naming the older stream changes nothing.
    assert not await went_online(
        sessionmaker,
        CH,
        **online(stream_id="s1", started_at=T0, source="poll", at=later + timedelta(minutes=2)),
    )
    assert (await live_row(sessionmaker)).stream_id == "s2"
    assert len(await streams(sessionmaker)) == 2


async def test_a_poll_with_an_earlier_start_keeps_one_stream_row(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_channel(sessionmaker)
    assert await went_online(sessionmaker, CH, **online(started_at=T0 + timedelta(seconds=2)))
    # Get Streams reports the same stream a second earlier.
    assert not await went_online(
        sessionmaker, CH, **online(started_at=T0, source="poll", at=T0 + timedelta(minutes=1))
    )
    [stream] = await streams(sessionmaker)
    assert stream.started_at == T0 + timedelta(seconds=2)  # the first source's start stays
    # And an online without a stream id (started_at only) is the same stream too.
    assert not await went_online(
        sessionmaker, CH, **online(stream_id=None, started_at=T0, source="poll")
    )
    assert len(await streams(sessionmaker)) == 1


async def test_channel_update_live_and_offline(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_channel(sessionmaker)
    # Offline: kept for the next stream (stream.online names no title).
    assert await channel_updated(
        sessionmaker,
        CH,
        source="eventsub",
        title="Soon",
        game_id="5",
        game_name="Go",
        language="de",
    )
    assert not await channel_updated(sessionmaker, CH, source="eventsub", title="Soon")
    assert await went_online(sessionmaker, CH, **online())
    [stream] = await streams(sessionmaker)
    assert (stream.title, stream.game_id, stream.game_name) == ("Soon", "5", "Go")
    live = await live_row(sessionmaker)
    assert (live.title, live.language) == ("Soon", "de")
    # Live: the open stream follows; "" category is none.
    assert await channel_updated(
        sessionmaker, CH, source="eventsub", title="Now", game_id="", game_name=""
    )
    live = await live_row(sessionmaker)
    assert (live.title, live.game_id, live.game_name) == ("Now", None, None)
    [stream] = await streams(sessionmaker)
    assert (stream.title, stream.game_id) == ("Now", None)


async def test_changes_bump_the_channel_and_live_generations(
    sessionmaker: async_sessionmaker[AsyncSession], cache: CacheManager
) -> None:
    await add_channel(sessionmaker)
    deps = {f"ch:{CH}", "live"}

    def generations() -> dict[str, int]:
        return {d: cache.gens.get(d, 0) for d in deps}

    before = generations()
    assert await went_online(sessionmaker, CH, **online())
    after_online = generations()
    assert all(after_online[d] != before[d] for d in deps)
    # Nothing changed: nothing outdated.
    assert not await went_online(sessionmaker, CH, **online())
    assert generations() == after_online
    assert await went_offline(sessionmaker, CH, source="eventsub", at=T0 + timedelta(hours=1))
    after_offline = generations()
    assert all(after_offline[d] != after_online[d] for d in deps)


async def test_two_sources_at_once_make_one_stream(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_channel(sessionmaker)
    await add_route(sessionmaker, "notices", notify_live=True)
    results = await asyncio.gather(
        *(
            went_online(sessionmaker, CH, **online(source=source, viewer_count=n))
            for n, source in enumerate(["poll", "eventsub"] * 4)
        )
    )
    assert sum(results) >= 1
    assert len(await streams(sessionmaker)) == 1
    assert len(await outbox(sessionmaker)) == 1
    assert (await live_row(sessionmaker)).live is True


async def test_unknown_source_is_a_bug(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(ValueError, match="source"):
        await went_online(sessionmaker, CH, **online(source="guess"))


odd_text = st.one_of(
    st.none(), st.integers(), st.text(max_size=600), st.just("\x00\ud800bad\n"), st.lists(st.text())
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    stream_id=st.one_of(st.none(), st.text(max_size=80), st.integers()),
    title=odd_text,
    game_id=odd_text,
    game_name=odd_text,
    viewers=st.one_of(st.none(), st.integers(), st.booleans(), st.floats(), st.text(max_size=5)),
    language=odd_text,
    stream_type=odd_text,
)
async def test_odd_facts_are_stored_clean_or_dropped(
    sessionmaker: async_sessionmaker[AsyncSession],
    stream_id: Any,
    title: Any,
    game_id: Any,
    game_name: Any,
    viewers: Any,
    language: Any,
    stream_type: Any,
) -> None:
    async with session_scope(sessionmaker) as session:
        if await session.get(Channel, CH) is None:
            session.add(Channel(id=CH, login="alpha", display_name="Alpha", tracked=True))
    assert await went_online(
        sessionmaker,
        CH,
        stream_id=stream_id,
        started_at=T0,
        stream_type=stream_type,
        source="eventsub",
        title=title,
        game_id=game_id,
        game_name=game_name,
        viewer_count=viewers,
        language=language,
        at=T0,
    ) in (True, False)
    live = await live_row(sessionmaker)
    assert live.live is True
    for text, limit in ((live.title, 500), (live.game_name, 256), (live.language, 16)):
        assert text is None or (len(text) <= limit and "\x00" not in text)
    assert live.viewer_count is None or 0 <= live.viewer_count < 2**31
    assert await went_offline(sessionmaker, CH, source="eventsub", at=T0 + timedelta(hours=1))
