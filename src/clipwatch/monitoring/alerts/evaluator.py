"""The evaluator: every interval, one process (the lease holder) turns signals into
incidents and notices.

Each evaluation: take or renew the `alert_evaluator` lease; read the signals; then, in one
transaction that renews the lease again (a holder that stalled past its lease and lost it
writes nothing), move every rule's state (`alert_state`: the condition true since, its
incident clear since), open and resolve incidents, and write the notices due. Everything
lives in the database, so a process that takes the lease over neither opens an incident
twice nor forgets one, nor repeats a message.

`for` semantics (`decide`, pure): a condition opens its incident once it has held for the
rule's `for` (at once when `for` is 0) and resolves it once it has been clear for the same
`for`; a condition that comes back while clearing keeps the incident open (no flapping).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.models import AlertState, Incident
from clipwatch.db.repositories import incidents as repo
from clipwatch.db.repositories import leases
from clipwatch.monitoring.alerts.notify import (
    Notice,
    enqueue_notices,
    log_notices,
    plan_notices,
)
from clipwatch.monitoring.alerts.rules import AlertConfig, Rule
from clipwatch.monitoring.alerts.signals import Sample, Signals, SignalSource
from clipwatch.waiting import wait_event

log = structlog.get_logger("clipwatch.alerts")

LEASE_NAME = "alert_evaluator"
INTERVAL_S = 15.0
# A holder renews every evaluation; a follower looks every FOLLOWER_POLL_S; so a dead
# holder is replaced within LEASE_S + FOLLOWER_POLL_S (25 s by default).
LEASE_S = 20.0
FOLLOWER_POLL_S = 5.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    canonical = json.dumps([rule, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Decision:
    action: str  # pending | open | seen | clearing | resolve | forget
    active_since: datetime | None
    clear_since: datetime | None


def decide(
    active_since: datetime | None,
    clear_since: datetime | None,
    incident_open: bool,
    holds: bool,
    now: datetime,
    hold_for: timedelta,
) -> Decision:
    if holds:
        active = active_since or now
        if incident_open:
            return Decision("seen", active, None)
        if now - active >= hold_for:
            return Decision("open", active, None)
        return Decision("pending", active, None)
    if not incident_open:
        return Decision("forget", None, None)
    clear = clear_since or now
    if now - clear >= hold_for:
        return Decision("resolve", None, None)
    return Decision("clearing", active_since, clear)


@dataclass
class EvaluationReport:
    leader: bool
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    open_counts: dict[str, int] = field(default_factory=dict)


class LeaseLost(Exception):
    """Another process took the evaluation over during this one: it writes nothing."""


class Evaluator:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        config: AlertConfig,
        source: SignalSource,
        *,
        owner: str,
        key: bytes,
        lease: timedelta = timedelta(seconds=LEASE_S),
        clock: Callable[[], datetime] = utcnow,
        wall_clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.config = config
        self.source = source
        self.owner = owner
        self.key = key
        self.lease = lease
        self.clock = clock
        # Outbox rows are due on the wall clock (the delivery worker's), whatever `clock`.
        self.wall_clock = wall_clock

    async def tick(self) -> EvaluationReport:
        now = self.clock()
        async with session_scope(self.sessionmaker) as session:
            leader = await leases.acquire(session, LEASE_NAME, self.owner, now, self.lease)
        if not leader:
            return EvaluationReport(leader=False)
        signals = await self.source(now)
        report = EvaluationReport(leader=True)
        try:
            async with session_scope(self.sessionmaker) as session:
                if not await leases.acquire(session, LEASE_NAME, self.owner, now, self.lease):
                    raise LeaseLost
                await apply_signals(session, self.config, signals, now, report)
                report.notices = await plan_notices(session, self.config, now)
                await enqueue_notices(session, report.notices, self.key, self.wall_clock(), now)
                report.open_counts = await repo.open_counts(session)
        except LeaseLost:
            log.warning("alert_lease_lost", owner=self.owner)
            return EvaluationReport(leader=False)
        log_notices(report.notices)
        if report.opened or report.resolved:  # one line, even for a storm
            log.info(
                "incidents_changed",
                opened=len(report.opened),
                resolved=len(report.resolved),
                ids=(report.opened + report.resolved)[:20],
            )
        _publish_open_counts(report.open_counts)
        return report

    async def release(self) -> None:
        """Give the lease up (a clean stop): another process takes over at once."""
        async with session_scope(self.sessionmaker) as session:
            await leases.release(session, LEASE_NAME, self.owner, self.clock())


async def apply_signals(
    session: AsyncSession,
    config: AlertConfig,
    signals: Signals,
    now: datetime,
    report: EvaluationReport,
) -> None:
    states = await repo.alert_states(session)
    open_by_fp = {i.fingerprint: i for i in await repo.open_incidents(session)}
    for rule in config.rules:
        samples = signals.get(rule.signal)
        if samples is None:
            continue  # unreadable this time: neither firing nor clear
        seen: set[str] = set()
        for sample in samples:
            labels = {**rule.labels, **{k: str(v) for k, v in sample.labels.items()}}
            fp = fingerprint(rule.name, labels)
            if fp in seen:
                continue
            seen.add(fp)
            await _step(session, rule, fp, labels, sample, states, open_by_fp, now, report)
        for fp, state in list(states.items()):
            if state.rule == rule.name and fp not in seen:
                seen.add(fp)
                await _step(session, rule, fp, state.labels, None, states, open_by_fp, now, report)
        for fp, incident in list(open_by_fp.items()):
            if incident.rule == rule.name and fp not in seen:
                labels = dict(incident.labels or {})
                await _step(session, rule, fp, labels, None, states, open_by_fp, now, report)


async def _step(
    session: AsyncSession,
    rule: Rule,
    fp: str,
    labels: dict[str, str],
    sample: Sample | None,
    states: dict[str, AlertState],
    open_by_fp: dict[str, Incident],
    now: datetime,
    report: EvaluationReport,
) -> None:
    state = states.get(fp)
    incident = open_by_fp.get(fp)
    holds = sample is not None and rule.holds(sample.value)
    decision = decide(
        state.active_since if state else None,
        state.clear_since if state else None,
        incident is not None,
        holds,
        now,
        rule.for_,
    )
    if decision.action in ("forget", "resolve"):
        if state is not None:
            await repo.forget_state(session, fp)
            states.pop(fp, None)
    else:
        if state is None:
            state = AlertState(fingerprint=fp, rule=rule.name, labels=labels)
            session.add(state)
            states[fp] = state
        state.active_since = decision.active_since
        state.clear_since = decision.clear_since
        state.value = sample.value if sample is not None else state.value
        state.updated_at = now
    values: dict[str, Any] = {}
    if sample is not None:
        values = {**labels, **sample.fields, "value": sample.value}
    if decision.action == "open" and sample is not None:
        opened = await repo.add_incident(
            session,
            fingerprint=fp,
            rule=rule.name,
            severity=rule.severity,
            labels=labels,
            summary=rule.render_summary(values),
            state="firing",
            value=sample.value,
            first_seen_at=decision.active_since or now,
            fired_at=now,
            last_seen_at=now,
            count=1,
        )
        open_by_fp[fp] = opened
        report.opened.append(opened.id)
    elif decision.action == "seen" and incident is not None and sample is not None:
        incident.last_seen_at = now
        incident.count = (incident.count or 0) + 1
        incident.value = sample.value
        incident.summary = rule.render_summary(values)
    elif decision.action == "resolve" and incident is not None:
        incident.state = "resolved"
        incident.resolved_at = now
        open_by_fp.pop(fp, None)
        report.resolved.append(incident.id)


def _publish_open_counts(counts: dict[str, int]) -> None:
    try:
        from clipwatch.monitoring.metrics import INCIDENTS_OPEN
    except ImportError:  # the metrics module is optional to the evaluator
        return
    for severity in ("critical", "warning", "info"):
        INCIDENTS_OPEN.labels(severity=severity).set(counts.get(severity, 0))


async def evaluate_forever(
    evaluator: Evaluator,
    stop: asyncio.Event,
    *,
    interval: float = INTERVAL_S,
    follower_poll: float = FOLLOWER_POLL_S,
    on_pass: Callable[[EvaluationReport | BaseException], Awaitable[None] | None] | None = None,
) -> None:
    """Evaluate every `interval` while holding the lease; look for a free lease every
    `follower_poll` otherwise. The first look is one interval after the start (a process
    just started has not reported its own tasks yet). A failed evaluation (the database
    away) is reported to `on_pass` and tried again next time. The lease is given up on a
    clean stop."""
    wait = interval
    try:
        while True:
            if await wait_event(stop, wait):
                return
            try:
                outcome: EvaluationReport | BaseException = await evaluator.tick()
            except Exception as exc:
                outcome = exc
            if on_pass is not None:
                maybe = on_pass(outcome)
                if maybe is not None:
                    await maybe
            leader = isinstance(outcome, EvaluationReport) and outcome.leader
            wait = interval if leader else min(interval, follower_poll)
    finally:
        with contextlib.suppress(Exception):
            await evaluator.release()
