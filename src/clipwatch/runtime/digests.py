"""Digest routes' schedule as a worker task: every `INTERVAL_S` the process holding the
`digests` lease queues the digest of every route whose latest slot has passed
(discord/digests.py). The outbox's unique key keeps each period to one row, so a second
process, a restart or a pass run twice never posts a digest twice; the lease only spares
the other processes the work."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import leases
from clipwatch.discord.digests import QueueReport, queue_due_digests
from clipwatch.errors import ClipwatchError
from clipwatch.monitoring.context import start_job
from clipwatch.runtime.supervisor import TaskState, backoff, wait_for_stop

log = structlog.get_logger("clipwatch.digests")
Sessions = async_sessionmaker[AsyncSession]
TRANSIENT = (ClipwatchError, SQLAlchemyError, httpx.HTTPError, OSError)
LEASE = "digests"
INTERVAL_S = 30.0
LEASE_TTL = timedelta(seconds=2 * INTERVAL_S + 10)


async def queue_digests_once(
    sessionmaker: Sessions, owner: str, now: datetime | None = None
) -> QueueReport | None:
    """One pass: None when another process holds the lease."""
    now = now or datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        if not await leases.acquire(session, LEASE, owner, now, LEASE_TTL):
            return None
        return await queue_due_digests(session, now)


async def digests_forever(
    sessionmaker: Sessions,
    stop: asyncio.Event,
    state: TaskState,
    *,
    owner: str,
    interval: float = INTERVAL_S,
) -> None:
    """Queue due digests every `interval` seconds until `stop`."""
    try:
        while not stop.is_set():
            start_job("digests")
            state.working()
            delay = interval
            try:
                report = await queue_digests_once(sessionmaker, owner)
            except TRANSIENT as exc:
                if state.failed(exc):
                    log.warning("digest_queue_failed", error=state.last_error)
                delay = backoff(state.consecutive_failures, 5.0, interval)
            else:
                leader = report is not None
                detail: dict[str, object] = {"leader": leader}
                if report is not None:
                    detail["broken_schedules"] = len(report.broken)
                    if report.queued:
                        log.info("digests_queued", digests=report.queued)
                if state.succeeded(**detail):
                    log.info("digest_queue_recovered")
            await wait_for_stop(stop, delay)
    finally:
        try:
            async with session_scope(sessionmaker) as session:
                await leases.release(session, LEASE, owner, datetime.now(UTC))
        except TRANSIENT:
            pass  # the lease expires on its own
