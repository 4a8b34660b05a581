"""The adaptive cadence (twitch/cadence.py): the due rules and the budget plan as pure
functions, then ticks against the simulator on both databases."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import ChannelSync, Clip
from clipwatch.db.repositories import sync_state
from clipwatch.db.repositories.cadence import CadenceRow
from clipwatch.runtime.sync_loop import cadence_forever
from clipwatch.runtime.worker import WorkerStats
from clipwatch.simhttp import LoopbackServer
from clipwatch.twitch import cadence, live, sync
from clipwatch.twitch.client import HelixClient
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET, TwitchSimulator
from tests.processes import CLIPWATCH, twitch_simulator
from tests.twitch.conftest import Sim
from tests.twitch.test_kill_resume import empty, query

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = cadence.CadencePolicy(
    live_every=timedelta(seconds=60),
    offline_every=timedelta(seconds=900),
    points_per_minute=800,
)
DEADLINE_S = 90.0


# --- the due rules --------------------------------------------------------------------------


def row(channel_id: str = "1", **kwargs: object) -> CadenceRow:
    base = CadenceRow(
        channel_id=channel_id, live=False, last_incremental_at=NOW, backfill_completed_at=NOW
    )
    return replace(base, **kwargs)  # type: ignore[arg-type]


def test_a_new_channel_is_due_at_once() -> None:
    assert cadence.recent_due_at(row(last_incremental_at=None), POLICY) == (
        cadence.NEVER,
        cadence.NEW,
    )


def test_live_and_offline_channels_are_due_after_their_own_cadence() -> None:
    assert cadence.recent_due_at(row(live=True), POLICY) == (NOW + timedelta(seconds=60), "live")
    assert cadence.recent_due_at(row(), POLICY) == (NOW + timedelta(seconds=900), "offline")


def test_a_live_state_change_makes_the_channel_due_at_its_mark() -> None:
    soon = NOW + timedelta(seconds=5)
    assert cadence.recent_due_at(row(next_sync_at=soon), POLICY) == (soon, "changed")
    assert cadence.recent_due_at(row(live=True, next_sync_at=soon), POLICY) == (soon, "live")
    # A mark later than the cadence does not delay it.
    late = NOW + timedelta(hours=5)
    assert cadence.recent_due_at(row(next_sync_at=late), POLICY)[0] == NOW + timedelta(seconds=900)


def test_the_final_pass_comes_before_the_offline_cadence() -> None:
    final = NOW + timedelta(seconds=180)
    assert cadence.recent_due_at(row(final_pass_at=final), POLICY) == (final, "final")


def test_a_failing_channel_is_due_after_its_backoff() -> None:
    later = NOW + timedelta(minutes=30)
    assert cadence.recent_due_at(row(live=True, next_try_at=later), POLICY)[0] == later
    assert (
        cadence.recent_due_at(row(last_incremental_at=None, next_try_at=later), POLICY)[0] == later
    )
    assert not cadence.backfill_due(row(backfill_completed_at=None, next_try_at=later), NOW)
    assert cadence.backfill_due(row(backfill_completed_at=None, next_try_at=NOW), NOW)


def test_estimates_follow_what_steps_cost() -> None:
    estimates = cadence.Estimates()
    assert estimates.recent("a") == cadence.DEFAULT_RECENT_COST
    estimates.observe("a", 10)
    assert estimates.recent("a") == 10
    estimates.observe("a", 0)
    assert estimates.recent("a") == pytest.approx(10 * (1 - cadence.SMOOTHING))


def test_the_ledger_counts_what_the_last_minute_spent() -> None:
    ledger = cadence.Ledger()
    ledger.note(5.0, 10)
    assert ledger.spent(6.0, 60.0, 50) == 40  # the worker's first minute: since its start
    ledger.note(30.0, 400)
    ledger.note(70.0, 900)
    # From the newest sample at least a minute old (30 s): what came after it.
    assert ledger.spent(95.0, 60.0, 1000) == 600
    assert ledger.spent(200.0, 60.0, 1000) == 100
    assert len(ledger.samples) == 1  # older samples are dropped


# --- the budget plan ------------------------------------------------------------------------


def test_live_channels_come_first_and_offline_ones_by_how_overdue() -> None:
    rows = [
        row("off-late", last_incremental_at=NOW - timedelta(hours=2)),
        row("off", last_incremental_at=NOW - timedelta(minutes=16)),
        row("live", live=True, last_incremental_at=NOW - timedelta(minutes=1)),
        row("final", final_pass_at=NOW - timedelta(seconds=1)),
        row("new", last_incremental_at=None),
        row("fresh", last_incremental_at=NOW - timedelta(minutes=1)),  # not due
        row("bf", backfill_completed_at=None, last_incremental_at=NOW - timedelta(minutes=1)),
    ]
    plan = cadence.plan_tick(rows, NOW, POLICY, cadence.Estimates(), level=800)
    assert [(s.channel_id, s.kind) for s in plan.steps] == [
        ("final", "final"),  # the most overdue first (1 s)
        ("live", "live"),
        ("new", "new"),
        ("off-late", "offline"),
        ("off", "offline"),
        ("bf", "backfill"),
    ]
    assert plan.deferred == []
    assert plan.late_live == 0  # due now, not a cadence late
    assert plan.next_due_at == NOW - timedelta(minutes=1) + timedelta(seconds=900)
    assert plan.next_urgent_at is None  # the one live channel is due now


def test_a_short_bucket_keeps_the_live_reserve_and_leaves_backfill_out() -> None:
    estimates = cadence.Estimates(default=5)
    lives = [
        row(f"live{i}", live=True, last_incremental_at=NOW - timedelta(minutes=2))
        for i in range(10)
    ]
    offline = [
        row(f"off{i:02}", last_incremental_at=NOW - timedelta(hours=1, minutes=i))
        for i in range(50)
    ]
    backfill = [row("bf", backfill_completed_at=None)]
    level = 200.0
    plan = cadence.plan_tick(lives + offline + backfill, NOW, POLICY, estimates, level)
    reserve = 10 * 5 + cadence.RESERVE_MARGIN * 800  # ten live channels a minute, plus margin
    assert plan.reserve == pytest.approx(reserve)
    planned = [s for s in plan.steps if s.kind == "offline"]
    # Every live step, whatever the bucket; offline ones only above the reserve.
    assert [s.channel_id for s in plan.steps[:10]] == [f"live{i}" for i in range(10)]
    assert len(planned) == 12  # (200 - 90 reserve - 50 live) / 5
    assert 50 + 5 * len(planned) <= level - reserve < 50 + 5 * (len(planned) + 1)
    # The most overdue first: off49 was synced longest ago.
    assert [s.channel_id for s in planned] == [
        f"off{i:02}" for i in range(49, 49 - len(planned), -1)
    ]
    assert "bf" in {s.channel_id for s in plan.deferred}
    assert "bf" not in {s.channel_id for s in plan.steps}


def test_an_empty_bucket_still_serves_live_channels() -> None:
    rows = [
        row("live", live=True, last_incremental_at=NOW - timedelta(minutes=5)),
        row("off", last_incremental_at=NOW - timedelta(hours=5)),
        row("bf", backfill_completed_at=None),
    ]
    plan = cadence.plan_tick(rows, NOW, POLICY, cadence.Estimates(), level=0)
    assert [s.channel_id for s in plan.steps] == ["live"]
    assert {s.channel_id for s in plan.deferred} == {"off", "bf"}
    assert plan.late_live == 1  # due 4 minutes ago: starved, and said so
    # Gone live a moment ago (its mark is now), though last read hours ago: not late.
    fresh = row("fresh", live=True, last_incremental_at=NOW - timedelta(hours=3), next_sync_at=NOW)
    assert cadence.plan_tick([fresh], NOW, POLICY, cadence.Estimates(), level=0).late_live == 0


def test_the_live_reserve_never_takes_the_whole_bucket() -> None:
    lives = [row(f"l{i}", live=True) for i in range(1000)]
    assert cadence.live_reserve(lives, POLICY, cadence.Estimates()) == pytest.approx(720)


moments = st.datetimes(
    min_value=datetime(2026, 11, 27, 11),
    max_value=datetime(2026, 11, 27, 13),
    timezones=st.just(UTC),
)
rows_strategy = st.lists(
    st.builds(
        CadenceRow,
        channel_id=st.text("abc123", min_size=1, max_size=4),
        live=st.booleans(),
        next_sync_at=st.none() | moments,
        final_pass_at=st.none() | moments,
        next_try_at=st.none() | moments,
        last_incremental_at=st.none() | moments,
        backfill_completed_at=st.none() | moments,
    ),
    max_size=30,
    unique_by=lambda r: r.channel_id,
)


@settings(max_examples=300, deadline=None)
@given(
    rows=rows_strategy,
    level=st.floats(min_value=0, max_value=1000),
    costs=st.dictionaries(st.text("abc123", min_size=1, max_size=4), st.floats(0, 300)),
)
def test_any_plan_serves_every_due_urgent_step_and_fits_the_rest_in_the_bucket(
    rows: list[CadenceRow], level: float, costs: dict[str, float]
) -> None:
    estimates = cadence.Estimates(costs=dict(costs))
    plan = cadence.plan_tick(rows, NOW, POLICY, estimates, level)
    due = {r.channel_id for r in rows if cadence.recent_due_at(r, POLICY)[0] <= NOW}
    recent = [s for s in [*plan.steps, *plan.deferred] if s.phase == "recent"]
    assert sorted(s.channel_id for s in recent) == sorted(due)  # each due one once
    urgent = [s for s in recent if s.kind in cadence.URGENT]
    assert all(s in plan.steps for s in urgent)  # never deferred
    kinds = [s.kind in cadence.URGENT for s in plan.steps]
    assert kinds == sorted(kinds, reverse=True)  # urgent ones first
    others = sum(s.cost for s in plan.steps if s.phase == "recent" and s.kind not in cadence.URGENT)
    assert others <= max(0.0, level - plan.reserve - sum(s.cost for s in urgent)) + 1e-9
    regular = [s.due_at for s in plan.steps if s.phase == "recent" and s.kind not in cadence.URGENT]
    assert regular == sorted(regular)
    if any(s.phase == "backfill" for s in plan.steps):
        assert not [s for s in plan.deferred if s.phase == "recent"]
    for s in plan.steps:
        if s.phase == "backfill":
            assert cadence.backfill_due(next(r for r in rows if r.channel_id == s.channel_id), NOW)
    later = [cadence.recent_due_at(r, POLICY)[0] for r in rows if r.channel_id not in due]
    assert plan.next_due_at == (min(later) if later else None)


# --- ticks against the simulator ------------------------------------------------------------


@dataclass
class Ticks:
    """Ticks run by one worker, and every step they ran."""

    client: HelixClient
    sessionmaker: Sessions
    policy: cadence.CadencePolicy
    owner: str = "test-worker"
    estimates: cadence.Estimates = field(default_factory=cadence.Estimates)
    steps: list[tuple[str, str, str, datetime]] = field(default_factory=list)  # id, phase, kind, at
    reports: list[cadence.TickReport] = field(default_factory=list)
    remaining: list[int] = field(default_factory=list)  # the bucket after each tick

    async def tick(self) -> cadence.TickReport:
        report = await cadence.sync_due(
            self.client, self.sessionmaker, self.policy, self.estimates, owner=self.owner
        )
        kinds = {}
        assert report.plan is not None
        for step in report.plan.steps:
            kinds[(step.channel_id, step.phase)] = step.kind
        for channel_id, phase, started, _ in report.sync.steps:
            self.steps.append((channel_id, phase, kinds[(channel_id, phase)], started))
        self.reports.append(report)
        if self.client.budget.remaining is not None:
            self.remaining.append(self.client.budget.remaining)
        return report

    async def until(self, done: Callable[[], bool], what: str, limit: float = DEADLINE_S) -> None:
        deadline = time.monotonic() + limit
        while not done():
            assert time.monotonic() < deadline, f"not within {limit} s: {what}"
            report = await self.tick()
            pause = cadence.seconds_until(report.next_due_at, self.policy, datetime.now(UTC))
            await asyncio.sleep(min(pause, 0.2))

    def recent(self, channel_id: str) -> list[datetime]:
        return [at for c, phase, _, at in self.steps if c == channel_id and phase == "recent"]

    def kinds(self, channel_id: str) -> list[str]:
        return [kind for c, phase, kind, _ in self.steps if c == channel_id and phase == "recent"]


def small_policy(**kwargs: object) -> cadence.CadencePolicy:
    base = cadence.CadencePolicy(
        live_every=timedelta(seconds=2),
        offline_every=timedelta(seconds=6),
        points_per_minute=100_000,
        tick=timedelta(seconds=0.5),
    )
    return replace(base, **kwargs)  # type: ignore[arg-type]


async def track(client: HelixClient, sessionmaker: Sessions, *logins: str) -> None:
    added, unknown = await sync.add_channels(client, sessionmaker, list(logins))
    assert sorted(added) == sorted(logins)
    assert unknown == []


async def mark_backfilled(sessionmaker: Sessions, *channel_ids: str) -> None:
    """As if their backfill were done (these tests are about the recent steps)."""
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(ChannelSync)
            .where(ChannelSync.channel_id.in_(channel_ids))
            .values(backfill_until=now, backfill_done_until=now, backfill_completed_at=now)
        )


async def state_of(sessionmaker: Sessions, channel_id: str) -> ChannelSync:
    async with session_scope(sessionmaker) as session:
        state = await session.get(ChannelSync, channel_id)
        assert state is not None
        session.expunge(state)
        return state


async def go_live(sessionmaker: Sessions, channel_id: str) -> None:
    changed = await live.went_online(
        sessionmaker,
        channel_id,
        stream_id=f"s{channel_id}",
        started_at=datetime.now(UTC) - timedelta(minutes=1),
        stream_type="live",
        source="poll",
    )
    assert changed


def gaps(moments: list[datetime]) -> list[float]:
    return [(b - a).total_seconds() for a, b in itertools.pairwise(moments)]


async def test_live_channels_are_synced_every_live_cadence_and_offline_ones_every_offline_cadence(
    sim: Sim, sessionmaker: Sessions
) -> None:
    onair = sim.twitch.add_channel("onair", clips=5, years=0.1)
    quiet = sim.twitch.add_channel("quiet", clips=5, years=0.1)
    policy = small_policy()
    async with sim.client() as client:
        await track(client, sessionmaker, "onair", "quiet")
        await mark_backfilled(sessionmaker, onair.id, quiet.id)
        await go_live(sessionmaker, onair.id)
        ticks = Ticks(client, sessionmaker, policy)
        started = time.monotonic()
        await ticks.until(lambda: len(ticks.recent(onair.id)) >= 5, "five live steps")
        elapsed = time.monotonic() - started

        live_steps, quiet_steps = ticks.recent(onair.id), ticks.recent(quiet.id)
        # Incremental marks are whole seconds: a step may come up to 1 s before its cadence.
        assert all(gap >= 1.0 for gap in gaps(live_steps)), gaps(live_steps)
        assert all(gap >= 5.0 for gap in gaps(quiet_steps)), gaps(quiet_steps)
        assert 1 <= len(quiet_steps) <= 1 + elapsed / 5.0
        assert ticks.kinds(onair.id)[1:] == ["live"] * (len(live_steps) - 1)
        assert ticks.kinds(quiet.id)[0] == "new"

        # Each step wrote when the next one is due, by the channel's state.
        onair_state = await state_of(sessionmaker, onair.id)
        quiet_state = await state_of(sessionmaker, quiet.id)
        assert onair_state.last_incremental_at is not None
        assert onair_state.next_sync_at == onair_state.last_incremental_at + timedelta(seconds=2)
        assert quiet_state.last_incremental_at is not None
        assert quiet_state.next_sync_at == quiet_state.last_incremental_at + timedelta(seconds=6)

        # A clip made while live is stored by the next live steps.
        clip = sim.twitch.add_clip(onair.id, visible_at=datetime.now(UTC))
        stored_before = len(ticks.recent(onair.id))
        await ticks.until(
            lambda: len(ticks.recent(onair.id)) >= stored_before + 2, "two more live steps"
        )
        assert clip.id in await clip_ids(sessionmaker)


async def clip_ids(sessionmaker: Sessions) -> set[str]:
    async with session_scope(sessionmaker) as session:
        return set((await session.scalars(select(Clip.id))).all())


async def test_a_stream_end_makes_the_channel_due_then_its_final_pass_comes_once(
    sim: Sim, sessionmaker: Sessions
) -> None:
    ender = sim.twitch.add_channel("ender", clips=5, years=0.1)
    policy = small_policy(offline_every=timedelta(hours=1))
    async with sim.client() as client:
        await track(client, sessionmaker, "ender")
        await mark_backfilled(sessionmaker, ender.id)
        await go_live(sessionmaker, ender.id)
        ticks = Ticks(client, sessionmaker, policy)
        await ticks.until(lambda: len(ticks.recent(ender.id)) >= 2, "two live steps")

        assert await live.went_offline(
            sessionmaker, ender.id, source="poll", final_pass_after=timedelta(seconds=2)
        )
        state = await state_of(sessionmaker, ender.id)
        assert state.final_pass_at is not None
        await ticks.until(lambda: "final" in ticks.kinds(ender.id), "the final pass")
        assert ticks.kinds(ender.id)[-2:] == ["changed", "final"]
        final_at = ticks.recent(ender.id)[-1]
        assert final_at >= state.final_pass_at
        after = await state_of(sessionmaker, ender.id)
        assert after.final_pass_at is None
        assert after.last_incremental_at is not None
        assert after.next_sync_at == after.last_incremental_at + timedelta(hours=1)

        # Nothing more is due for an hour: further ticks run no step of it.
        count = len(ticks.steps)
        for _ in range(5):
            report = await ticks.tick()
            assert report.next_due_at == after.next_sync_at
        assert len(ticks.steps) == count


async def test_going_live_makes_an_offline_channel_due_at_once_then_on_the_live_cadence(
    sim: Sim, sessionmaker: Sessions
) -> None:
    channel = sim.twitch.add_channel("riser", clips=2, years=0.1)
    policy = small_policy(live_every=timedelta(seconds=2), offline_every=timedelta(hours=1))
    async with sim.client() as client:
        await track(client, sessionmaker, "riser")
        await mark_backfilled(sessionmaker, channel.id)
        ticks = Ticks(client, sessionmaker, policy)
        await ticks.until(lambda: len(ticks.recent(channel.id)) == 1, "its first step")
        offline = await state_of(sessionmaker, channel.id)
        assert offline.last_incremental_at is not None
        assert offline.next_sync_at == offline.last_incremental_at + timedelta(hours=1)
        report = await ticks.tick()
        assert report.done == {}  # nothing due for an hour

        await go_live(sessionmaker, channel.id)
        report = await ticks.tick()  # the very next tick
        assert report.done == {"live": 1}
        await ticks.until(lambda: len(ticks.recent(channel.id)) >= 4, "live steps")
        assert ticks.kinds(channel.id)[1:] == ["live"] * (len(ticks.recent(channel.id)) - 1)
        state = await state_of(sessionmaker, channel.id)
        assert state.last_incremental_at is not None
        assert state.next_sync_at == state.last_incremental_at + timedelta(seconds=2)


async def test_a_live_state_change_during_a_step_is_not_overwritten_by_it(
    sim: Sim, sessionmaker: Sessions
) -> None:
    channel = sim.twitch.add_channel("midstep", years=0.1)
    async with sim.client() as client:
        await track(client, sessionmaker, "midstep")
    policy = small_policy(offline_every=timedelta(hours=1))
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    done = cadence._on_done(policy, started)

    async def finish(next_sync_at: datetime | None) -> ChannelSync:
        async with session_scope(sessionmaker) as session:
            state = await sync_state.get_state(session, channel.id)
            state.last_incremental_at = started
            state.next_sync_at = next_sync_at
            await done(session, state, "recent", sync.StepOutcome.DONE)
        return await state_of(sessionmaker, channel.id)

    # went_offline/went_online during the step: due at once still.
    poke = started + timedelta(seconds=2)
    assert (await finish(poke)).next_sync_at == poke
    # The mark the last step left (due before this one began): replaced by the cadence.
    assert (await finish(started - timedelta(seconds=1))).next_sync_at == started + timedelta(
        hours=1
    )
    # A mark further away than the cadence (it was offline): the cadence of its state now.
    assert (await finish(started + timedelta(hours=2))).next_sync_at == started + timedelta(hours=1)


async def test_a_failing_channel_waits_out_its_backoff(sim: Sim, sessionmaker: Sessions) -> None:
    broken = sim.twitch.add_channel("broken", years=0.1)
    fine = sim.twitch.add_channel("fine", clips=3, years=0.1)
    now = datetime.now(UTC)
    for _ in range(3):  # every clip Twitch sends for it is unreadable: a channel failure
        sim.twitch.add_clip(
            broken.id, created_at=now - timedelta(minutes=30), visible_at=now
        ).raw = {"id": None}
    policy = small_policy(live_every=timedelta(seconds=1))
    async with sim.client() as client:
        await track(client, sessionmaker, "broken", "fine")
        await mark_backfilled(sessionmaker, broken.id, fine.id)
        await go_live(sessionmaker, broken.id)
        await go_live(sessionmaker, fine.id)
        ticks = Ticks(client, sessionmaker, policy)
        await ticks.until(lambda: len(ticks.recent(fine.id)) >= 4, "four steps of the fine one")

        assert len(ticks.recent(broken.id)) == 1  # failed once, then backing off (1 minute)
        assert broken.id in ticks.reports[0].sync.failed_channels
        state = await state_of(sessionmaker, broken.id)
        assert state.consecutive_failures == 1
        assert state.next_try_at is not None
        assert state.next_try_at > datetime.now(UTC)

        # Its backoff over, it is tried again (and fails again: two in a row).
        async with session_scope(sessionmaker) as session:
            await session.execute(
                update(ChannelSync)
                .where(ChannelSync.channel_id == broken.id)
                .values(next_try_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        await ticks.until(lambda: len(ticks.recent(broken.id)) >= 2, "the retry")
        assert (await state_of(sessionmaker, broken.id)).consecutive_failures == 2


async def test_backfill_and_many_offline_channels_do_not_starve_a_live_one_under_a_tiny_budget(
    sessionmaker: Sessions,
) -> None:
    points = 120  # two a second
    twitch = TwitchSimulator(seed=5, points_per_minute=points)
    server = LoopbackServer(twitch)
    base = await server.start()
    try:
        star = twitch.add_channel("star", clips=5, years=0.1)
        history = twitch.add_channel("history", clips=3_000, years=2)
        crowd = [twitch.add_channel(f"crowd{i:02}", clips=2, years=0.1) for i in range(20)]
        policy = small_policy(live_every=timedelta(seconds=3), points_per_minute=points)
        async with HelixClient(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            api_url=f"{base}/helix",
            auth_url=f"{base}/oauth2",
        ) as client:
            await track(client, sessionmaker, "star", "history", *[c.login for c in crowd])
            await mark_backfilled(sessionmaker, star.id, *[c.id for c in crowd])
            await go_live(sessionmaker, star.id)
            ticks = Ticks(client, sessionmaker, policy)
            await ticks.until(
                lambda: (
                    len(ticks.recent(star.id)) >= 6
                    and any(r.done.get("backfill") for r in ticks.reports)
                ),
                "six live steps and some backfill",
            )

            # The live channel kept its cadence (a starved one waits on the bucket for
            # seconds per step), and never did it (or anyone) wait on the bucket.
            assert all(gap <= 3.0 + 4.0 for gap in gaps(ticks.recent(star.id))), gaps(
                ticks.recent(star.id)
            )
            assert client.budget.waited == 0.0
            assert twitch.rate_limited == 0
            # The bucket never went under the live reserve by more than a step or a window.
            reserve = ticks.reports[-1].plan.reserve if ticks.reports[-1].plan else 0
            assert reserve >= 20
            assert min(ticks.remaining) >= reserve - 20, (sorted(ticks.remaining)[:5], reserve)
            # Yet the others moved: backfill made progress, offline channels had steps.
            state = await state_of(sessionmaker, history.id)
            assert state.backfill_done_until is not None
            assert state.backfill_until is not None
            assert state.backfill_done_until > (state.backfill_until - timedelta(days=730))
            assert any(r.done.get("backfill") for r in ticks.reports)
            assert sum(r.done.get("new", 0) for r in ticks.reports) >= 1
            # ... within what the bucket left above the live reserve.
            assert any(r.deferred for r in ticks.reports)
    finally:
        await server.stop()


async def test_two_workers_share_the_due_channels_without_syncing_one_twice(
    sim: Sim, sessionmaker: Sessions
) -> None:
    channels = [sim.twitch.add_channel(f"shared{i:02}", clips=3, years=0.1) for i in range(12)]
    # A tick long enough for every due step: on a loaded machine a step took over the
    # usual 0.5 s and each tick then ran one (this test is about sharing, not the tick).
    policy = small_policy(offline_every=timedelta(hours=1), tick=timedelta(seconds=60))
    async with sim.client() as one, sim.client() as two:
        await track(one, sessionmaker, *[c.login for c in channels])
        await mark_backfilled(sessionmaker, *[c.id for c in channels])
        first = Ticks(one, sessionmaker, policy, owner="host-a:1")
        second = Ticks(two, sessionmaker, policy, owner="host-b:2")

        async def work(ticks: Ticks) -> None:  # one worker's ticks follow each other
            for _ in range(3):
                await ticks.tick()

        await asyncio.gather(work(first), work(second))

    synced = [c for c, phase, _, _ in first.steps + second.steps if phase == "recent"]
    assert sorted(synced) == sorted(c.id for c in channels)  # each exactly once
    assert first.steps  # both worked
    assert second.steps
    skipped = sum(r.busy for r in first.reports + second.reports)
    assert skipped >= 1  # they met at least once and gave way
    for channel in channels:
        state = await state_of(sessionmaker, channel.id)
        assert state.lease_owner is None
        assert state.last_incremental_at is not None
        assert state.next_sync_at == state.last_incremental_at + timedelta(hours=1)


async def test_the_worker_loop_ticks_until_stopped_and_reports_for_the_alert_rules(
    sim: Sim, twitch_settings: Settings, sessionmaker: Sessions
) -> None:
    streamer = sim.twitch.add_channel("looper", clips=2, years=0.1)
    policy = small_policy(live_every=timedelta(seconds=1))
    stop = asyncio.Event()
    stats = WorkerStats()
    state = stats.supervisor.task("sync")
    async with sim.client() as client:
        await track(client, sessionmaker, "looper")
        await mark_backfilled(sessionmaker, streamer.id)
        await go_live(sessionmaker, streamer.id)
        loop = asyncio.create_task(
            cadence_forever(
                client,
                sessionmaker,
                stop,
                stats,
                state,
                settings=twitch_settings,
                interval=10.0,
                policy=policy,
            )
        )
        clip = sim.twitch.add_clip(streamer.id, visible_at=datetime.now(UTC))
        deadline = time.monotonic() + DEADLINE_S
        while clip.id not in await clip_ids(sessionmaker) or stats.passes < 3:
            assert time.monotonic() < deadline, "the loop stored no clip"
            assert not loop.done()
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(loop, DEADLINE_S)
    assert stats.inserted >= 1
    assert state.detail["twitch_auth_error"] is None
    assert state.detail["twitch_budget_remaining"] is not None
    assert "cadence_steps" in state.detail
    assert stats.failed_passes == 0


def test_two_worker_processes_share_the_cadence_without_double_steps(
    postgresql_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """The scaled setup: two `clipwatch worker` processes on PostgreSQL and Redis."""
    empty(postgresql_url)
    logins = [f"proc{i:02}" for i in range(8)]
    specs = [arg for login in logins for arg in ("--channel", f"{login}:5")]
    with twitch_simulator("--seed", "12", "--years", "0.1", *specs) as twitch:
        env = twitch.env(
            postgresql_url,
            CLIPWATCH_REDIS_URL=redis_url,
            CLIPWATCH_REDIS_KEY_PREFIX=redis_prefix,
            CLIPWATCH_LOG_FORMAT="json",
            CLIPWATCH_LOG_LEVEL="info",
            CLIPWATCH_LIVE_SYNC_SECONDS="10",
            CLIPWATCH_OFFLINE_SYNC_SECONDS="10",
        )
        added = subprocess.run(
            [CLIPWATCH, "channels", "add", *logins],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        logs = [tmp_path / f"worker{n}.log" for n in range(2)]
        workers = []
        for log in logs:
            with log.open("wb") as out:
                workers.append(
                    subprocess.Popen(
                        [CLIPWATCH, "worker"], env=env, cwd=tmp_path, stdout=out, stderr=out
                    )
                )
        try:
            deadline = time.monotonic() + 150
            while True:
                steps = _logged_steps(logs)
                if all(len(steps.get(login, [])) >= 3 for login in _ids(postgresql_url)):
                    break
                assert all(w.poll() is None for w in workers), "a worker died"
                assert time.monotonic() < deadline, f"too few steps: {steps}"
                time.sleep(0.5)  # polling interval while waiting on the logs
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=60)

    steps = _logged_steps(logs)
    assert {n for spans in steps.values() for *_, n in spans} == {0, 1}  # both worked
    for spans in steps.values():
        spans.sort()
        for (start, end, _), (later, _, _) in itertools.pairwise(spans):
            assert end <= later  # never two at once
            # One step per cadence (10 s; marks are whole seconds): never done twice.
            assert (later - start).total_seconds() >= 9.0, spans


def _ids(url: str) -> list[str]:
    return [row[0] for row in query(url, "SELECT id FROM channel WHERE tracked")]


def _logged_steps(logs: list[Path]) -> dict[str, list[tuple[datetime, datetime, int]]]:
    """Recent steps the workers logged: channel id -> (started, ended, worker number)."""
    steps: dict[str, list[tuple[datetime, datetime, int]]] = {}
    for number, log in enumerate(logs):
        for line in log.read_text(errors="replace").splitlines():
            if '"sync_channel_done"' not in line:
                continue
            event = json.loads(line)
            if event.get("phase") == "recent" and event.get("outcome") == "done":
                steps.setdefault(event["channel_id"], []).append(
                    (
                        datetime.fromisoformat(event["started"]),
                        datetime.fromisoformat(event["ended"]),
                        number,
                    )
                )
    return steps
