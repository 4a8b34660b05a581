"""The signals alert rules watch: each a list of current values, with labels.

From the database (so the evaluator sees every process of the scaled setup): worker
tasks, channel syncs, the outbox, routes. From this process: Redis's reachability and, when
the metrics module is loaded, the database pool and the API's error ratio (read from
prometheus_client's registry by name; a missing metric is a missing signal).

A signal that cannot be read this time is left out of the answer, and the evaluator keeps
its rules' state as it was (unknown is neither firing nor clear). A signal that is read and
holds no value (no failing worker, say) is clear.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from prometheus_client import REGISTRY, CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.cache.health import redis_state
from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import signals as queries
from clipwatch.monitoring.logging import describe_error

log = structlog.get_logger("clipwatch.alerts")

# A worker row older than this is a worker gone for good (status stops showing it too);
# its tasks stop counting as down, so a replaced worker's incident resolves.
WORKER_SHOWN_FOR = timedelta(hours=1)
DEAD_LETTER_WINDOW = timedelta(hours=1)
MIN_REQUESTS = 20  # fewer API requests between two evaluations say nothing of an error ratio

SIGNALS = {
    "twitch_auth_failing": "workers whose last sync pass found Twitch refusing the app "
    "credentials (fields: worker, error)",
    "twitch_budget_remaining": "the fewest points left in Twitch's rate-limit bucket that a "
    "worker reported after its last pass (fields: worker)",
    "channel_sync_lag_cadences": "per tracked channel (label channel): time since its last "
    "successful sync step, in its cadence (live or offline) (fields: lag_minutes, live, error)",
    "worker_task_stale_seconds": "per worker task not stopped (labels worker, task): seconds "
    "since its last heartbeat",
    "outbox_oldest_pending_seconds": "age of the oldest pending outbox row, 0 when none "
    "(fields: pending)",
    "dead_letters_last_hour": "deliveries that gave up in the last hour",
    "route_disabled": "per route disabled by a problem (label route; fields: name, reason)",
    "redis_down": "1 when the configured Redis does not answer a ping, else 0",
    "db_pool_saturation": "database connections in use over the pool's capacity (fields: in_use)",
    "api_error_ratio": "share of this process's API answers that were 5xx since the last "
    "evaluation (fields: requests, errors, percent)",
}


@dataclass(frozen=True)
class Sample:
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict)


Signals = dict[str, list[Sample]]
SignalSource = Callable[[datetime], Awaitable[Signals]]


@dataclass
class SignalContext:
    live_sync_s: float = 60.0  # CLIPWATCH_LIVE_SYNC_SECONDS
    offline_sync_s: float = 900.0  # CLIPWATCH_OFFLINE_SYNC_SECONDS
    redis_url: str = ""
    pool_capacity: int | None = None  # PostgreSQL: pool size + overflow
    registry: CollectorRegistry = REGISTRY


class SignalReader:
    """Reads every signal; keeps the API counters of its last read (the error ratio is
    taken between two reads)."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], context: SignalContext
    ) -> None:
        self.sessionmaker = sessionmaker
        self.context = context
        self._http_before: tuple[float, float] | None = None
        self._failing: set[str] = set()

    async def __call__(self, now: datetime) -> Signals:
        found: Signals = {}
        await self._guarded("database", found, self._database(now, found))
        await self._guarded("redis_down", found, self._redis(found))
        await self._guarded("metrics", found, self._metrics(found))
        return found

    async def _guarded(self, name: str, found: Signals, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception as exc:
            if name not in self._failing:
                log.warning("alert_signal_unreadable", signal=name, error=describe_error(exc))
            self._failing.add(name)
        else:
            self._failing.discard(name)

    async def _database(self, now: datetime, found: Signals) -> None:
        async with session_scope(self.sessionmaker) as session:
            tasks = await queries.recent_worker_tasks(session, now - WORKER_SHOWN_FOR)
            channels = await queries.tracked_channel_syncs(session)
            pending, oldest = await queries.outbox_pending(session)
            dead = await queries.dead_since(session, now - DEAD_LETTER_WINDOW)
            routes = await queries.disabled_routes(session)
        found |= worker_signals(tasks, now)
        found["channel_sync_lag_cadences"] = channel_lag(
            channels, now, self.context.live_sync_s, self.context.offline_sync_s
        )
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        found["outbox_oldest_pending_seconds"] = [Sample(round(age), fields={"pending": pending})]
        found["dead_letters_last_hour"] = [Sample(float(dead))]
        found["route_disabled"] = [
            Sample(
                1.0,
                {"route": str(r["id"])},
                {"name": r["name"], "reason": r["disabled_reason"]},
            )
            for r in routes
        ]

    async def _redis(self, found: Signals) -> None:
        if not self.context.redis_url:
            found["redis_down"] = []
            return
        state = await redis_state(self.context.redis_url)
        found["redis_down"] = [Sample(1.0 if state == "down" else 0.0)]

    async def _metrics(self, found: Signals) -> None:
        values = read_registry(
            self.context.registry, ("clipwatch_db_pool_connections", "clipwatch_http_requests")
        )
        capacity = self.context.pool_capacity
        pool = values.get("clipwatch_db_pool_connections")
        if capacity and pool is not None:
            in_use = sum(v for labels, v in pool if labels.get("state") == "in_use")
            found["db_pool_saturation"] = [
                Sample(round(in_use / capacity, 3), fields={"in_use": int(in_use)})
            ]
        requests = values.get("clipwatch_http_requests")
        if requests is not None:
            total = sum(v for _, v in requests)
            errors = sum(v for labels, v in requests if labels.get("status_class") == "5xx")
            before, self._http_before = self._http_before, (total, errors)
            if before is not None:
                found["api_error_ratio"] = [error_ratio(total - before[0], errors - before[1])]


def error_ratio(requests: float, errors: float) -> Sample:
    if requests < MIN_REQUESTS or requests <= 0:
        return Sample(0.0, fields={"requests": int(requests), "errors": int(errors), "percent": 0})
    ratio = errors / requests
    fields = {"requests": int(requests), "errors": int(errors), "percent": round(ratio * 100, 1)}
    return Sample(round(ratio, 4), fields=fields)


def read_registry(
    registry: CollectorRegistry, names: tuple[str, ...]
) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The samples of the named metrics (counters by their `_total` samples), by name."""
    wanted = set(names)
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in registry.collect():
        if family.name not in wanted:
            continue
        samples = found.setdefault(family.name, [])
        for sample in family.samples:
            if sample.name in (family.name, f"{family.name}_total"):
                samples.append((dict(sample.labels), float(sample.value)))
    return found


def worker_signals(tasks: Any, now: datetime) -> Signals:
    """Stale tasks; and, from the sync tasks' reports, Twitch's auth and budget."""
    stale = []
    auth_failing: list[tuple[str, str]] = []
    budgets: list[tuple[float, str]] = []
    for task in tasks:
        if task.state == "stopped":
            continue
        age = max(0.0, (now - task.heartbeat_at).total_seconds())
        stale.append(Sample(round(age), {"worker": task.worker, "task": task.task}))
        detail = task.detail or {}
        if detail.get("twitch_auth_error"):
            auth_failing.append((task.worker, str(detail["twitch_auth_error"])))
        remaining = detail.get("twitch_budget_remaining")
        if isinstance(remaining, int | float) and not isinstance(remaining, bool):
            budgets.append((float(remaining), task.worker))
    auth = Sample(0.0)
    if auth_failing:
        worker, error = auth_failing[0]
        auth = Sample(float(len(auth_failing)), fields={"worker": worker, "error": error})
    found: Signals = {
        "worker_task_stale_seconds": stale,
        "twitch_auth_failing": [auth],
        "twitch_budget_remaining": [],
    }
    if budgets:
        remaining, worker = min(budgets)
        found["twitch_budget_remaining"] = [Sample(remaining, fields={"worker": worker})]
    return found


def channel_lag(
    channels: list[dict[str, Any]], now: datetime, live_s: float, offline_s: float
) -> list[Sample]:
    """Each channel's time since its last successful step, in its own cadence (twitch/
    cadence.py: a live channel is read every `live_s`, an offline one every `offline_s`)."""
    samples = []
    for channel in channels:
        since = channel["last_success_at"] or channel["added_at"]
        if since is None:
            continue
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        lag = max(0.0, (now - since).total_seconds())
        live = bool(channel.get("live"))
        cadence = live_s if live else offline_s
        samples.append(
            Sample(
                round(lag / max(cadence, 1.0), 2),
                {"channel": channel["login"] or channel["id"]},
                {
                    "lag_minutes": round(lag / 60),
                    "live": live,
                    "error": channel["last_error"] or "no error recorded",
                },
            )
        )
    return samples
