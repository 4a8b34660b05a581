"""The adaptive cadence: which channels' steps are due now, and Twitch's budget planned across
them (docs/cadence.md).

A channel's "recent" step (incremental, due refresh bands, deletion confirmations: what
`sync_all`'s first phase does) is due
- at once when it was never synced (a new channel), or when live state changed
  (twitch/live.py sets `next_sync_at` to now on going online or offline);
- `live_every` after its last incremental read while live, `offline_every` while offline;
- once more at `final_pass_at` (a few minutes after a stream ended: clips made at the end),
  which a successful step then clears;
- never before its backoff is over (`next_try_at`, channel_health).
After each step `next_sync_at` says when the next one is due (in the transaction that
releases the channel's lease, so another worker never finds it still due).

Budget, per tick: the points in Twitch's bucket (the last `Ratelimit-Remaining`, the bucket
shared by every process of the client id; never more than a minute's worth minus what this
worker spent in the last minute) are handed out in order: live channels, final
passes and live-state changes first, whatever they cost; then offline channels, most overdue
first, while their estimated cost fits above the *live reserve* (the live channels' demand
over the next minute plus a margin); then backfill gets what is left, a step paused when it
has spent its share. A step's cost is a moving estimate per channel of the points its last
steps took (pages, refresh lookups, deletion checks, games).

The core (`recent_due_at`, `plan_tick`, `Estimates`) is pure; `sync_due` runs one tick.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import ChannelSync
from clipwatch.db.repositories import cadence as cadence_repo
from clipwatch.db.repositories.cadence import CadenceRow
from clipwatch.twitch import deletions, sync
from clipwatch.twitch.client import HelixClient

log = structlog.get_logger(__name__)
Sessionmaker = async_sessionmaker[AsyncSession]

DEFAULT_RECENT_COST = 3.0  # points: an incremental page, a refresh lookup, a little more
SMOOTHING = 0.3  # weight of the newest step in a channel's cost estimate
RESERVE_MARGIN = 0.05  # of the bucket, kept beside the live channels' demand
RESERVE_MAX = 0.9  # the live reserve never takes the whole bucket: offline channels move too
MIN_BACKFILL_POINTS = 10.0  # a backfill step with fewer points to spend waits
NEVER = datetime(1970, 1, 1, tzinfo=UTC)

# Kinds of step, in the order the budget serves them.
LIVE, FINAL, CHANGED, NEW, OFFLINE, BACKFILL = (
    "live",
    "final",
    "changed",
    "new",
    "offline",
    "backfill",
)
URGENT = frozenset({LIVE, FINAL, CHANGED})


@dataclass(frozen=True)
class CadencePolicy:
    live_every: timedelta
    offline_every: timedelta
    points_per_minute: float
    # The bucket's refill period: a minute on Twitch (shorter only in a time-compressed bench).
    minute: timedelta = timedelta(minutes=1)
    tick: timedelta = timedelta(seconds=5)  # the longest sleep between ticks
    backfill: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> CadencePolicy:
        return cls(
            live_every=timedelta(seconds=settings.live_sync_seconds),
            offline_every=timedelta(seconds=settings.offline_sync_seconds),
            points_per_minute=float(settings.twitch_points_per_minute),
        )

    def every(self, live: bool) -> timedelta:
        return self.live_every if live else self.offline_every


def recent_due_at(row: CadenceRow, policy: CadencePolicy) -> tuple[datetime, str]:
    """When the channel's recent step is due, and what kind of step it is."""
    if row.last_incremental_at is None:
        due, kind = NEVER, NEW
    else:
        due = row.last_incremental_at + policy.every(row.live)
        kind = LIVE if row.live else OFFLINE
        if row.next_sync_at is not None and row.next_sync_at < due:
            due = row.next_sync_at
            kind = LIVE if row.live else CHANGED
    if row.final_pass_at is not None and row.final_pass_at < due:
        due, kind = row.final_pass_at, FINAL
    if row.next_try_at is not None and row.next_try_at > due:
        due = row.next_try_at  # failing: its backoff first
    return due, kind


def backfill_due(row: CadenceRow, now: datetime) -> bool:
    return row.backfill_completed_at is None and (row.next_try_at is None or row.next_try_at <= now)


@dataclass
class Estimates:
    """Points a channel's recent step takes: a moving average of what its steps spent."""

    default: float = DEFAULT_RECENT_COST
    costs: dict[str, float] = field(default_factory=dict)

    def recent(self, channel_id: str) -> float:
        return self.costs.get(channel_id, self.default)

    def observe(self, channel_id: str, points: float) -> None:
        last = self.costs.get(channel_id)
        self.costs[channel_id] = points if last is None else last + SMOOTHING * (points - last)


@dataclass(frozen=True)
class Step:
    channel_id: str
    phase: str  # "recent" or "backfill"
    kind: str
    cost: float  # estimated points (for backfill: none, it is given a share)
    due_at: datetime


@dataclass
class Plan:
    steps: list[Step]  # in the order to run them
    deferred: list[Step]  # due, but over this tick's budget
    reserve: float  # points kept for live channels
    level: float  # points in the bucket when planned
    next_due_at: datetime | None  # the earliest recent step due after now
    next_urgent_at: datetime | None  # ... of a live channel or a final pass
    late_live: int = 0  # live channels overdue by more than their cadence (starved)


def live_reserve(rows: Sequence[CadenceRow], policy: CadencePolicy, estimates: Estimates) -> float:
    """The live channels' demand over the next minute, plus a margin (bounded)."""
    per_minute = policy.minute / policy.live_every
    demand = sum(estimates.recent(r.channel_id) * per_minute for r in rows if r.live)
    bucket = policy.points_per_minute
    return min(demand + RESERVE_MARGIN * bucket, RESERVE_MAX * bucket)


def plan_tick(
    rows: Sequence[CadenceRow],
    now: datetime,
    policy: CadencePolicy,
    estimates: Estimates,
    level: float,
) -> Plan:
    """Order this tick's steps and fit them in the bucket's `level` (see the module doc)."""
    urgent: list[Step] = []
    regular: list[Step] = []
    backfills: list[Step] = []
    next_due: datetime | None = None
    next_urgent: datetime | None = None
    late = 0
    for row in rows:
        due, kind = recent_due_at(row, policy)
        # Late: a whole cadence past both its due time and its last mark (a channel that
        # just went live is due since its last read long ago, yet not late).
        if kind == LIVE and max(due, row.next_sync_at or due) < now - policy.live_every:
            late += 1
        if due <= now:
            step = Step(row.channel_id, "recent", kind, estimates.recent(row.channel_id), due)
            (urgent if kind in URGENT else regular).append(step)
        else:
            next_due = due if next_due is None else min(next_due, due)
            if kind in URGENT:
                next_urgent = due if next_urgent is None else min(next_urgent, due)
        if policy.backfill and backfill_due(row, now):
            backfills.append(Step(row.channel_id, "backfill", BACKFILL, 0.0, NEVER))
    # Most overdue first; live channels before final passes and changes at the same time.
    urgent.sort(key=lambda s: (s.due_at, s.kind != LIVE, s.channel_id))
    regular.sort(key=lambda s: (s.due_at, s.channel_id))
    reserve = live_reserve(rows, policy, estimates)
    steps = list(urgent)
    spent = sum(s.cost for s in urgent)
    deferred: list[Step] = []
    for step in regular:
        if spent + step.cost <= level - reserve:
            steps.append(step)
            spent += step.cost
        else:
            deferred.append(step)
    if not deferred and level - reserve - spent >= MIN_BACKFILL_POINTS:
        steps.extend(backfills)
    else:
        deferred.extend(backfills)
    return Plan(steps, deferred, reserve, level, next_due, next_urgent, late)


@dataclass
class TickReport:
    sync: sync.SyncReport = field(default_factory=sync.SyncReport)
    done: dict[str, int] = field(default_factory=dict)  # kind -> steps run (failed ones too)
    busy: int = 0  # held by another worker, or no longer due when claimed
    deferred: int = 0  # due but over budget (they come first next tick)
    yielded: bool = False  # stopped early: a live channel came due
    points: int = 0  # requests this tick made
    next_due_at: datetime | None = None
    plan: Plan | None = None


@dataclass
class Ledger:
    """This worker's requests over the last minute (samples of the client's request count),
    so that a full bucket is not spent on top of a minute's refill: at most
    `points_per_minute` in any minute."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def note(self, at: float, requests: int) -> None:
        self.samples.append((at, requests))

    def spent(self, at: float, window: float, requests: int) -> int:
        """Requests made in the `window` seconds before `at`."""
        while len(self.samples) > 1 and self.samples[1][0] <= at - window:
            self.samples.popleft()
        if not self.samples or self.samples[0][0] > at - window:
            # No sample that old: count from the oldest one (the worker's first minute).
            return requests - self.samples[0][1] if self.samples else 0
        return requests - self.samples[0][1]


def _level(client: HelixClient, policy: CadencePolicy, ledger: Ledger) -> float:
    """Points this worker may count on: what Twitch last said is in the bucket (a full one
    before any answer), never more than a minute's worth minus this minute's spending."""
    remaining = client.budget.remaining
    bucket = float(policy.points_per_minute if remaining is None else remaining)
    requests = client.stats.requests
    at = time.monotonic()
    ledger.note(at, requests)
    minute = policy.minute.total_seconds()
    return min(bucket, policy.points_per_minute - ledger.spent(at, minute, requests))


async def sync_due(
    client: HelixClient,
    sessionmaker: Sessionmaker,
    policy: CadencePolicy,
    estimates: Estimates,
    *,
    owner: str | None = None,
    deletion_wait: timedelta = deletions.CONFIRM_WAIT,
    now: datetime | None = None,
    ledger: Ledger | None = None,
) -> TickReport:
    """One tick: plan the due steps, run them in order under their leases. Non-urgent steps
    stop when a live channel or final pass comes due meanwhile, or when the bucket (as
    Twitch last reported it) no longer covers them above the live reserve."""
    owner = owner or sync.worker_name()
    now = now or datetime.now(UTC)
    ledger = ledger if ledger is not None else Ledger()
    async with session_scope(sessionmaker) as session:
        rows = await cadence_repo.cadence_rows(session)
    live = {r.channel_id for r in rows if r.live}
    plan = plan_tick(rows, now, policy, estimates, _level(client, policy, ledger))
    tick = TickReport(plan=plan, deferred=len(plan.deferred), next_due_at=plan.next_due_at)
    requests_before = client.stats.requests
    backfill_left = plan.level - plan.reserve - sum(s.cost for s in plan.steps)
    for index, step in enumerate(plan.steps):
        if step.kind not in URGENT:
            moment = datetime.now(UTC)
            urgent_came = plan.next_urgent_at is not None and moment >= plan.next_urgent_at
            if urgent_came or moment - now >= policy.tick:
                # Live channels (and live-state changes) are planned again at once.
                tick.yielded = True
                tick.deferred += len(plan.steps) - index
                break
            if step.phase == "recent" and _level(client, policy, ledger) - step.cost < plan.reserve:
                tick.deferred += len(plan.steps) - index
                break
        if step.phase == "backfill":
            allowance = min(backfill_left, _level(client, policy, ledger) - plan.reserve)
            if allowance < MIN_BACKFILL_POINTS:
                tick.deferred += 1
                continue
            deadline = now + policy.tick
            if plan.next_urgent_at is not None:
                deadline = min(deadline, plan.next_urgent_at)
            spent = await _backfill_step(
                client, sessionmaker, step, tick, owner, allowance, deadline
            )
            backfill_left -= spent
            continue
        before = client.stats.requests
        outcome = await sync.sync_step(
            client,
            sessionmaker,
            step.channel_id,
            "recent",
            tick.sync,
            owner=owner,
            deletion_wait=deletion_wait,
            still_due=_still_due(policy, step.channel_id in live),
            on_done=_on_done(policy, datetime.now(UTC)),
        )
        if outcome in (sync.StepOutcome.DONE, sync.StepOutcome.FAILED):
            if outcome is sync.StepOutcome.DONE:
                estimates.observe(step.channel_id, client.stats.requests - before)
            tick.done[step.kind] = tick.done.get(step.kind, 0) + 1
        else:
            tick.busy += 1
    tick.points = client.stats.requests - requests_before
    return tick


async def _backfill_step(
    client: HelixClient,
    sessionmaker: Sessionmaker,
    step: Step,
    tick: TickReport,
    owner: str,
    allowance: float,
    deadline: datetime,
) -> float:
    """A backfill step that pauses (after a stored window) once it spent `allowance`
    points or at `deadline` (a live channel comes due, the tick is over); its points."""
    before = client.stats.requests

    def pause(*_: Any) -> None:
        spent = client.stats.requests - before
        if spent >= allowance or datetime.now(UTC) >= deadline:
            raise sync.StepPaused

    outcome = await sync.sync_step(
        client,
        sessionmaker,
        step.channel_id,
        "backfill",
        tick.sync,
        owner=owner,
        progress=pause,
        still_due=lambda state, _phase: state.backfill_completed_at is None,
    )
    if outcome in (sync.StepOutcome.DONE, sync.StepOutcome.PAUSED, sync.StepOutcome.FAILED):
        tick.done[BACKFILL] = tick.done.get(BACKFILL, 0) + 1
    else:
        tick.busy += 1
    return float(client.stats.requests - before)


def _row_of(state: ChannelSync, live: bool) -> CadenceRow:
    return CadenceRow(
        channel_id=state.channel_id,
        live=live,
        next_sync_at=state.next_sync_at,
        final_pass_at=state.final_pass_at,
        next_try_at=state.next_try_at,
        last_incremental_at=state.last_incremental_at,
        backfill_completed_at=state.backfill_completed_at,
    )


def _still_due(policy: CadencePolicy, live: bool) -> sync.StillDue:
    """Asked under the lease: another worker may have done the step since the plan."""

    def check(state: ChannelSync, phase: str) -> bool:
        due, _ = recent_due_at(_row_of(state, live), policy)
        return due <= datetime.now(UTC)

    return check


def _on_done(policy: CadencePolicy, started: datetime) -> sync.OnDone:
    """After a step, in the lease's releasing transaction: when the next one is due; a
    final pass that was due when the step began is done. A live-state change during the
    step (twitch/live.py set `next_sync_at` to its moment) is kept: the step may have read
    before it."""

    async def done(
        session: AsyncSession, state: ChannelSync, phase: str, outcome: sync.StepOutcome
    ) -> None:
        if outcome is not sync.StepOutcome.DONE or state.last_incremental_at is None:
            return  # a failure waits out its backoff; the marks stay as they are
        poked = state.next_sync_at
        if poked is None or not started <= poked <= datetime.now(UTC):
            live = await cadence_repo.is_live(session, state.channel_id)
            state.next_sync_at = state.last_incremental_at + policy.every(live)
        if state.final_pass_at is not None and state.final_pass_at <= started:
            state.final_pass_at = None

    return done


def seconds_until(moment: datetime | None, policy: CadencePolicy, now: datetime) -> float:
    """How long the loop may sleep: until the next due step, at most one tick."""
    bound = policy.tick.total_seconds()
    if moment is None:
        return bound
    return max(0.0, min(bound, (moment - now).total_seconds()))
