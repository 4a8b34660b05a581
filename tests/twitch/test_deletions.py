"""Deletions need proof (issue #10): partial answers delete nothing, real deletions are
confirmed by lookups of the clip alone, clips Twitch lists again come back. Both databases,
against the simulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.cache.manager import CacheManager
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Clip, ClipAbsence
from clipwatch.db.repositories import sync_state
from clipwatch.twitch import sync
from clipwatch.twitch.deletions import (
    CONFIRMATIONS,
    MAX_LOOKUPS,
    Lookup,
    Step,
    confirm_deletions,
    next_step,
    read_batch_lookup,
    read_single_lookup,
)
from clipwatch.twitch.simulator import SimChannel
from tests.twitch.conftest import Sim

Sessions = async_sessionmaker[AsyncSession]
NOW_WAIT = timedelta(0)  # tests drive time by the setting (0 minutes) or by passing `now`


# --- the pure decisions -----------------------------------------------------------------------


def test_a_lookup_alone_proves_absence_only_by_an_empty_list() -> None:
    clip = {"id": "abc", "title": "t"}
    assert read_single_lookup("abc", {"data": [], "pagination": {}}) is Lookup.ABSENT
    assert read_single_lookup("abc", {"data": [clip]}) is Lookup.LISTED
    assert read_single_lookup("abc", {"data": [{"id": "zzz"}, clip]}) is Lookup.LISTED
    for body in (
        {},  # no data
        {"data": None},
        {"data": "[]"},
        {"data": {}},
        {"data": [{"id": "other"}]},  # an answer about another clip
        {"data": ["abc"]},
        {"data": [], "error": "Internal Server Error", "status": 500},
        [],
        None,
    ):
        assert read_single_lookup("abc", body) is Lookup.UNKNOWN, body


def test_the_next_step_of_a_suspect() -> None:
    assert next_step(Lookup.LISTED, 0) is Step.CLEAR
    assert next_step(Lookup.LISTED, 1) is Step.CLEAR
    assert next_step(Lookup.ABSENT, 0) is Step.CONFIRM
    assert next_step(Lookup.ABSENT, CONFIRMATIONS - 1) is Step.DELETE
    assert next_step(Lookup.ABSENT, 0, required=3) is Step.CONFIRM
    assert next_step(Lookup.ABSENT, 2, required=3) is Step.DELETE
    assert next_step(Lookup.UNKNOWN, 0) is Step.KEEP
    assert next_step(Lookup.UNKNOWN, 5) is Step.KEEP


def test_a_batch_answer_lists_only_what_was_asked() -> None:
    asked = ["a", "b", "c", "a"]
    answer = read_batch_lookup(
        asked, {"data": [{"id": "b", "n": 1}, {"id": "x"}, "junk", None, {"id": "b", "n": 2}]}
    )
    assert answer is not None
    assert [c["id"] for c in answer.listed] == ["b"]
    assert answer.listed[0]["n"] == 1
    assert answer.missing == ["a", "c"]
    assert read_batch_lookup(asked, {"data": None}) is None
    assert read_batch_lookup(asked, {"pagination": {}}) is None
    assert read_batch_lookup(asked, {"error": "x", "data": []}) is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)
_entry = st.one_of(
    _json,
    st.fixed_dictionaries({"id": st.sampled_from(["a", "b", "c", "d", ""])}, optional={"x": _json}),
)
_body = st.one_of(
    _json,
    st.fixed_dictionaries(
        {"data": st.one_of(_json, st.lists(_entry, max_size=6))},
        optional={"error": _json, "pagination": _json},
    ),
)


@given(asked=st.lists(st.sampled_from(["a", "b", "c", "\x00", "é" * 50]), max_size=8), body=_body)
def test_odd_answers_never_prove_more_than_they_say(asked: list[str], body: Any) -> None:
    single = read_single_lookup("a", body)
    if single is Lookup.ABSENT:
        assert isinstance(body, dict)
        assert body.get("data") == []
        assert "error" not in body
    batch = read_batch_lookup(asked, body)
    if batch is not None:
        listed = [c["id"] for c in batch.listed]
        assert len(listed) == len(set(listed))
        assert set(listed) | set(batch.missing) == set(asked)
        assert not set(listed) & set(batch.missing)


# --- against the simulator --------------------------------------------------------------------


async def track(sim: Sim, sessionmaker: Sessions, login: str) -> None:
    async with sim.client() as client:
        added, _ = await sync.add_channels(client, sessionmaker, [login])
    assert added == [login]


def fresh_channel(sim: Sim, login: str, clips: int) -> SimChannel:
    """A channel whose clips are all from the last day: refreshed on every pass."""
    now = datetime.now(UTC)
    channel = sim.twitch.add_channel(login, clips=0, years=0.01)
    for i in range(clips):
        created = now - timedelta(hours=3, minutes=i % 600)  # older than the incremental overlap
        sim.twitch.add_clip(channel.id, created_at=created, visible_at=now)
    return channel


async def stored(sessionmaker: Sessions) -> dict[str, Clip]:
    async with session_scope(sessionmaker) as session:
        return {c.id: c for c in (await session.scalars(select(Clip))).all()}


async def suspects(sessionmaker: Sessions) -> dict[str, ClipAbsence]:
    async with session_scope(sessionmaker) as session:
        return {s.clip_id: s for s in (await session.scalars(select(ClipAbsence))).all()}


async def deleted_ids(sessionmaker: Sessions) -> set[str]:
    return {i for i, c in (await stored(sessionmaker)).items() if c.deleted_at is not None}


async def sync_pass(sim: Sim, sessionmaker: Sessions) -> sync.SyncReport:
    async with sim.client() as client:
        return await sync.sync_all(client, sessionmaker, deletion_wait=NOW_WAIT)


def single_lookups(sim: Sim, since: int) -> int:
    return sum(
        1
        for path, query in sim.twitch.requests[since:]
        if path == "/helix/clips" and query.count("id=") == 1 and "broadcaster_id" not in query
    )


def partial_answers(sim: Sim, since: int) -> int:
    return sum(
        1
        for path, query in sim.twitch.requests[since:]
        if path == "/helix/clips" and query.count("id=") > 1
    )


async def test_the_simulator_answers_a_random_half_of_a_batch_and_single_ids_truthfully(
    sim: Sim,
) -> None:
    channel = fresh_channel(sim, "halves", 40)
    ids = [c.id for c in channel.clips]
    sim.twitch.add_fault("partial_lookup", count=3)
    async with sim.client() as client:
        first = {c["id"] for c in await client.get_clips_by_id(ids)}
        assert len(first) == 20
        assert first < set(ids)
        # Pages and single lookups pass through untouched and do not use the fault up.
        assert [c["id"] for c in await client.get_clips_by_id(ids[:1])] == ids[:1]
        second = {c["id"] for c in await client.get_clips_by_id(ids)}
        assert len(second) == 20
        assert second != first
        await client.get_clips_by_id(ids)
        assert len(await client.get_clips_by_id(ids)) == 40  # the fault is over
    sim.twitch.add_fault("partial_lookup", count=1_000)
    async with httpx.AsyncClient() as http:  # switched off from outside, as a test would
        assert (await http.get(f"{sim.base}/_sim/faults/clear")).status_code == 200
    async with sim.client() as client:
        assert len(await client.get_clips_by_id(ids)) == 40


async def test_partial_answers_delete_nothing_and_a_real_deletion_is_confirmed_twice(
    sim: Sim, sessionmaker: Sessions, cache: CacheManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = fresh_channel(sim, "partial", 150)
    await track(sim, sessionmaker, "partial")
    await sync_pass(sim, sessionmaker)
    assert len(await stored(sessionmaker)) == 150
    bumped: list[set[str]] = []
    original = cache.bump

    async def spy(deps: Iterable[str]) -> None:
        bumped.append(set(deps))
        await original(deps)

    monkeypatch.setattr(cache, "bump", spy)

    # Batch lookups answer a random half of the ids for several passes; one clip is gone.
    sim.twitch.add_fault("partial_lookup", count=1_000)
    gone = channel.clips[17]
    sim.twitch.delete_clip(gone.id)
    for number in range(1, 5):
        start = len(sim.twitch.requests)
        report = await sync_pass(sim, sessionmaker)
        assert partial_answers(sim, start) >= 2
        left = await suspects(sessionmaker)
        if number == 1:
            # The clip alone answered empty once: one confirmation, not yet a deletion.
            assert await deleted_ids(sessionmaker) == set()
            assert report.deleted == 0
            assert set(left) == {gone.id}
            assert left[gone.id].confirmations == 1
            assert single_lookups(sim, start) > 50  # every suspect of the pass looked up alone
        elif number == 2:
            assert report.deleted == 1
            assert any({"clips", f"ch:{channel.id}"} <= deps for deps in bumped)
        else:
            assert report.deleted == 0
        if number >= 2:
            assert await deleted_ids(sessionmaker) == {gone.id}
            assert left == {}
    live = {i for i, c in (await stored(sessionmaker)).items() if c.deleted_at is None}
    assert live == {c.id for c in sim.twitch.visible_clips(channel.id)}


async def test_confirmations_come_the_wait_apart(sim: Sim, sessionmaker: Sessions) -> None:
    channel = fresh_channel(sim, "patient", 5)
    await track(sim, sessionmaker, "patient")
    await sync_pass(sim, sessionmaker)
    gone = channel.clips[2]
    sim.twitch.delete_clip(gone.id)
    report = sync.SyncReport()
    wait = timedelta(minutes=5)
    async with sim.client() as client:
        await sync.refresh_channel(client, sessionmaker, channel.id, report)
        missed_at = (await suspects(sessionmaker))[gone.id].last_checked_at
        for minutes, confirmations in ((1, 0), (5, 1), (9, 1), (10, 2)):
            await confirm_deletions(
                client,
                sessionmaker,
                channel.id,
                report,
                wait=wait,
                now=missed_at + timedelta(minutes=minutes, seconds=1),
            )
            left = await suspects(sessionmaker)
            if confirmations < CONFIRMATIONS:
                assert left[gone.id].confirmations == confirmations, minutes
                assert await deleted_ids(sessionmaker) == set()
    assert await deleted_ids(sessionmaker) == {gone.id}
    assert report.deleted == 1
    assert await suspects(sessionmaker) == {}


@pytest.mark.parametrize("fault", ["5xx", "malformed", "drop"])
async def test_a_failed_lookup_confirms_nothing(
    sim: Sim, sessionmaker: Sessions, fault: str
) -> None:
    channel = fresh_channel(sim, "failing", 5)
    await track(sim, sessionmaker, "failing")
    await sync_pass(sim, sessionmaker)
    gone = channel.clips[0]
    sim.twitch.delete_clip(gone.id)
    async with sim.client() as client:
        await sync.refresh_channel(client, sessionmaker, channel.id, sync.SyncReport())
    before = (await suspects(sessionmaker))[gone.id]
    assert before.confirmations == 0
    sim.twitch.add_fault(fault, count=100)
    report = sync.SyncReport()
    later = datetime.now(UTC) + timedelta(hours=1)
    async with sim.client(max_attempts=2) as client:
        for _ in range(3):
            await confirm_deletions(client, sessionmaker, channel.id, report, now=later)
    after = (await suspects(sessionmaker))[gone.id]
    assert (after.confirmations, after.last_checked_at) == (0, before.last_checked_at)
    assert await deleted_ids(sessionmaker) == set()
    assert report.deleted == 0
    sim.twitch.faults.clear()  # Twitch is back: the proof goes on from where it was
    async with sim.client() as client:
        for step in (1, 2):
            await confirm_deletions(
                client, sessionmaker, channel.id, report, now=later + timedelta(hours=step)
            )
    assert await deleted_ids(sessionmaker) == {gone.id}


async def test_a_mass_disappearance_spends_a_bounded_number_of_lookups(
    sim: Sim, sessionmaker: Sessions
) -> None:
    channel = fresh_channel(sim, "vanishing", 160)
    await track(sim, sessionmaker, "vanishing")
    await sync_pass(sim, sessionmaker)
    for clip in channel.clips[:140]:
        sim.twitch.delete_clip(clip.id)
    start = len(sim.twitch.requests)
    report = await sync_pass(sim, sessionmaker)
    assert single_lookups(sim, start) == MAX_LOOKUPS
    assert report.deleted == 0
    assert len(await suspects(sessionmaker)) == 140
    for _ in range(3):
        await sync_pass(sim, sessionmaker)
    assert await deleted_ids(sessionmaker) == {c.id for c in channel.clips[:140]}
    assert await suspects(sessionmaker) == {}


async def test_a_deleted_clip_that_twitch_lists_again_comes_back(
    sim: Sim, sessionmaker: Sessions, cache: CacheManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = fresh_channel(sim, "phoenix", 8)
    await track(sim, sessionmaker, "phoenix")
    await sync_pass(sim, sessionmaker)
    gone = channel.clips[3]
    sim.twitch.delete_clip(gone.id)
    await sync_pass(sim, sessionmaker)
    await sync_pass(sim, sessionmaker)
    assert await deleted_ids(sessionmaker) == {gone.id}

    bumped: list[set[str]] = []
    original = cache.bump

    async def spy(deps: Iterable[str]) -> None:
        bumped.append(set(deps))
        await original(deps)

    monkeypatch.setattr(cache, "bump", spy)
    gone.deleted = False  # Twitch lists it again (a glitch that had hidden it is over)
    report = await sync_pass(sim, sessionmaker)
    assert report.restored == 1
    assert await deleted_ids(sessionmaker) == set()
    assert any({"clips", f"ch:{channel.id}"} <= deps for deps in bumped)
    again = await sync_pass(sim, sessionmaker)
    assert again.restored == 0


async def test_a_clip_listed_by_get_clips_pages_is_restored_and_unsuspected(
    sim: Sim, sessionmaker: Sessions
) -> None:
    """The old rule marked clips deleted from partial answers: a window read repairs them."""
    channel = fresh_channel(sim, "repaired", 6)
    await track(sim, sessionmaker, "repaired")
    await sync_pass(sim, sessionmaker)
    wrongly, suspected = channel.clips[0].id, channel.clips[1].id
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        await sync_state.mark_deleted(session, [wrongly], now)
        session.add(
            ClipAbsence(
                clip_id=suspected,
                broadcaster_id=channel.id,
                first_missing_at=now,
                last_checked_at=now,
                confirmations=1,
            )
        )
    report = sync.SyncReport()
    async with sim.client() as client:
        await sync.walk_windows(
            client, sessionmaker, channel.id, now - timedelta(days=2), now, report
        )
    assert report.restored == 1
    assert await deleted_ids(sessionmaker) == set()
    assert await suspects(sessionmaker) == {}


async def test_a_confirmation_counts_once_when_two_workers_race(sessionmaker: Sessions) -> None:
    """Both read the suspect with no confirmation and both got an empty answer: the second
    write finds the suspect changed and counts nothing (confirmations stay the wait apart)."""
    from clipwatch.db.repositories import absence

    first = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    async with session_scope(sessionmaker) as session:
        assert await absence.add_suspects(session, "1", ["c1", "c1", "c2"], first) == 2
        assert await absence.add_suspects(session, "1", ["c1"], first + timedelta(hours=1)) == 0
    later = first + timedelta(minutes=10)
    due = later - timedelta(minutes=5)
    async with session_scope(sessionmaker) as session:
        counted = await absence.add_confirmation(
            session, "c1", seen=0, checked_before=due, now=later
        )
        again = await absence.add_confirmation(session, "c1", seen=0, checked_before=due, now=later)
        too_soon = await absence.add_confirmation(
            session, "c1", seen=1, checked_before=due, now=later
        )
    assert (counted, again, too_soon) == (1, None, None)
    async with session_scope(sessionmaker) as session:
        listed = await absence.due_suspects(session, "1", checked_before=due, limit=10)
        assert [s.clip_id for s in listed] == ["c2"]
        assert await absence.clear_suspects(session, ["c1", "c2", "c3"]) == 2
