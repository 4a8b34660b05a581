"""The worker's sync task on the adaptive cadence (twitch/cadence.py; docs/cadence.md).

A tick runs the steps due now, then the loop sleeps until the next one is due, at most
`CadencePolicy.tick` (5 s: a live-state change is picked up that fast). A failed tick
(Twitch, the database unreachable) is tried again after 10 s, 20 s, 40 s … up to
`sync_interval_seconds`. After ticks that changed clips, and at least every
`sync_interval_seconds`, the hot data (channel stats) is recomputed; games clips name are
given names. The task's details keep what the alert rules read (`twitch_auth_error`,
`twitch_budget_remaining`) and what the cadence is doing.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import structlog

from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from clipwatch.monitoring.context import start_job
from clipwatch.runtime.supervisor import TaskState, backoff, describe, wait_for_stop
from clipwatch.runtime.worker import TRANSIENT, Sessions, WorkerStats, _refresh_hot
from clipwatch.twitch import cadence, deletions, sync
from clipwatch.twitch.client import HelixClient

log = structlog.get_logger("clipwatch.worker")
HOT_MIN_S = 30.0  # hot data recomputed at most this often after ticks that changed clips
RETRY_FIRST_S = 10.0


async def cadence_forever(
    client: HelixClient,
    sessionmaker: Sessions,
    stop: asyncio.Event,
    stats: WorkerStats,
    state: TaskState,
    *,
    settings: Settings,
    interval: float,
    policy: cadence.CadencePolicy | None = None,
    cache: CacheManager | None = None,
    deletion_wait: timedelta = deletions.CONFIRM_WAIT,
    ticks: int = 0,
) -> None:
    """Tick until `stop` is set (or `ticks` ticks are done); `stats.passes` counts ticks."""
    policy = policy or cadence.CadencePolicy.from_settings(settings)
    owner = sync.worker_name()
    estimates = cadence.Estimates()
    ledger = cadence.Ledger()
    hot_ttl = max(2 * interval, 60.0)
    hot_at = 0.0
    changed = True  # the hot data of a fresh start is computed after the first tick
    count = 0
    was_late = False
    naming_failed = False
    while not stop.is_set() and (ticks == 0 or count < ticks):
        start_job("sync")  # every line of this tick's steps carries its id
        state.working()
        try:
            if client.auth_error is not None:
                # Ask once whether Twitch takes the credentials again: the channels may all
                # be backing off, and recovery must not wait for them.
                await client.token(renew=True)
            tick = await cadence.sync_due(
                client,
                sessionmaker,
                policy,
                estimates,
                owner=owner,
                deletion_wait=deletion_wait,
                ledger=ledger,
            )
            report = tick.sync
            late = tick.plan.late_live if tick.plan else 0
            if tick.done:
                naming_failed = await _name_games(client, sessionmaker, naming_failed)
        except TRANSIENT as exc:
            stats.failed_passes += 1
            if state.failed(exc):
                log.warning("sync_pass_failed", error=state.last_error)
            stats.last_error = state.last_error
            delay = backoff(state.consecutive_failures, RETRY_FIRST_S, interval)
        else:
            stats.inserted += report.inserted
            stats.last_error = None
            changed = changed or bool(report.inserted or report.updated or report.deleted)
            state.succeeded(
                passes=stats.passes + 1,
                inserted=stats.inserted,
                failed_channels=len(report.failed_channels),
                quarantined=report.quarantined,
                cadence_steps=dict(tick.done),
                cadence_deferred=tick.deferred,
                cadence_live_reserve=round(tick.plan.reserve) if tick.plan else None,
                cadence_live_late=late,
            )
            if late and not was_late:
                # Live channels a whole cadence late: the workers cannot keep up (the budget,
                # the database, too many live channels). Logged once a streak.
                log.warning("sync_live_channels_late", channels=late)
            was_late = bool(late)
            if tick.done:
                log.info(
                    "sync_tick_done",
                    steps=tick.done,
                    deferred=tick.deferred,
                    yielded=tick.yielded,
                    points=tick.points,
                    inserted=report.inserted,
                    updated=report.updated,
                    deleted=report.deleted,
                    failed_channels=len(report.failed_channels),
                    budget_remaining=client.budget.remaining,
                )
            elapsed = time.monotonic() - hot_at
            if cache is not None and ((changed and elapsed >= HOT_MIN_S) or elapsed >= interval):
                await _refresh_hot(cache, sessionmaker, hot_ttl, stats.supervisor.task("hot_data"))
                hot_at, changed = time.monotonic(), False
            # A tick that yielded to a live channel or left steps for want of budget goes on
            # at once; the bucket itself paces the requests.
            now = datetime.now(UTC)
            delay = 0.0 if tick.yielded else cadence.seconds_until(tick.next_due_at, policy, now)
            if tick.deferred and not tick.yielded:
                delay = min(policy.tick.total_seconds(), 1.0)
        state.detail.update(
            twitch_auth_error=client.auth_error, twitch_budget_remaining=client.budget.remaining
        )
        stats.passes += 1
        count += 1
        if ticks == 0 or count < ticks:
            await wait_for_stop(stop, delay)


async def _name_games(client: HelixClient, sessionmaker: Sessions, failing: bool) -> bool:
    """Name the games clips mention; whether it failed (logged once a streak)."""
    try:
        await sync.name_games(client, sessionmaker)
    except TRANSIENT as exc:  # the names follow a later tick; the clips are stored
        if not failing:
            log.warning("games_naming_failed", error=describe(exc))
        return True
    return False
