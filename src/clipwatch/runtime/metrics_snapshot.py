"""The database's figures for the metrics, read by the worker on a cadence: a scrape reads
the published snapshot and never waits on the database (monitoring/metrics.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import monitoring
from clipwatch.monitoring.context import job
from clipwatch.monitoring.metrics import ChannelFigures, DatabaseSnapshot, publish_snapshot
from clipwatch.runtime.supervisor import TaskState, wait_for_stop
from clipwatch.twitch.sync import TWITCH_EPOCH

log = structlog.get_logger("clipwatch.worker")
Sessions = async_sessionmaker[AsyncSession]


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def backfill_progress(row: monitoring.ChannelRow) -> float:
    """Share of the channel's history stored: from its creation (as the backfill walks it)
    to when its backfill began."""
    if row.backfill_completed_at is not None:
        return 1.0
    if row.backfill_until is None or row.backfill_done_until is None:
        return 0.0
    start = max(row.account_created_at or TWITCH_EPOCH, TWITCH_EPOCH)
    total = (row.backfill_until - start).total_seconds()
    if total <= 0:
        return 1.0
    done = (row.backfill_done_until - start).total_seconds()
    return min(1.0, max(0.0, done / total))


async def read_snapshot(sessionmaker: Sessions) -> DatabaseSnapshot:
    async with session_scope(sessionmaker) as session:
        channels = await monitoring.channel_figures(session)
        outbox = await monitoring.outbox_figures(session)
        dead = await monitoring.dead_letters(session)
        disabled = await monitoring.routes_disabled(session)
        quarantined = await monitoring.quarantined(session)
    return DatabaseSnapshot(
        taken_at=time.time(),
        channels=tuple(
            ChannelFigures(
                channel_id=row.channel_id,
                login=row.login or row.channel_id,
                clips=row.clips,
                newest_seen_at=_epoch(row.newest_seen_at),
                last_success_at=_epoch(row.last_success_at),
                consecutive_failures=row.consecutive_failures,
                backfill_progress=backfill_progress(row),
                live=row.live,
            )
            for row in channels
        ),
        quarantined=quarantined,
        outbox={state: (n, _epoch(oldest)) for state, (n, oldest) in outbox.items()},
        dead_letters=dead,
        routes_disabled=disabled,
    )


async def refresh_snapshot(sessionmaker: Sessions, state: TaskState) -> None:
    """One refresh; a failure (the database away) keeps the previous snapshot, whose
    timestamp metric then shows its age."""
    state.working()
    with job("metrics"):
        try:
            publish_snapshot(await read_snapshot(sessionmaker))
        except (SQLAlchemyError, OSError) as exc:
            if state.failed(exc):
                log.warning("metrics_snapshot_failed", error=state.last_error)
            return
        if state.succeeded():
            log.info("metrics_snapshot_recovered")


async def snapshot_forever(
    sessionmaker: Sessions, stop: asyncio.Event, state: TaskState, *, interval: float
) -> None:
    """Refresh the snapshot every `interval` seconds until `stop` is set."""
    while not stop.is_set():
        await refresh_snapshot(sessionmaker, state)
        await wait_for_stop(stop, interval)
