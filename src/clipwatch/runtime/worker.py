"""The worker: sync passes over every tracked channel, and Discord deliveries beside them.

`clipwatch worker` runs it alone; `clipwatch serve` runs it inside the API process unless
`--no-worker`. Its tasks run under a `Supervisor` (runtime/supervisor.py): each reports its
state, last success and last error, and one that dies is restarted with a backoff. A failed
pass (Twitch, Discord or the database unreachable) is retried with a backoff that starts
short and grows to the pass interval: the worker outlives an unreachable Twitch or Discord.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.cache.manager import CacheManager
from clipwatch.clips.stats import refresh_hot_stats
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import sync_state
from clipwatch.discord.delivery import RECORD_WAITS, deliver_due
from clipwatch.discord.sender import sender_from_settings
from clipwatch.errors import ClipwatchError
from clipwatch.monitoring.context import start_job
from clipwatch.monitoring.errors import ErrorTracker
from clipwatch.runtime.alerts import alerts_forever
from clipwatch.runtime.digests import digests_forever
from clipwatch.runtime.eventsub_task import eventsub_forever
from clipwatch.runtime.live_poll import live_poll_forever
from clipwatch.runtime.metrics_snapshot import snapshot_forever
from clipwatch.runtime.supervisor import Supervisor, TaskState, backoff, wait_for_stop
from clipwatch.twitch import deletions, sync
from clipwatch.twitch.client import HelixClient
from clipwatch.waiting import cancel_and_wait

log = structlog.get_logger("clipwatch.worker")
Sessions = async_sessionmaker[AsyncSession]
# What a pass may fail with that the next pass may not: outside services and the database.
TRANSIENT = (ClipwatchError, SQLAlchemyError, httpx.HTTPError, OSError)
DELIVERY_POLL_S = 2.0
DELIVERY_CAP_S = 60.0  # the longest pause between delivery passes that fail
# After failed delivery passes, the pause between the database answering again and the next
# claim: another worker's pass that sent a message while the database was away is waiting to
# record it (discord/delivery.py `_record_outcome`, trying every 0.25 s). Its claim lapsed
# if the outage was longer; claimed at once, the row would be posted a second time.
RECOVERY_GRACE_S = 5.0
SYNC_RETRY_FIRST_S = 10.0  # Twitch's budget: never two passes closer than this


@dataclass
class WorkerStats:
    """What the worker did so far (for logs and /api/v1/status)."""

    passes: int = 0
    failed_passes: int = 0
    inserted: int = 0
    messages: int = 0
    last_error: str | None = None
    running: bool = False
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(sync.worker_name()))


async def deliver_forever(
    settings: Settings,
    sessionmaker: Sessions,
    stop: asyncio.Event,
    stats: WorkerStats,
    state: TaskState,
) -> None:
    """Deliver due notifications until `stop` is set."""
    sender = sender_from_settings(settings)
    claim = timedelta(seconds=settings.delivery_claim_seconds)
    recovering = False  # a pass failed (the database away, say): settle before claiming
    try:
        while not stop.is_set():
            start_job("deliveries")
            state.working()
            try:
                if recovering:
                    await _settle(sessionmaker, stop)
                    recovering = False
                    if stop.is_set():
                        break
                report = await deliver_due(sessionmaker, sender, settings.signing_key, claim=claim)
            except TRANSIENT as exc:
                recovering = True
                if state.failed(exc):
                    log.warning("delivery_pass_failed", error=state.last_error)
                delay = backoff(state.consecutive_failures, DELIVERY_POLL_S, DELIVERY_CAP_S)
                await wait_for_stop(stop, delay)
                continue
            stats.messages += report.messages
            detail = {
                "discord_paused": sender.paused,
                "discord_429s": sender.stats.rate_limited,
                "records_delayed": RECORD_WAITS["delayed"],
                "records_lost": RECORD_WAITS["lost"],
            }
            if state.succeeded(messages=stats.messages, **detail):
                log.info("delivery_pass_recovered")
            if report.messages:
                log.info("deliveries_sent", **vars(report))
            else:
                await wait_for_stop(stop, DELIVERY_POLL_S)
    finally:
        await sender.aclose()


async def _settle(sessionmaker: Sessions, stop: asyncio.Event) -> None:
    """Once the database answers (raises while it does not), the grace before claiming
    again: the records of sends made while it was away land first (RECOVERY_GRACE_S)."""
    async with session_scope(sessionmaker) as session:
        await session.execute(text("SELECT 1"))
    log.info("delivery_claims_resume_after_grace", grace_s=RECOVERY_GRACE_S)
    await wait_for_stop(stop, RECOVERY_GRACE_S)


async def sync_forever(
    client: HelixClient,
    sessionmaker: Sessions,
    stop: asyncio.Event,
    stats: WorkerStats,
    state: TaskState,
    *,
    interval: float,
    passes: int = 0,
    cache: CacheManager | None = None,
    deletion_wait: timedelta = deletions.CONFIRM_WAIT,
) -> None:
    """Sync every tracked channel (backfilling new ones), pass after pass; then recompute
    the hot data (channel stats) the pass outdated. A failed pass is tried again after
    10 s, 20 s, 40 s … up to the interval."""
    hot_ttl = max(2 * interval, 60.0)
    while not stop.is_set() and (passes == 0 or stats.passes < passes):
        start_job("sync")
        state.working()
        try:
            if client.auth_error is not None:
                # Ask once whether Twitch takes the credentials again: the channels may all
                # be backing off, and recovery must not wait for them.
                await client.token(renew=True)
            report = await sync.sync_all(
                client, sessionmaker, backfill=True, deletion_wait=deletion_wait
            )
        except TRANSIENT as exc:
            stats.failed_passes += 1
            if state.failed(exc):
                log.warning("sync_pass_failed", error=state.last_error)
            stats.last_error = state.last_error
            delay = backoff(state.consecutive_failures, SYNC_RETRY_FIRST_S, interval)
        else:
            stats.inserted += report.inserted
            stats.last_error = None
            # A pass with failing channels is still a pass: each channel's failure is on
            # its own sync state (and in status), and the others were synced.
            state.succeeded(
                passes=stats.passes + 1,
                inserted=stats.inserted,
                failed_channels=len(report.failed_channels),
                quarantined=report.quarantined,
            )
            log.info(
                "sync_pass_done",
                inserted=report.inserted,
                updated=report.updated,
                deleted=report.deleted,
                restored=report.restored,
                quarantined=report.quarantined,
                failed_channels=len(report.failed_channels),
                backing_off=len(report.backing_off),
                skipped=len(report.skipped_channels),
                budget_waited_s=round(client.budget.waited, 1),
            )
            if cache is not None:
                hot = stats.supervisor.task("hot_data")
                await _refresh_hot(cache, sessionmaker, hot_ttl, hot)
            delay = interval
        # For the alert rules (monitoring/alerts/signals.py), through `worker_task`.
        state.detail.update(
            twitch_auth_error=client.auth_error, twitch_budget_remaining=client.budget.remaining
        )
        stats.passes += 1
        if passes == 0 or stats.passes < passes:
            await wait_for_stop(stop, delay)


async def _refresh_hot(
    cache: CacheManager, sessionmaker: Sessions, ttl: float, state: TaskState
) -> None:
    state.working()
    try:
        async with session_scope(sessionmaker) as session:
            channel_ids = [c.id for c in await sync_state.tracked_channels(session)]
        refreshed = await refresh_hot_stats(cache, sessionmaker, channel_ids, ttl=ttl)
    except TRANSIENT as exc:
        if state.failed(exc):
            log.warning("hot_data_failed", error=state.last_error)
    else:
        state.succeeded(entries=refreshed)
        if refreshed:
            log.info("hot_data_refreshed", entries=refreshed)


async def run_worker(
    settings: Settings,
    client: HelixClient,
    sessionmaker: Sessions,
    *,
    interval: float,
    passes: int = 0,
    stop: asyncio.Event | None = None,
    stats: WorkerStats | None = None,
    cache: CacheManager | None = None,
) -> WorkerStats:
    """Sync and deliver until `stop` is set (or `passes` sync passes are done).

    A sync pass in progress when `stop` is set is cancelled: each window commits with its
    progress mark, so the next start resumes where it stopped.
    """
    stop = stop or asyncio.Event()
    stats = stats or WorkerStats()
    supervisor = stats.supervisor
    if supervisor.errors is None:
        supervisor.errors = ErrorTracker(sessionmaker, "worker")
    stats.running = True
    done = asyncio.Event()

    async def deliveries(state: TaskState) -> None:
        await deliver_forever(settings, sessionmaker, done, stats, state)

    async def syncing_body(state: TaskState) -> None:
        if passes == 0:  # the adaptive cadence (docs/cadence.md); `--passes N`: N full passes
            from clipwatch.runtime.sync_loop import cadence_forever  # it imports this module

            await cadence_forever(
                client,
                sessionmaker,
                stop,
                stats,
                state,
                settings=settings,
                interval=interval,
                cache=cache,
                deletion_wait=timedelta(minutes=settings.deletion_confirm_minutes),
            )
            return
        await sync_forever(
            client,
            sessionmaker,
            stop,
            stats,
            state,
            interval=interval,
            passes=passes,
            cache=cache,
            deletion_wait=timedelta(minutes=settings.deletion_confirm_minutes),
        )

    async def alerting(state: TaskState) -> None:
        await alerts_forever(settings, sessionmaker, done, state, owner=supervisor.worker)

    async def live_polling(state: TaskState) -> None:
        await live_poll_forever(settings, client, sessionmaker, done, state)

    async def eventsubbing(state: TaskState) -> None:
        await eventsub_forever(settings, sessionmaker, done, state, owner=supervisor.worker)

    async def digesting(state: TaskState) -> None:
        await digests_forever(sessionmaker, done, state, owner=supervisor.worker)

    async def snapshots(state: TaskState) -> None:
        await snapshot_forever(sessionmaker, done, state, interval=settings.metrics_refresh_seconds)

    delivering = asyncio.create_task(supervisor.run("deliveries", deliveries, done))
    evaluating = asyncio.create_task(supervisor.run("alerts", alerting, done))
    polling = asyncio.create_task(supervisor.run("live_poll", live_polling, done))
    # Digest routes' slots, queued by the one process with the `digests` lease.
    scheduling = asyncio.create_task(supervisor.run("digests", digesting, done))
    # The EventSub socket, held by the one process with the `eventsub` lease.
    socket = asyncio.create_task(supervisor.run("eventsub", eventsubbing, done))
    reporting = asyncio.create_task(supervisor.report_forever(sessionmaker, done))
    # The database's figures for the metrics (outbox, channels, quarantine): read here, on
    # a cadence, so a scrape never waits on the database.
    metering = (
        asyncio.create_task(supervisor.run("metrics", snapshots, done))
        if settings.metrics_enabled
        else None
    )
    try:
        syncing = asyncio.create_task(supervisor.run("sync", syncing_body, stop))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({syncing, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        await cancel_and_wait(syncing)
    finally:
        done.set()
        await delivering
        await evaluating
        await polling
        await scheduling
        await socket
        await reporting
        if metering is not None:
            await metering
        stats.running = False
        await supervisor.try_report(sessionmaker)  # the tasks now say "stopped"
    return stats
