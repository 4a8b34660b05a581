"""The cache manager: an in-process tier in front of a shared Redis tier, kept correct by
generations.

Every cached answer is stamped with the generation of each thing it was computed from
(`clips`, `catalog`, `sync`, `ch:<channel id>`). A write bumps those generations after its
transaction commits (db.engine.session_scope calls `bump`); with Redis the new values go to a
hash and out on pub/sub, so every process learns of them and drops what they outdate. An entry
whose stamp differs from the current generations is never served.

The staleness bound: an entry older than `staleness` seconds is served only while this
process's invalidation feed is confirmed to be current, that is, a PING sent through the
pub/sub connection less than `staleness` seconds ago has come back (Redis answers in order,
so every bump published before that PING has been applied). Without Redis, or while Redis is
down, there is no feed: entries then live at most `staleness` seconds. docs/cache.md
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass

import orjson
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from clipwatch.cache.local import Entry, LocalTier, etag_of
from clipwatch.config import Settings
from clipwatch.monitoring.metrics import track_cache
from clipwatch.waiting import bounded, cancel_and_wait

log = structlog.get_logger("clipwatch.cache")

REDIS_TIMEOUT_S = 0.25
RETRY_AFTER_S = 5.0  # how long the breaker stays open before Redis is tried again
HEARTBEAT_S = 0.5  # how often the feed is confirmed
CLOSE_STEP_S = 5.0  # each step of close() at most (then it is logged and left)
LOCK_S = 3.0  # a computation's cross-process lock lives at most this long
LOCK_WAIT_S = 1.0  # how long another process's computation is awaited before computing anyway
LOCK_POLL_S = 0.02


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _digest(key: str) -> str:
    """Redis keys of bounded length, whatever the query string."""
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


Compute = Callable[[], Awaitable[tuple[bytes, Iterable[str]]]]
# Told which generations changed (this process's bumps and, through the feed, every other
# process's); `ANY_CHANGE` alone when the feed (re)connected and anything may have changed.
Listener = Callable[[Collection[str]], None]
ANY_CHANGE = "*"


class Breaker:
    """Open after a Redis failure: Redis is skipped until `retry_after` has passed. The first
    failure and the recovery are logged once each."""

    def __init__(self, retry_after: float = RETRY_AFTER_S) -> None:
        self.retry_after = retry_after
        self.open_until = 0.0
        self.failed = False

    def allows(self) -> bool:
        return time.monotonic() >= self.open_until

    def failure(self, exc: BaseException) -> None:
        if not self.failed:
            log.warning("cache_redis_unavailable", error=f"{type(exc).__name__}: {exc}")
        self.failed = True
        self.open_until = time.monotonic() + self.retry_after

    def success(self) -> None:
        if self.failed:
            log.info("cache_redis_recovered")
        self.failed = False
        self.open_until = 0.0


@dataclass
class CacheStats:
    hits_local: int = 0
    hits_redis: int = 0
    misses: int = 0
    errors: int = 0
    waited: int = 0  # answers taken from another computation of the same key
    lock_waits: int = 0  # times another process was computing the key already

    @property
    def hits(self) -> int:
        return self.hits_local + self.hits_redis


class CacheManager:
    def __init__(
        self,
        redis_url: str = "",
        *,
        prefix: str = "clipwatch",
        ttl: float = 60.0,
        staleness: float = 5.0,
        max_entries: int = 20_000,
        max_bytes: int = 64 * 2**20,
    ) -> None:
        self.ttl = ttl
        self.staleness = staleness
        self.local = LocalTier(max_entries, max_bytes)
        self.stats = CacheStats()
        self.breaker = Breaker()
        self.redis: Redis | None = None
        if redis_url:
            self.redis = Redis.from_url(
                redis_url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
                health_check_interval=0,
            )
        track_cache(self)
        self._gens_key = f"{prefix}:cache:gens"
        self._channel = f"{prefix}:cache:bumps"
        self._entry_prefix = f"{prefix}:cache:e:"
        self._lock_prefix = f"{prefix}:cache:l:"
        self.gens: dict[str, int] = {}
        self.confirmed_at = float("-inf")  # monotonic time up to which every bump was applied
        self._unpublished: set[str] = set()
        self._flights: dict[str, asyncio.Future[Entry]] = {}
        self._feed: asyncio.Task[None] | None = None
        self._listeners: list[Listener] = []

    # --- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Follow other processes' bumps (only with Redis)."""
        if self.redis is not None and self._feed is None:
            self._feed = asyncio.create_task(self._follow())

    async def close(self) -> None:
        # Bounded: a feed cancelled mid-read of a broken connection once held `serve`'s stop
        # past its 30 s (its pubsub's close waited on the connection); a stop must end.
        if self._feed is not None:
            feed, self._feed = self._feed, None
            if not await bounded(cancel_and_wait(feed), CLOSE_STEP_S):
                log.warning("cache_close_slow", step="invalidation feed", seconds=CLOSE_STEP_S)
        if self.redis is not None and not await bounded(self.redis.aclose(), CLOSE_STEP_S):
            log.warning("cache_close_slow", step="redis connections", seconds=CLOSE_STEP_S)

    @property
    def mode(self) -> str:
        """`memory` (no Redis), `redis`, or `memory (redis unavailable)`."""
        if self.redis is None:
            return "memory"
        return "redis" if self.feed_is_current() else "memory (redis unavailable)"

    def add_listener(self, listener: Listener) -> None:
        """Call `listener` with every change of generations this process learns of (the clip
        stream wakes on it). It runs inline and must not block."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, changed: Collection[str]) -> None:
        for listener in list(self._listeners):
            try:
                listener(changed)
            except Exception:  # a listener's bug must not stop invalidation
                log.exception("cache_listener_failed")

    # --- reading ------------------------------------------------------------------------------

    def feed_is_current(self) -> bool:
        return time.monotonic() - self.confirmed_at <= self.staleness

    def is_valid(self, entry: Entry, now: float | None = None) -> bool:
        now = now or time.time()
        if now > entry.expires:
            return False
        age = now - entry.created
        gens = self.gens
        for dep, gen in entry.stamp.items():
            if gens.get(dep, 0) != gen:
                return False
        return age <= self.staleness or self.feed_is_current()

    def holds(self, key: str) -> bool:
        """This process has a valid answer for `key` (not counted as a hit)."""
        entry = self.local.get(key)
        return entry is not None and self.is_valid(entry)

    def peek(self, key: str) -> Entry | None:
        """A valid entry from this process's tier (no waiting, no Redis): the fast path."""
        entry = self.local.get(key)
        if entry is None:
            return None
        if self.is_valid(entry):
            self.stats.hits_local += 1
            return entry
        self.local.drop(key)
        return None

    async def get_or_compute(self, key: str, compute: Compute) -> Entry:
        """The answer for `key`: from this process, from Redis, or computed once (one
        computation per key in this process; a short Redis lock across processes)."""
        entry = self.peek(key)
        if entry is not None:
            return entry
        flight = self._flights.get(key)
        if flight is not None:
            self.stats.waited += 1
            try:
                return await asyncio.shield(flight)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if flight.cancelled() and task is not None and not task.cancelling():
                    # The computation was cancelled with its own request, not this one.
                    return await self.get_or_compute(key, compute)
                raise
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            entry = await self._fill(key, compute)
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            flight.set_result(entry)
            return entry
        finally:
            del self._flights[key]

    def _entry(
        self,
        body: bytes,
        deps: Iterable[str],
        stamp_of: dict[str, int],
        started: float,
        ttl: float | None,
    ) -> Entry:
        stamp = {d: stamp_of.get(d, 0) for d in deps}
        return Entry(body, etag_of(body), stamp, started, started + (ttl or self.ttl))

    async def store(
        self,
        key: str,
        body: bytes,
        deps: Iterable[str],
        stamp_of: dict[str, int],
        *,
        started: float,
        ttl: float | None = None,
    ) -> Entry:
        """Keep an answer whose computation began at `started` under the generations
        `stamp_of` (taken before reading), here and in Redis: the worker's hot data."""
        entry = self._entry(body, deps, stamp_of, started, ttl)
        if self.is_valid(entry):  # not outdated by a bump during the computation
            self.local.put(key, entry)
            await self._redis_put(key, entry)
        return entry

    async def _fill(self, key: str, compute: Compute) -> Entry:
        shared = await self._redis_get(key)
        if shared is not None:
            self.stats.hits_redis += 1
            self.local.put(key, shared)
            return shared
        locked = await self._lock(key)
        try:
            if not locked:
                self.stats.lock_waits += 1
                shared = await self._await_other(key)
                if shared is not None:
                    self.stats.waited += 1
                    self.local.put(key, shared)
                    return shared
            self.stats.misses += 1
            stamp_of = dict(self.gens)
            started = time.time()
            body, deps = await compute()
            return await self.store(key, body, deps, stamp_of, started=started)
        finally:
            if locked:
                await self._unlock(key)

    # --- invalidation -------------------------------------------------------------------------

    async def bump(self, deps: Iterable[str]) -> None:
        """New generations for `deps` (after a commit that changed them)."""
        wanted = set(deps)
        if not wanted:
            return
        if self.redis is not None and self.breaker.allows():
            try:
                await self._publish(wanted | self._unpublished)
            except (RedisError, OSError) as exc:
                self.stats.errors += 1
                self.breaker.failure(exc)
            else:
                self.breaker.success()
                self._unpublished.clear()
                return
        # Here only: Redis is down or absent. Other processes learn nothing, which is why
        # without a current feed they serve nothing older than the staleness bound.
        for dep in wanted:
            self.gens[dep] = self.gens.get(dep, 0) + 1
        if self.redis is not None:
            self._unpublished |= wanted
        self._drop_outdated(wanted)
        self._notify(wanted)

    async def _publish(self, deps: set[str]) -> None:
        assert self.redis is not None
        ordered = sorted(deps)
        async with self.redis.pipeline(transaction=True) as pipe:
            for dep in ordered:
                pipe.hincrby(self._gens_key, dep, 1)
            values = await pipe.execute()
        news = dict(zip(ordered, (int(v) for v in values), strict=True))
        await self.redis.publish(self._channel, orjson.dumps(news))
        self._apply(news)

    def _apply(self, news: dict[str, int], *, replace: bool = False) -> None:
        if replace:  # a (re)connected feed: Redis's values are the truth from here on
            self.gens = dict(news)
            self.local.clear()
            self._notify((ANY_CHANGE,))
            return
        changed = [dep for dep, gen in news.items() if gen > self.gens.get(dep, 0)]
        for dep in changed:
            self.gens[dep] = news[dep]
        self._drop_outdated(changed)
        if changed:
            self._notify(changed)

    def _drop_outdated(self, changed: Iterable[str]) -> None:
        gens = self.gens
        self.local.drop_where(
            changed,
            lambda entry: any(gens.get(dep, 0) != gen for dep, gen in entry.stamp.items()),
        )

    async def _follow(self) -> None:
        """Apply every process's bumps; confirm the feed with PINGs through it."""
        assert self.redis is not None
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                subscribed_at = time.monotonic()
                current = await self.redis.hgetall(self._gens_key)
                self._apply({_text(k): int(v) for k, v in current.items()}, replace=True)
                if self._unpublished:
                    await self._publish(set(self._unpublished))
                    self._unpublished.clear()
                self.confirmed_at = subscribed_at
                self.breaker.success()
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                self.confirmed_at = float("-inf")
                self.stats.errors += 1
                self.breaker.failure(exc)
                await asyncio.sleep(min(1.0, self.staleness / 2))  # before reconnecting
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _listen(self, pubsub: PubSub) -> None:
        sent_at: float | None = None
        serial = 0
        last_ping = float("-inf")
        while True:
            now = time.monotonic()
            if sent_at is None and now - last_ping >= HEARTBEAT_S:
                serial += 1
                await pubsub.ping(f"cw-{serial}")
                sent_at = last_ping = now
            if sent_at is not None and now - sent_at > self.staleness:
                raise TimeoutError("the invalidation feed stopped answering")
            message = await pubsub.get_message(timeout=HEARTBEAT_S / 2)
            if message is None:
                continue
            if message["type"] == "message":
                self._apply({k: int(v) for k, v in orjson.loads(message["data"]).items()})
            elif message["type"] == "pong" and sent_at is not None:
                self.confirmed_at = sent_at
                sent_at = None

    # --- the Redis tier -----------------------------------------------------------------------

    async def _redis_get(self, key: str) -> Entry | None:
        if self.redis is None or not self.breaker.allows() or not self.feed_is_current():
            return None
        try:
            raw = await self.redis.get(self._entry_prefix + _digest(key))
        except (RedisError, OSError) as exc:
            self.stats.errors += 1
            self.breaker.failure(exc)
            return None
        if not isinstance(raw, bytes):
            return None
        head, _, body = raw.partition(b"\n")
        meta = orjson.loads(head)
        entry = Entry(body, meta["e"], meta["s"], meta["t"], meta["x"])
        return entry if self.is_valid(entry) else None

    async def _redis_put(self, key: str, entry: Entry) -> None:
        if self.redis is None or not self.breaker.allows() or not self.feed_is_current():
            return
        head = orjson.dumps(
            {"e": entry.etag, "s": entry.stamp, "t": entry.created, "x": entry.expires}
        )
        ttl_ms = max(1, int((entry.expires - time.time()) * 1000))
        try:
            await self.redis.set(
                self._entry_prefix + _digest(key),
                head + b"\n" + entry.body,
                px=ttl_ms,
            )
        except (RedisError, OSError) as exc:
            self.stats.errors += 1
            self.breaker.failure(exc)

    async def _lock(self, key: str) -> bool:
        """True when this process computes `key` (or Redis is not there to ask)."""
        if self.redis is None or not self.breaker.allows() or not self.feed_is_current():
            return True
        try:
            got = await self.redis.set(
                self._lock_prefix + _digest(key), b"1", nx=True, px=int(LOCK_S * 1000)
            )
        except (RedisError, OSError) as exc:
            self.stats.errors += 1
            self.breaker.failure(exc)
            return True
        return bool(got)

    async def _unlock(self, key: str) -> None:
        if self.redis is None or not self.breaker.allows():
            return
        try:
            await self.redis.delete(self._lock_prefix + _digest(key))
        except (RedisError, OSError) as exc:
            self.stats.errors += 1
            self.breaker.failure(exc)

    async def _await_other(self, key: str) -> Entry | None:
        """Another process computes `key`: its answer, if it comes within LOCK_WAIT_S."""
        until = time.monotonic() + LOCK_WAIT_S
        while time.monotonic() < until:
            await asyncio.sleep(LOCK_POLL_S)  # polling interval for the other's answer
            shared = await self._redis_get(key)
            if shared is not None:
                return shared
            if self.redis is None or not self.breaker.allows():
                return None
        return None


def cache_from_settings(settings: Settings) -> CacheManager:
    return CacheManager(
        settings.redis_url,
        prefix=settings.redis_key_prefix,
        ttl=settings.cache_ttl_seconds,
        staleness=settings.cache_staleness_seconds,
        max_entries=settings.cache_max_entries,
        max_bytes=settings.cache_max_mb * 2**20,
    )
