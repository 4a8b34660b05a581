"""Get Streams polling: every tracked channel's live state, 100 channels a request.

Every `live_poll_seconds` the process holding the `live_poll` lease asks Get Streams for
every tracked channel (app token, batches of 100 `user_id`: one point per 100 channels a
round) and tells twitch/live.py what it saw. A channel in the answer is live; a channel
absent from a batch's complete answer is offline. A batch that failed (an error, a page
missing) changes nothing for its channels, and a record naming no channel makes its batch's
absences unknown (whose record was it?). How a poll and EventSub agree: twitch/live.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import leases, live_state, sync_state
from clipwatch.errors import ClipwatchError
from clipwatch.monitoring.context import start_job
from clipwatch.monitoring.metrics import LIVE_CHANNELS, STREAMS_POLLS
from clipwatch.runtime.supervisor import TaskState, backoff, describe, wait_for_stop
from clipwatch.twitch import live
from clipwatch.twitch.client import HelixClient, TwitchError
from clipwatch.twitch.helix import REF_ID_MAX, HelixStream, usable_id
from clipwatch.twitch.sync import worker_name

log = structlog.get_logger("clipwatch.live")
Sessions = async_sessionmaker[AsyncSession]
TRANSIENT = (ClipwatchError, SQLAlchemyError, httpx.HTTPError, OSError)
LEASE = "live_poll"
BATCH = 100
RETRY_FIRST_S = 5.0


@dataclass
class PollReport:
    """One polling round."""

    channels: int = 0
    requests: int = 0
    failed_batches: int = 0
    live: int = 0  # channels Get Streams showed live
    online: int = 0  # changes stored
    offline: int = 0
    updated: int = 0
    bad_records: int = 0
    unsure: int = 0  # channels left as they were: their batch's answer was not readable in full
    last_error: str | None = None


@dataclass(frozen=True)
class _Answer:
    seen: dict[str, HelixStream]
    unsure: set[str]  # asked channels whose absence means nothing this round


def read_streams(asked: Sequence[str], payloads: Sequence[Any]) -> tuple[_Answer, int]:
    """What one batch's complete answer says (pure): the live streams of the channels
    asked, the channels it says nothing sure about, and how many records were bad."""
    wanted = set(asked)
    seen: dict[str, HelixStream] = {}
    bad = 0
    blind = False
    for payload in payloads:
        try:
            stream = HelixStream.model_validate(payload)
        except ValidationError:
            bad += 1
            owner = (
                usable_id(payload.get("user_id"), REF_ID_MAX) if isinstance(payload, dict) else None
            )
            blind = blind or owner not in wanted
            continue
        if stream.user_id in wanted:
            seen[stream.user_id] = stream
    unsure = wanted - seen.keys() if blind else set()
    return _Answer(seen, unsure), bad


async def poll_live(
    client: HelixClient,
    sessionmaker: Sessions,
    *,
    eventsub_grace: timedelta,
    final_pass_after: timedelta,
) -> PollReport:
    """One round over every tracked channel."""
    report = PollReport()
    async with session_scope(sessionmaker) as session:
        ids = [c.id for c in await sync_state.tracked_channels(session)]
    report.channels = len(ids)
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        report.requests += 1
        try:
            payloads = await client.get_streams(batch)
        except TwitchError as exc:
            report.failed_batches += 1
            report.unsure += len(batch)
            report.last_error = describe(exc)
            continue
        at = datetime.now(UTC)
        answer, bad = read_streams(batch, payloads)
        report.bad_records += bad
        report.unsure += len(answer.unsure)
        await _store(sessionmaker, batch, answer, at, report, eventsub_grace, final_pass_after)
    return report


async def _store(
    sessionmaker: Sessions,
    batch: Sequence[str],
    answer: _Answer,
    at: datetime,
    report: PollReport,
    grace: timedelta,
    final_pass_after: timedelta,
) -> None:
    async with session_scope(sessionmaker) as session:
        stored = await live_state.states_of(session, list(batch))
    for channel_id, stream in answer.seen.items():
        report.live += 1
        said = stream.model_fields_set
        was_live = channel_id in stored and stored[channel_id].live
        changed = await live.went_online(
            sessionmaker,
            channel_id,
            stream_id=stream.id,
            started_at=stream.started_at,
            stream_type=stream.type or None,
            source="poll",
            title=stream.title if "title" in said else None,
            game_id=stream.game_id or ("" if "game_id" in said else None),
            game_name=stream.game_name if "game_name" in said else None,
            viewer_count=stream.viewer_count if "viewer_count" in said else None,
            language=stream.language or None,
            at=at,
            eventsub_grace=grace,
            final_pass_after=final_pass_after,
        )
        if changed:
            report.online += not was_live
            report.updated += was_live
    absent = [c for c in batch if c not in answer.seen and c not in answer.unsure]
    checked = []
    for channel_id in absent:
        if channel_id in stored and stored[channel_id].live:
            report.offline += await live.went_offline(
                sessionmaker,
                channel_id,
                source="poll",
                at=at,
                final_pass_after=final_pass_after,
                eventsub_grace=grace,
            )
        else:
            checked.append(channel_id)
    if checked:
        async with session_scope(sessionmaker) as session:
            await live_state.mark_checked(session, checked, at, source="poll")


async def live_poll_forever(
    settings: Settings,
    client: HelixClient,
    sessionmaker: Sessions,
    stop: asyncio.Event,
    state: TaskState,
    *,
    owner: str | None = None,
) -> None:
    """Poll Get Streams every `live_poll_seconds` until `stop` (while this process, or
    `owner`, holds the lease: one poller for all processes)."""
    interval = float(settings.live_poll_seconds)
    grace = timedelta(seconds=2 * interval)
    final_pass_after = timedelta(seconds=settings.stream_end_pass_seconds)
    ttl = timedelta(seconds=2 * interval + 10)
    owner = owner or worker_name()
    try:
        while not stop.is_set():
            start_job("live_poll")
            state.working()
            began = time.monotonic()
            delay = interval
            try:
                async with session_scope(sessionmaker) as session:
                    leader = await leases.acquire(session, LEASE, owner, datetime.now(UTC), ttl)
                if leader:
                    report = await poll_live(
                        client,
                        sessionmaker,
                        eventsub_grace=grace,
                        final_pass_after=final_pass_after,
                    )
                    async with session_scope(sessionmaker) as session:
                        LIVE_CHANNELS.set(await live_state.count_live(session))
            except TRANSIENT as exc:
                STREAMS_POLLS.labels("failed").inc()
                if state.failed(exc):
                    log.warning("live_poll_failed", error=state.last_error)
                delay = backoff(state.consecutive_failures, RETRY_FIRST_S, interval)
            else:
                if not leader:
                    state.succeeded(leader=False)
                elif report.failed_batches:
                    STREAMS_POLLS.labels("failed").inc()
                    if state.failed(
                        f"{report.failed_batches} Get Streams batches failed: {report.last_error}"
                    ):
                        log.warning("live_poll_failed", error=state.last_error)
                    delay = backoff(state.consecutive_failures, RETRY_FIRST_S, interval)
                else:
                    STREAMS_POLLS.labels("ok").inc()
                    if state.succeeded(leader=True, **_detail(report)):
                        log.info("live_poll_recovered")
                if leader and (report.online or report.offline or report.bad_records):
                    log.info("live_poll_done", **_detail(report))
            await wait_for_stop(stop, max(0.0, delay - (time.monotonic() - began)))
    finally:
        try:
            async with session_scope(sessionmaker) as session:
                await leases.release(session, LEASE, owner, datetime.now(UTC))
        except TRANSIENT:
            pass  # the lease expires on its own


def _detail(report: PollReport) -> dict[str, Any]:
    return {
        "channels": report.channels,
        "live": report.live,
        "online": report.online,
        "offline": report.offline,
        "bad_records": report.bad_records,
        "unsure": report.unsure,
    }
