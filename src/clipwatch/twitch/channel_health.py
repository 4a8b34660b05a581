"""How a channel's sync steps went: a failing channel costs itself, never the pass.

A failed step is recorded on the channel's `channel_sync` row (one short line, no secrets)
and the channel waits before its next try: 1 minute after the first failure, doubling up
to 30 minutes. A step that succeeds clears the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import sync_state
from clipwatch.monitoring.logging import describe_error
from clipwatch.monitoring.metrics import CHANNEL_SYNC_FAILURES

BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(minutes=30)
ERROR_MAX = 300


class UnreadableChannel(Exception):
    """Every clip Twitch returned for the channel's step was unreadable: an error, since a
    channel that only sends what we cannot read is not being archived."""


def retry_delay(failures: int) -> timedelta:
    """How long a channel waits after `failures` failed steps in a row."""
    doublings = min(max(failures - 1, 0), 16)
    return min(BACKOFF_FIRST * (1 << doublings), BACKOFF_MAX)


def describe_failure(exc: BaseException) -> str:
    return describe_error(exc, ERROR_MAX)


async def due_channels(
    sessionmaker: async_sessionmaker[AsyncSession], channel_ids: Sequence[str], now: datetime
) -> list[str]:
    """The channels whose backoff (if any) is over, in the given order."""
    async with session_scope(sessionmaker) as session:
        states = await sync_state.states_of(session, channel_ids)
    waits = {c: s.next_try_at for c, s in states.items() if s.next_try_at is not None}
    return [c for c in channel_ids if c not in waits or waits[c] <= now]


async def record_outcome(
    sessionmaker: async_sessionmaker[AsyncSession], channel_id: str, error: str | None
) -> None:
    """Note a step's success (clearing the error) or failure (with its next try)."""
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        state = await sync_state.get_state(session, channel_id)
        if error is None:
            state.last_success_at = now
            state.last_error = None
            state.last_error_at = None
            state.consecutive_failures = 0
            state.next_try_at = None
            return
        CHANNEL_SYNC_FAILURES.labels(channel_id).inc()
        state.consecutive_failures = (state.consecutive_failures or 0) + 1
        state.last_error = error
        state.last_error_at = now
        state.next_try_at = now + retry_delay(state.consecutive_failures)
