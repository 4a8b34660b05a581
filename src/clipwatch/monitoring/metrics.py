"""Every Prometheus metric of clipwatch, defined once here (docs/monitoring.md, Metrics).

Names are `clipwatch_<noun>_<unit>`; every label takes a bounded set of values: HTTP routes
are templates (`/api/v1/clips/{clip_id}`, and `unmatched` for the rest), channels are the
tracked ones, statuses and outcomes come from short lists.

Three kinds of sources:
- counters and gauges updated where things happen (HTTP, Twitch, Discord, deliveries);
- collectors that read, at scrape time, what this process already holds in memory (cache
  counters, database pool, worker tasks) — nothing is counted twice on the hot path;
- a snapshot of what lives in the database (outbox, per-channel sync, quarantine, dead
  letters), read by the worker on a cadence (runtime/metrics_snapshot.py) and published
  here. A scrape never waits on the database.

Each process exposes its own registry (`/metrics` on the app, `clipwatch worker
--metrics-port`); sums across processes are Prometheus's job.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "REGISTRY", "exposition"]

UNMATCHED_ROUTE = "unmatched"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- HTTP -------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "clipwatch_http_requests",
    "HTTP requests answered, by method, route template and status class",
    ["method", "route", "status_class"],
)
HTTP_DURATION = Histogram(
    "clipwatch_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template",
    ["method", "route", "status_class"],
    buckets=HTTP_BUCKETS,
)

# --- Twitch -----------------------------------------------------------------------------------

TWITCH_REQUESTS = Counter(
    "clipwatch_twitch_requests",
    "Requests to Twitch (Helix and the token endpoint), by endpoint and status "
    "(`error`: no answer)",
    ["endpoint", "status"],
)
TWITCH_BUDGET = Gauge(
    "clipwatch_twitch_budget_remaining",
    "Points left in Twitch's rate-limit bucket, as the last answer said",
)
TWITCH_RATE_LIMITED = Counter("clipwatch_twitch_rate_limited", "429 answers from Twitch")
TWITCH_TOKEN_RENEWALS = Counter(
    "clipwatch_twitch_token_renewals", "App tokens obtained again (expired, rejected or invalid)"
)
TWITCH_AUTH_FAILURES = Counter(
    "clipwatch_twitch_auth_failures",
    "Twitch refusing the client credentials, or rejecting a fresh app token",
)
CHANNEL_SYNC_FAILURES = Counter(
    "clipwatch_channel_sync_failures",
    "Failed sync steps of a tracked channel (in this process)",
    ["channel_id"],
)

# --- live state, EventSub (twitch/eventsub.py, twitch/live.py) ------------------------------------

LIVE_CHANNELS = Gauge(
    "clipwatch_channels_live", "Tracked channels live as this process last stored it"
)
STREAMS_POLLS = Counter(
    "clipwatch_streams_polls",
    "Get Streams polling rounds (every tracked channel, 100 a request), by outcome: ok, failed",
    ["outcome"],
)
LIVE_CHANGES = Counter(
    "clipwatch_live_changes",
    "Live-state changes stored, by change (online, offline, update) and source (poll, eventsub)",
    ["change", "source"],
)
EVENTSUB_CONNECTED = Gauge(
    "clipwatch_eventsub_connected",
    "1 while this process holds a welcomed EventSub socket, else 0",
)
EVENTSUB_SUBSCRIPTIONS = Gauge(
    "clipwatch_eventsub_subscriptions", "EventSub subscriptions enabled on this process's socket"
)
EVENTSUB_COST = Gauge(
    "clipwatch_eventsub_cost",
    "EventSub cost: total (used) and max (Twitch's max_total_cost)",
    ["kind"],
)
EVENTSUB_MESSAGES = Counter(
    "clipwatch_eventsub_messages",
    "EventSub messages received, by type (session_welcome, session_keepalive, notification, "
    "session_reconnect, revocation, duplicate, unknown)",
    ["type"],
)
EVENTSUB_RECONNECTS = Counter(
    "clipwatch_eventsub_reconnects",
    "EventSub socket reconnects, by reason (handover, keepalive, closed:<code>, error)",
    ["reason"],
)

# --- the clip stream (GET /api/v1/stream) ---------------------------------------------------------

SSE_CLIENTS = Gauge("clipwatch_sse_clients", "Server-Sent Events clients connected to this process")
SSE_EVENTS = Counter(
    "clipwatch_sse_events",
    "Events written to SSE clients, by event (clip, clip.updated, clip.deleted, channel.live)",
    ["event"],
)
SSE_DROPPED = Counter(
    "clipwatch_sse_dropped_clients",
    "SSE clients this process dropped, by reason (slow: queue full, limit: too many clients)",
    ["reason"],
)

# --- Discord and the outbox -------------------------------------------------------------------

DELIVERIES = Counter(
    "clipwatch_deliveries",
    "Outbox deliveries handled, by outcome: sent, retried (an attempt spent), "
    "rate_limited (waiting, no attempt spent), dead",
    ["outcome"],
)
DELIVERY_RECORDS = Counter(
    "clipwatch_delivery_records",
    "Settled delivery outcomes (sent, dead) whose write waited for the database, by outcome: "
    "delayed (written after it came back), lost (given up: the row may be sent again)",
    ["outcome"],
)
MESSAGE_EDITS = Counter(
    "clipwatch_message_edits",
    "Changes of posted Discord messages (a clip deleted on Twitch, a view milestone), by kind "
    "(edit, delete) and outcome: sent, missing (already gone in Discord: done), retried, "
    "rate_limited, rejected, gone (route disabled), failed (building it raised)",
    ["kind", "outcome"],
)
ROUTE_POSTS = Counter(
    "clipwatch_route_posts",
    "Digest and trending posts, by kind (digest, trending) and outcome: queued, sent, empty "
    "(a digest period without clips: nothing posted), retried, rejected, gone, failed",
    ["kind", "outcome"],
)
DISCORD_RATE_LIMITED = Counter(
    "clipwatch_discord_rate_limited",
    "429 answers from Discord, by scope: user (the webhook's bucket), shared, global, "
    "cloudflare (a ban for invalid requests)",
    ["scope"],
)
DISCORD_SETUP_COMMANDS = Counter(
    "clipwatch_discord_setup_commands",
    "/clipwatch commands answered, by command (link, follow, unfollow, list, other) and "
    "outcome: done, refused (the user must act: a permission, the link, an untracked "
    "channel), failed (Discord's bot API or clipwatch failed)",
    ["command", "outcome"],
)

# --- incidents (set by monitoring.alerts) -----------------------------------------------------

INCIDENTS_OPEN = Gauge(
    "clipwatch_incidents_open", "Incidents not resolved (firing or acknowledged)", ["severity"]
)

# --- unhandled errors (monitoring.errors) ----------------------------------------------------

UNHANDLED_ERRORS = Counter(
    "clipwatch_unhandled_errors",
    "Unhandled errors recorded by error tracking, by source: api, or worker:<task>",
    ["source"],
)
ERROR_TRACKING_FAILURES = Counter(
    "clipwatch_error_tracking_failures",
    "Unhandled errors that could not be stored in error_group (database unreachable or slow)",
)

# --- database pool ----------------------------------------------------------------------------

DB_POOL_WAITS = Counter(
    "clipwatch_db_pool_waits",
    "Connection checkouts that found the pool full (no idle connection, overflow used up) "
    "and had to wait",
)
DB_POOL_WAIT_SECONDS = Counter(
    "clipwatch_db_pool_wait_seconds", "Time spent waiting for a connection of a full pool"
)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def http_method(method: str) -> str:
    return method if method in HTTP_METHODS else "other"


class HttpRecorder:
    """The children of the HTTP metrics per (method, route, class), kept so a request costs
    two dictionary lookups, not label parsing."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (http_method(method), route, status_class(status))
        children = self._children.get(key)
        if children is None:
            with self._lock:
                children = self._children.setdefault(
                    key, (HTTP_REQUESTS.labels(*key), HTTP_DURATION.labels(*key))
                )
        children[0].inc()
        children[1].observe(seconds)


HTTP = HttpRecorder()


def count_twitch_request(endpoint: str, status: int | None) -> None:
    TWITCH_REQUESTS.labels(endpoint, "error" if status is None else str(status)).inc()


def discord_scope(*, cloudflare: bool, is_global: bool, shared: bool) -> str:
    if cloudflare:
        return "cloudflare"
    if is_global:
        return "global"
    return "shared" if shared else "user"


# --- what this process holds: cache, pools, worker tasks --------------------------------------


class _CacheStats(Protocol):
    hits_local: int
    hits_redis: int
    misses: int
    errors: int
    waited: int


class _LocalTier(Protocol):
    bytes: int
    evictions: int

    def __len__(self) -> int: ...


class TrackedCache(Protocol):
    @property
    def stats(self) -> _CacheStats: ...

    @property
    def local(self) -> _LocalTier: ...

    @property
    def redis(self) -> Any: ...


class TrackedTask(Protocol):
    name: str
    state: str
    restarts: int
    consecutive_failures: int
    last_success_at: Any


class TrackedSupervisor(Protocol):
    tasks: dict[str, Any]


TASK_STATES = ("starting", "running", "idle", "failing", "restarting", "stopped")

_caches: weakref.WeakSet[Any] = weakref.WeakSet()
_engines: weakref.WeakSet[Any] = weakref.WeakSet()
_supervisor: list[weakref.ReferenceType[Any]] = []


# What caches that are gone had counted: the counters stay monotonic when one is collected.
_retired_cache_counts: dict[str, int] = {}


def _cache_counts(cache: TrackedCache) -> dict[str, int]:
    """The counters of one cache manager, by `metric:tier`."""
    stats = cache.stats
    return {
        "hits:local": stats.hits_local,
        "hits:redis": stats.hits_redis,
        "misses:local": stats.hits_redis + stats.misses + stats.waited,
        "misses:redis": stats.misses if cache.redis is not None else 0,
        "evictions:local": cache.local.evictions,
        "errors:redis": stats.errors,
    }


def _retire_cache(counts: Any) -> None:
    for key, count in counts().items():
        _retired_cache_counts[key] = _retired_cache_counts.get(key, 0) + count


class _CountsOf:
    """What a finalizer keeps of a cache: its stats and tiers, never the manager itself."""

    def __init__(self, cache: TrackedCache) -> None:
        self.stats, self.local, self.redis = cache.stats, cache.local, cache.redis

    def __call__(self) -> dict[str, int]:
        return _cache_counts(self)


def track_cache(cache: TrackedCache) -> None:
    """Count this cache manager's figures in the process's cache metrics (and, once it is
    collected, what it had counted)."""
    _caches.add(cache)
    weakref.finalize(cache, _retire_cache, _CountsOf(cache))


def track_supervisor(supervisor: TrackedSupervisor) -> None:
    """The worker's tasks as metrics (the newest supervisor of the process: one per worker)."""
    _supervisor[:] = [weakref.ref(supervisor)]


def track_engine(engine: Any) -> None:
    """The engine's pool in the pool metrics, and its waits counted. `engine`: an
    AsyncEngine (or a sync Engine)."""
    sync_engine = getattr(engine, "sync_engine", engine)
    _engines.add(sync_engine)
    _count_pool_waits(sync_engine.pool)


def _count_pool_waits(pool: Any) -> None:
    """Wrap this pool's checkout: a checkout that finds no idle connection and no overflow
    left waits in SQLAlchemy's queue (QueuePool._do_get); count it and its time."""
    do_get = getattr(pool, "_do_get", None)
    if do_get is None or not hasattr(pool, "_max_overflow") or getattr(pool, "_cw_counted", False):
        return

    def counted_do_get() -> Any:
        queue = getattr(pool, "_pool", None)
        full = (
            pool._max_overflow > -1
            and pool._overflow >= pool._max_overflow
            and queue is not None
            and queue.empty()
        )
        if not full:
            return do_get()
        started = time.perf_counter()
        try:
            return do_get()
        finally:
            DB_POOL_WAITS.inc()
            DB_POOL_WAIT_SECONDS.inc(time.perf_counter() - started)

    pool._do_get = counted_do_get
    pool._cw_counted = True


class ProcessCollector(Collector):
    """Cache, pool and worker-task figures, read from memory at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield from self._cache()
        yield from self._pool()
        yield from self._tasks()

    def describe(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        return self.collect()

    def _cache(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        hits = CounterMetricFamily(
            "clipwatch_cache_hits", "Cached answers found, by tier", labels=["tier"]
        )
        misses = CounterMetricFamily(
            "clipwatch_cache_misses",
            "Lookups a tier could not answer (local: went on to Redis or computed; redis: "
            "computed)",
            labels=["tier"],
        )
        size = GaugeMetricFamily(
            "clipwatch_cache_bytes", "Bytes held by the in-process tier", labels=["tier"]
        )
        entries = GaugeMetricFamily(
            "clipwatch_cache_entries", "Entries held by the in-process tier", labels=["tier"]
        )
        evictions = CounterMetricFamily(
            "clipwatch_cache_evictions",
            "Entries dropped to stay within the tier's entry and byte bounds",
            labels=["tier"],
        )
        errors = CounterMetricFamily(
            "clipwatch_cache_errors", "Redis operations of the cache that failed", labels=["tier"]
        )
        caches = list(_caches)
        counts = dict(_retired_cache_counts)
        for cache in caches:
            for key, count in _cache_counts(cache).items():
                counts[key] = counts.get(key, 0) + count
        for family, name in ((hits, "hits"), (misses, "misses")):
            for tier in ("local", "redis"):
                family.add_metric([tier], counts.get(f"{name}:{tier}", 0))
        evictions.add_metric(["local"], counts.get("evictions:local", 0))
        errors.add_metric(["redis"], counts.get("errors:redis", 0))
        size.add_metric(["local"], sum(c.local.bytes for c in caches))
        entries.add_metric(["local"], sum(len(c.local) for c in caches))
        yield from (hits, misses, size, entries, evictions, errors)

    def _pool(self) -> Iterator[GaugeMetricFamily]:
        connections = GaugeMetricFamily(
            "clipwatch_db_pool_connections",
            "Database connections of this process's pools: in_use (checked out), idle",
            labels=["state"],
        )
        in_use = idle = 0
        for engine in list(_engines):
            pool = engine.pool
            checked_out = getattr(pool, "checkedout", None)
            checked_in = getattr(pool, "checkedin", None)
            if checked_out is not None and checked_in is not None:
                in_use += checked_out()
                idle += checked_in()
        connections.add_metric(["in_use"], in_use)
        connections.add_metric(["idle"], idle)
        yield connections

    def _tasks(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        state = GaugeMetricFamily(
            "clipwatch_worker_task_state",
            "1 for each worker task's current state (starting, running, idle, failing, "
            "restarting, stopped), 0 for the others",
            labels=["task", "state"],
        )
        restarts = CounterMetricFamily(
            "clipwatch_worker_task_restarts",
            "Times a worker task died and was restarted",
            labels=["task"],
        )
        failures = GaugeMetricFamily(
            "clipwatch_worker_task_consecutive_failures",
            "Failed passes of a worker task in a row",
            labels=["task"],
        )
        success = GaugeMetricFamily(
            "clipwatch_worker_task_last_success_timestamp_seconds",
            "When a worker task's last pass succeeded (Unix time)",
            labels=["task"],
        )
        supervisor = _supervisor[0]() if _supervisor else None
        for task in list(supervisor.tasks.values()) if supervisor is not None else []:
            for name in TASK_STATES:
                state.add_metric([task.name, name], 1.0 if task.state == name else 0.0)
            restarts.add_metric([task.name], task.restarts)
            failures.add_metric([task.name], task.consecutive_failures)
            if task.last_success_at is not None:
                success.add_metric([task.name], task.last_success_at.timestamp())
        yield from (state, restarts, failures, success)


# --- what lives in the database: a snapshot the worker refreshes -------------------------------


@dataclass(frozen=True)
class ChannelFigures:
    channel_id: str
    login: str
    clips: int
    newest_seen_at: float | None  # Unix time of the newest stored clip's discovery
    last_success_at: float | None
    consecutive_failures: int
    backfill_progress: float  # 0 to 1
    live: bool = False  # its cadence: live channels are read often, offline ones rarely


@dataclass(frozen=True)
class DatabaseSnapshot:
    taken_at: float
    channels: tuple[ChannelFigures, ...] = ()
    quarantined: int = 0
    # route state (enabled, disabled) -> (pending deliveries, oldest one's creation, Unix time)
    outbox: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    dead_letters: int = 0
    routes_disabled: int = 0


ROUTE_STATES = ("enabled", "disabled")
_snapshot: list[DatabaseSnapshot] = []


def publish_snapshot(snapshot: DatabaseSnapshot) -> None:
    _snapshot[:] = [snapshot]


def current_snapshot() -> DatabaseSnapshot | None:
    return _snapshot[0] if _snapshot else None


class DatabaseCollector(Collector):
    """The latest database snapshot as metrics; ages (lag, oldest pending) are computed at
    scrape time from the stored instants, so they keep growing between refreshes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families(None, 0.0)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self._families(current_snapshot(), self.clock())

    def _families(self, snap: DatabaseSnapshot | None, now: float) -> list[GaugeMetricFamily]:
        per_channel = ["channel_id"]
        info = GaugeMetricFamily(
            "clipwatch_channel_info",
            "1 per tracked channel, naming it",
            labels=["channel_id", "login"],
        )
        lag = GaugeMetricFamily(
            "clipwatch_channel_sync_lag_seconds",
            "Now minus the discovery of the channel's newest stored clip",
            labels=per_channel,
        )
        success = GaugeMetricFamily(
            "clipwatch_channel_last_success_timestamp_seconds",
            "When the channel's last sync step succeeded (Unix time)",
            labels=per_channel,
        )
        failing = GaugeMetricFamily(
            "clipwatch_channel_consecutive_failures",
            "The channel's failed sync steps in a row",
            labels=per_channel,
        )
        clips = GaugeMetricFamily(
            "clipwatch_channel_clips", "Clips stored for the channel", labels=per_channel
        )
        backfill = GaugeMetricFamily(
            "clipwatch_channel_backfill_progress_ratio",
            "Share of the channel's history backfilled (1: done)",
            labels=per_channel,
        )
        live = GaugeMetricFamily(
            "clipwatch_channel_live",
            "1 while the channel is live (its sync cadence is the live one), else 0",
            labels=per_channel,
        )
        quarantined = GaugeMetricFamily(
            "clipwatch_quarantined_clips", "Clips held in quarantine (could not be stored)"
        )
        pending = GaugeMetricFamily(
            "clipwatch_outbox_pending",
            "Deliveries waiting in the outbox, by the route's state",
            labels=["route_state"],
        )
        oldest = GaugeMetricFamily(
            "clipwatch_outbox_oldest_pending_age_seconds",
            "Age of the oldest delivery waiting in the outbox (0 when none), by route state",
            labels=["route_state"],
        )
        dead = GaugeMetricFamily(
            "clipwatch_dead_letters", "Deliveries that will never be sent (dead), stored"
        )
        disabled = GaugeMetricFamily(
            "clipwatch_routes_disabled", "Notification routes disabled (a gone webhook, ...)"
        )
        taken = GaugeMetricFamily(
            "clipwatch_db_snapshot_timestamp_seconds",
            "When the worker last read the figures above from the database (Unix time)",
        )
        families = [
            info, lag, success, failing, clips, backfill, live,
            quarantined, pending, oldest, dead, disabled, taken,
        ]  # fmt: skip
        if snap is None:
            return families
        for c in snap.channels:
            info.add_metric([c.channel_id, c.login], 1.0)
            if c.newest_seen_at is not None:
                lag.add_metric([c.channel_id], max(0.0, now - c.newest_seen_at))
            if c.last_success_at is not None:
                success.add_metric([c.channel_id], c.last_success_at)
            failing.add_metric([c.channel_id], c.consecutive_failures)
            clips.add_metric([c.channel_id], c.clips)
            backfill.add_metric([c.channel_id], c.backfill_progress)
            live.add_metric([c.channel_id], 1.0 if c.live else 0.0)
        quarantined.add_metric([], snap.quarantined)
        for state in ROUTE_STATES:
            count, oldest_at = snap.outbox.get(state, (0, None))
            pending.add_metric([state], count)
            oldest.add_metric([state], 0.0 if oldest_at is None else max(0.0, now - oldest_at))
        dead.add_metric([], snap.dead_letters)
        disabled.add_metric([], snap.routes_disabled)
        taken.add_metric([], snap.taken_at)
        return families


REGISTRY.register(ProcessCollector())
REGISTRY.register(DatabaseCollector())


def exposition() -> bytes:
    """This process's metrics in Prometheus's text format."""
    return generate_latest(REGISTRY)


def serve_metrics(host: str, port: int) -> Callable[[], None]:
    """This process's metrics over HTTP on host:port (a thread); returns how to stop it."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
