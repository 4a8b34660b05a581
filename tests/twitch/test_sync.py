"""The synchronizer against the simulator, on both databases: complete, resumable, exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.models import ChannelSync, Clip
from clipwatch.twitch import sync
from clipwatch.twitch.client import TwitchError
from clipwatch.twitch.simulator import SimChannel
from tests.twitch.conftest import Sim


async def stored(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Clip]:
    async with session_scope(sessionmaker) as session:
        return {c.id: c for c in (await session.scalars(select(Clip))).all()}


async def track(sim: Sim, sessionmaker: async_sessionmaker[AsyncSession], *logins: str) -> None:
    async with sim.client() as client:
        added, unknown = await sync.add_channels(client, sessionmaker, list(logins))
    assert sorted(added) == sorted(logins)
    assert unknown == []


def truth(sim: Sim, channel: SimChannel) -> set[str]:
    return {c.id for c in sim.twitch.visible_clips(channel.id)}


async def test_backfill_of_25000_clips_with_crowded_days_is_complete(
    sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    channel = sim.twitch.add_channel("bigstreamer", clips=25_000, hot_days=6)
    await track(sim, sessionmaker, "bigstreamer")
    async with sim.client() as client:
        report = await sync.sync_all(client, sessionmaker, backfill=True)
    assert set(await stored(sessionmaker)) == truth(sim, channel)
    assert len(truth(sim, channel)) == 25_000
    assert report.splits >= 6  # every crowded day needed smaller windows

    # A second run reads nothing new and re-reads no backfill window.
    before = len(sim.twitch.requests)
    async with sim.client() as client:
        again = await sync.sync_all(client, sessionmaker, backfill=True)
    assert again.inserted == 0
    assert again.windows <= 2  # the incremental pass over the last hours only
    assert len(sim.twitch.requests) - before < 10


async def test_incremental_finds_new_clips_and_refresh_follows_views_and_deletions(
    sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    channel = sim.twitch.add_channel("regular", clips=300, years=0.5)
    recent = [
        sim.twitch.add_clip(channel.id, created_at=now - timedelta(hours=h), visible_at=now)
        for h in (3, 5)
    ]
    await track(sim, sessionmaker, "regular")
    async with sim.client() as client:
        await sync.sync_all(client, sessionmaker, backfill=True)
    assert set(await stored(sessionmaker)) == truth(sim, channel)

    # A clip created during the run (visible now, back-dated by a few minutes), a view
    # count that grew, and a deleted clip.
    fresh = sim.twitch.add_clip(
        channel.id, created_at=datetime.now(UTC) - timedelta(minutes=20), visible_at=now
    )
    recent[0].view_count += 12_345
    sim.twitch.delete_clip(recent[1].id)
    async with sim.client() as client:
        report = await sync.sync_all(client, sessionmaker, deletion_wait=timedelta(0))
    clips = await stored(sessionmaker)
    assert fresh.id in clips
    assert report.inserted == 1
    assert clips[recent[0].id].view_count == recent[0].view_count
    # Missing once, and once alone: a suspect. The second lookup alone marks it deleted.
    assert clips[recent[1].id].deleted_at is None
    assert report.deleted == 0
    async with sim.client() as client:
        report = await sync.sync_all(client, sessionmaker, deletion_wait=timedelta(0))
    clips = await stored(sessionmaker)
    assert clips[recent[1].id].deleted_at is not None
    live = {i for i, c in clips.items() if c.deleted_at is None}
    assert live == truth(sim, channel)
    assert report.deleted == 1


async def test_a_clip_is_marked_deleted_only_when_twitch_confirms_it(
    sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    channel = sim.twitch.add_channel("flaky", clips=0)
    clip = sim.twitch.add_clip(
        channel.id, created_at=datetime.now(UTC) - timedelta(hours=1), visible_at=datetime.now(UTC)
    )
    await track(sim, sessionmaker, "flaky")
    async with sim.client() as client:
        await sync.sync_all(client, sessionmaker)
    # The lookup by id fails for good: nothing may be marked deleted.
    sim.twitch.add_fault("5xx", count=100)
    async with sim.client(max_attempts=2) as client:
        with pytest.raises(TwitchError):
            await sync.refresh_channel(client, sessionmaker, channel.id, sync.SyncReport())
    assert (await stored(sessionmaker))[clip.id].deleted_at is None


async def test_a_failed_backfill_resumes_without_rereading_finished_windows(
    sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    channel = sim.twitch.add_channel("resumable", clips=6_000, hot_days=2)
    await track(sim, sessionmaker, "resumable")
    # Let the backfill get going, then fail every request until it gives up.
    async with sim.client(max_attempts=2) as client:
        await client.start()
        windows_before_failure = 0

        def fail_after_a_while(_channel: str, *_rest: object) -> None:
            nonlocal windows_before_failure
            windows_before_failure += 1
            if windows_before_failure == 40:
                sim.twitch.add_fault("5xx", count=10)

        with pytest.raises(TwitchError):
            await sync.backfill_channel(
                client, sessionmaker, channel.id, sync.SyncReport(), progress=fail_after_a_while
            )
    async with session_scope(sessionmaker) as session:
        state = await session.get(ChannelSync, channel.id)
        assert state is not None
        assert state.backfill_done_until is not None
        assert state.backfill_completed_at is None
        done_until = state.backfill_done_until
    partial = set(await stored(sessionmaker))
    assert 0 < len(partial) < len(truth(sim, channel))
    sim.twitch.faults.clear()  # Twitch is back

    first_new_request = len(sim.twitch.requests)
    async with sim.client() as client:
        await sync.backfill_channel(client, sessionmaker, channel.id, sync.SyncReport())
    assert set(await stored(sessionmaker)) == truth(sim, channel)
    for path, query in sim.twitch.requests[first_new_request:]:
        if path == "/helix/clips" and "started_at=" in query:
            started = query.split("started_at=")[1].split("&")[0].replace("%3A", ":")
            assert datetime.fromisoformat(started) >= done_until, query


async def test_a_stuck_cursor_splits_the_window_and_loses_nothing(
    sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    channel = sim.twitch.add_channel("stuck", clips=800, years=0.01)  # ~200 a day: 3 pages
    await track(sim, sessionmaker, "stuck")
    sim.twitch.add_fault("repeat_cursor", count=3)
    async with sim.client() as client:
        report = await sync.sync_all(client, sessionmaker, backfill=True)
    assert report.splits >= 1
    assert set(await stored(sessionmaker)) == truth(sim, channel)


async def test_two_workers_never_sync_one_channel_at_once(
    sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    import asyncio

    for login in ("one", "two", "three"):
        sim.twitch.add_channel(login, clips=200, years=0.2)
    await track(sim, sessionmaker, "one", "two", "three")
    async with sim.client() as a, sim.client() as b:
        first, second = await asyncio.gather(
            sync.sync_all(a, sessionmaker, backfill=True, owner="worker-a"),
            sync.sync_all(b, sessionmaker, backfill=True, owner="worker-b"),
        )
    # Both took part, and no channel was in the hands of both at the same moment.
    assert first.steps
    assert second.steps
    for mine in first.steps:
        for theirs in second.steps:
            if mine[0] == theirs[0]:
                assert mine[3] <= theirs[2] or theirs[3] <= mine[2], (mine, theirs)
    assert len(await stored(sessionmaker)) == sum(
        len(truth(sim, c)) for c in sim.twitch.channels.values()
    )


async def test_game_names_are_resolved(
    sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    sim.twitch.add_channel("gamer", clips=50, years=0.1)
    await track(sim, sessionmaker, "gamer")
    async with sim.client() as client:
        await sync.sync_all(client, sessionmaker, backfill=True)
    from clipwatch.db.models import Game

    async with session_scope(sessionmaker) as session:
        games = (await session.scalars(select(Game))).all()
    names = {g.id: g.name for g in sim.twitch.world.games}
    assert games
    assert all(g.name == names[g.id] for g in games)


async def test_a_new_game_is_named_in_the_transaction_that_stores_its_clip(
    sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A fresh clip goes to the Discord outbox as it is stored: its game must have a name by
    then. Older clips' games wait for the pass-end naming (a request per 100 games)."""
    from clipwatch.db.models import Game

    now = datetime.now(UTC)
    channel = sim.twitch.add_channel("newgame", clips=20, years=0.05)
    fresh = [
        sim.twitch.add_clip(channel.id, created_at=now - timedelta(hours=h), visible_at=now)
        for h in (1, 2, 3)
    ]
    await track(sim, sessionmaker, "newgame")
    report = sync.SyncReport()
    async with sim.client() as client:
        # One walk only, without the pass-end naming that sync_all does.
        await sync.walk_windows(
            client, sessionmaker, channel.id, now - timedelta(days=30), now, report
        )
    async with session_scope(sessionmaker) as session:
        games = {g.id: g.name for g in (await session.scalars(select(Game))).all()}
    names = {g.id: g.name for g in sim.twitch.world.games}
    assert report.inserted == 23
    fresh_games = {c.game_id for c in fresh}
    assert all(games[g] == names[g] for g in fresh_games)
    assert any(games[g] is None for g in games if g not in fresh_games)  # named later
    asked = [path for path, _ in sim.twitch.requests if path.endswith("/games")]
    assert len(asked) == 1  # the fresh clips share one window here


def test_refresh_slows_with_clip_age() -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert [b.name for b in sync.due_bands(now, {})] == ["day", "week", "month", "older"]
    marks = {
        name: (now - timedelta(minutes=30)).isoformat()
        for name in ("day", "week", "month", "older")
    }
    assert [b.name for b in sync.due_bands(now, marks)] == ["day"]
    marks["week"] = (now - timedelta(hours=7)).isoformat()
    marks["month"] = (now - timedelta(hours=23)).isoformat()
    marks["older"] = (now - timedelta(days=8)).isoformat()
    assert [b.name for b in sync.due_bands(now, marks)] == ["day", "week", "older"]
