"""Incidents from rules on both databases: `for` both ways, ack and resolve, one open
incident per fingerprint, grouping, and a lease taken over without loss or duplicate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import incidents as repo
from clipwatch.errors import Conflict
from clipwatch.monitoring.alerts import service
from clipwatch.monitoring.alerts.evaluator import LEASE_S, decide, fingerprint
from clipwatch.monitoring.alerts.signals import Sample
from tests.monitoring.alerts_helpers import (
    START,
    Clock,
    ScriptedSignals,
    all_incidents,
    config,
    evaluator,
)

Sessions = async_sessionmaker[AsyncSession]
RULES = """
grouping: {group_interval: 5m, repeat_interval: 1h}
rules:
  - name: outbox_stuck
    signal: outbox_oldest_pending_seconds
    threshold: 600
    for: 60s
    severity: critical
    summary: "oldest waits {value} s"
  - name: channel_sync_lagging
    signal: channel_sync_lag_cadences
    threshold: 3
    for: 0s
    summary: "channel {channel} lags"
"""
STUCK = Sample(700.0)
CLEAR = Sample(0.0)


def test_decide_is_pure_and_symmetric() -> None:
    minute = timedelta(minutes=1)
    assert decide(None, None, False, True, START, minute).action == "pending"
    assert decide(START, None, False, True, START + minute, minute).action == "open"
    assert decide(START, None, True, False, START, minute).action == "clearing"
    assert decide(START, START, True, False, START + minute, minute).action == "resolve"
    assert decide(START, START, True, True, START + minute, minute).clear_since is None
    assert decide(START, None, False, False, START, minute).action == "forget"


async def test_an_incident_opens_after_its_for_and_resolves_after_clear_for_as_long(
    sessionmaker: Sessions,
) -> None:
    signals, clock = ScriptedSignals(), Clock()
    alerts = evaluator(sessionmaker, config(RULES), signals, clock)
    signals.set("outbox_oldest_pending_seconds", STUCK)
    for offset in (0, 30, 59):
        clock.now = START + timedelta(seconds=offset)
        assert (await alerts.tick()).opened == []
    clock.advance(1)  # 60 s true
    opened = (await alerts.tick()).opened
    assert len(opened) == 1
    [incident] = await all_incidents(sessionmaker)
    assert (incident.state, incident.severity, incident.summary) == (
        "firing",
        "critical",
        "oldest waits 700 s",
    )
    assert incident.first_seen_at == START

    signals.set("outbox_oldest_pending_seconds", CLEAR)
    clock.advance(10)
    assert (await alerts.tick()).resolved == []
    signals.set("outbox_oldest_pending_seconds", STUCK)  # back before the for: no flap
    clock.advance(30)
    assert (await alerts.tick()).resolved == []
    signals.set("outbox_oldest_pending_seconds", CLEAR)
    clock.advance(10)
    clear_from = clock.now
    await alerts.tick()
    clock.now = clear_from + timedelta(seconds=59)
    assert (await alerts.tick()).resolved == []
    clock.advance(1)
    assert (await alerts.tick()).resolved == opened
    [incident] = await all_incidents(sessionmaker)
    assert incident.state == "resolved"
    assert incident.resolved_at == clock.now
    assert incident.count == 2  # the evaluations that saw it true: the opening one, +30 s


async def test_unreadable_signals_keep_the_state(sessionmaker: Sessions) -> None:
    signals, clock = ScriptedSignals(), Clock()
    alerts = evaluator(sessionmaker, config(RULES), signals, clock)
    signals.set("outbox_oldest_pending_seconds", STUCK)
    await alerts.tick()
    clock.advance(60)
    await alerts.tick()
    signals.values.clear()  # the database did not answer the signals' queries
    clock.advance(600)
    report = await alerts.tick()
    assert report.resolved == []
    assert [i.state for i in await all_incidents(sessionmaker)] == ["firing"]


async def test_ack_and_resolve_by_hand(sessionmaker: Sessions) -> None:
    signals, clock = ScriptedSignals(), Clock()
    alerts = evaluator(sessionmaker, config(RULES), signals, clock)
    signals.set("channel_sync_lag_cadences", Sample(5.0, {"channel": "a"}))
    [first] = (await alerts.tick()).opened
    async with session_scope(sessionmaker) as session:
        acked = await service.acknowledge(session, first, "ops", "looking")
        assert acked.state == "acknowledged"
    clock.advance(15)
    await alerts.tick()  # still true: stays acknowledged, no duplicate
    async with session_scope(sessionmaker) as session:
        await service.resolve(session, first, "ops", "fixed the token")
    async with session_scope(sessionmaker) as session:
        with pytest.raises(Conflict):
            await service.acknowledge(session, first, "ops")
        with pytest.raises(Conflict):
            await service.resolve(session, first, "ops")
        found, notes = await service.list_incidents(session, states=["resolved"])
        assert [i.id for i in found] == [first]
        assert [n.text for n in notes[first]] == ["looking", "fixed the token"]
    # Still true after a resolve by hand: a new incident (its for is 0 here), never the old.
    clock.advance(15)
    [second] = (await alerts.tick()).opened
    assert second != first
    states = [(i.id, i.state) for i in await all_incidents(sessionmaker)]
    assert states == [(first, "resolved"), (second, "firing")]


async def test_one_open_incident_per_fingerprint(sessionmaker: Sessions) -> None:
    values = {
        "fingerprint": fingerprint("r", {"channel": "a"}),
        "rule": "r",
        "severity": "info",
        "labels": {"channel": "a"},
        "summary": "s",
        "first_seen_at": START,
        "fired_at": START,
        "last_seen_at": START,
    }
    async with session_scope(sessionmaker) as session:
        await repo.add_incident(session, state="resolved", **values)
        await repo.add_incident(session, state="resolved", **values)
        await repo.add_incident(session, state="firing", **values)
    with pytest.raises(IntegrityError):
        async with session_scope(sessionmaker) as session:
            await repo.add_incident(session, state="acknowledged", **values)
    assert len(await all_incidents(sessionmaker)) == 3


async def test_a_storm_is_one_message_per_receiver_and_interval(sessionmaker: Sessions) -> None:
    signals, clock = ScriptedSignals(), Clock()
    alerts = evaluator(sessionmaker, config(RULES), signals, clock)
    lagging = [Sample(9.0, {"channel": f"c{n:03}"}) for n in range(100)]
    signals.set("channel_sync_lag_cadences", *lagging)
    report = await alerts.tick()
    assert len(report.opened) == 100
    [notice] = report.notices
    assert (notice.receiver.name, len(notice.firing), len(notice.new)) == ("log", 100, 100)
    assert notice.lines()[-1] == "… and 80 more (clipwatch incidents list)"

    more = [Sample(9.0, {"channel": f"d{n:03}"}) for n in range(20)]
    signals.set("channel_sync_lag_cadences", *lagging, *more)
    for _ in range(19):  # the group interval (5 min) in 15 s steps: the news waits
        clock.advance(15)
        assert (await alerts.tick()).notices == []
    clock.advance(15)
    [notice] = (await alerts.tick()).notices
    assert (len(notice.firing), len(notice.new)) == (120, 20)

    signals.set("channel_sync_lag_cadences")  # every channel recovers
    clock.advance(300)
    [notice] = (await alerts.tick()).notices
    assert (notice.status, len(notice.resolved)) == ("resolved", 120)
    clock.advance(3600)
    assert (await alerts.tick()).notices == []  # nothing left to say


async def test_still_firing_is_repeated_unless_acknowledged(sessionmaker: Sessions) -> None:
    signals, clock = ScriptedSignals(), Clock()
    alerts = evaluator(sessionmaker, config(RULES), signals, clock)
    signals.set("channel_sync_lag_cadences", Sample(9.0, {"channel": "a"}))
    [incident_id] = (await alerts.tick()).opened
    clock.advance(3599)
    assert (await alerts.tick()).notices == []
    clock.advance(1)
    [notice] = (await alerts.tick()).notices
    assert notice.repeat
    assert not notice.new
    async with session_scope(sessionmaker) as session:
        await service.acknowledge(session, incident_id, "ops")
    clock.advance(7200)
    assert (await alerts.tick()).notices == []


async def test_a_dead_holders_lease_is_taken_over_without_loss_or_duplicate(
    sessionmaker: Sessions,
) -> None:
    signals, clock = ScriptedSignals(), Clock()
    rules = config(RULES)
    first = evaluator(sessionmaker, rules, signals, clock, owner="host:1")
    second = evaluator(sessionmaker, rules, signals, clock, owner="host:2")
    signals.set("outbox_oldest_pending_seconds", STUCK)
    assert (await first.tick()).leader
    assert not (await second.tick()).leader
    clock.advance(45)
    assert (await first.tick()).leader  # pending for 45 s of its 60
    # The holder dies here (never ticks again, never releases).
    clock.advance(LEASE_S - 1)
    assert not (await second.tick()).leader
    clock.advance(1)
    report = await second.tick()  # the lease expired: taken over, and the pending state kept
    assert report.leader
    assert len(report.opened) == 1
    clock.advance(15)
    assert (await second.tick()).opened == []
    # The old holder comes back to life: it is a follower now and writes nothing.
    assert not (await first.tick()).leader
    [incident] = await all_incidents(sessionmaker)
    assert incident.state == "firing"
    signals.set("outbox_oldest_pending_seconds", CLEAR)
    await second.tick()
    clock.advance(60)
    assert (await second.tick()).resolved == [incident.id]
    assert len(await all_incidents(sessionmaker)) == 1
