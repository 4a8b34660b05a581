"""The cache manager on its own: both tiers, generations, single flight, the breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from clipwatch.cache.local import Entry, LocalTier
from clipwatch.cache.manager import CacheManager
from tests.conftest import RedisServer, free_port

DEADLINE_S = 10.0


class Counter:
    """A computation that says how often it ran; `gate` holds it until released."""

    def __init__(self, body: bytes = b'{"n":1}', deps: tuple[str, ...] = ("clips",)) -> None:
        self.calls = 0
        self.body = body
        self.deps = deps
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> tuple[bytes, set[str]]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.body, set(self.deps)


async def until(check: Callable[[], bool] | Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"not within {DEADLINE_S} s: {what}"
        await asyncio.sleep(0.01)  # polling interval while waiting on the condition above


def entry(body: bytes, created: float | None = None) -> Entry:
    now = created if created is not None else time.time()
    return Entry(body, '"x"', {}, now, now + 60)


def test_local_tier_is_bounded_by_entries_and_bytes() -> None:
    tier = LocalTier(max_entries=3, max_bytes=10_000)
    for i in range(5):
        tier.put(f"k{i}", entry(b"x" * 10))
    assert len(tier) == 3
    assert tier.evictions == 2
    assert tier.get("k0") is None
    assert tier.get("k4") is not None

    small = LocalTier(max_entries=100, max_bytes=3 * (1_000 + 256))
    for i in range(5):
        small.put(f"k{i}", entry(b"y" * 1_000))
    assert len(small) == 3
    assert small.bytes <= small.max_bytes
    small.put("huge", entry(b"z" * 10_000))  # larger than the whole tier: not kept
    assert small.get("huge") is None


def test_expired_entries_do_not_fill_the_tier() -> None:
    """Many different answers and no write: the expired ones go as new ones come, so the
    tier holds about one TTL's worth, not its byte bound of answers nobody can be given."""
    tier = LocalTier(max_entries=10_000, max_bytes=10**9)
    start = 1_000_000.0
    for i in range(600):  # one new answer a second for ten minutes, each kept 60 s
        tier.put(f"q{i}", entry(b"x" * 1_000, created=start + i), now=start + i)
    assert 59 <= len(tier) <= 61, len(tier)
    assert tier.expired == 600 - len(tier)
    assert tier.bytes == sum(e.size for e in tier._entries.values())
    assert tier.get("q599") is not None
    assert tier.get("q0") is None
    assert tier.evictions == 0


def test_lru_keeps_what_is_read() -> None:
    tier = LocalTier(max_entries=2, max_bytes=10_000)
    tier.put("a", entry(b"1"))
    tier.put("b", entry(b"2"))
    assert tier.get("a") is not None  # now the most recently used
    tier.put("c", entry(b"3"))
    assert tier.get("b") is None
    assert tier.get("a") is not None


async def test_one_computation_per_key_at_a_time() -> None:
    cache = CacheManager()
    compute = Counter()
    compute.gate = asyncio.Event()
    waiting = [asyncio.create_task(cache.get_or_compute("k", compute)) for _ in range(50)]
    await until(lambda: compute.calls == 1, "the first computation started")
    compute.gate.set()
    entries = await asyncio.gather(*waiting)
    assert compute.calls == 1
    assert {e.body for e in entries} == {b'{"n":1}'}
    assert cache.stats.misses == 1
    assert cache.stats.waited == 49


async def test_a_failed_computation_reaches_every_waiter_and_is_not_kept() -> None:
    cache = CacheManager()
    gate = asyncio.Event()

    async def failing() -> tuple[bytes, set[str]]:
        await gate.wait()
        raise LookupError("no such clip")

    waiting = [asyncio.create_task(cache.get_or_compute("k", failing)) for _ in range(3)]
    await until(lambda: cache.stats.waited == 2, "two wait behind the first")
    gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
    assert cache.peek("k") is None


async def test_a_cancelled_computation_leaves_the_waiters_to_compute() -> None:
    """The first asker's request is cancelled (its client went away): the others still get
    an answer, computed anew, instead of being cancelled with it."""
    cache = CacheManager()
    compute = Counter()
    compute.gate = asyncio.Event()
    leader = asyncio.create_task(cache.get_or_compute("k", compute))
    await until(lambda: compute.calls == 1, "the leader computes")
    follower = asyncio.create_task(cache.get_or_compute("k", compute))
    await until(lambda: cache.stats.waited == 1, "the follower waits on it")
    leader.cancel()
    compute.gate.set()
    answer = await follower
    assert answer.body == compute.body
    assert compute.calls == 2
    assert leader.cancelled()


async def test_a_bump_outdates_only_what_depends_on_it() -> None:
    cache = CacheManager()
    clips, channel = Counter(deps=("clips",)), Counter(deps=("ch:1", "catalog"))
    await cache.get_or_compute("all", clips)
    await cache.get_or_compute("one", channel)
    await cache.bump({"ch:2"})
    assert cache.peek("all") is not None
    assert cache.peek("one") is not None
    await cache.bump({"ch:1"})
    assert cache.peek("one") is None  # dropped from the tier, not just skipped
    assert len(cache.local) == 1
    await cache.get_or_compute("one", channel)
    assert channel.calls == 2
    await cache.bump({"clips"})
    assert cache.peek("all") is None


async def test_a_write_during_the_computation_is_not_cached() -> None:
    cache = CacheManager()
    compute = Counter(deps=("clips",))
    compute.gate = asyncio.Event()
    task = asyncio.create_task(cache.get_or_compute("k", compute))
    await until(lambda: compute.calls == 1, "computing")
    await cache.bump({"clips"})  # committed while the answer was being read
    compute.gate.set()
    await task
    assert cache.peek("k") is None


async def test_without_redis_nothing_older_than_the_bound_is_served() -> None:
    cache = CacheManager(staleness=5.0, ttl=60.0)
    fresh = await cache.get_or_compute("k", Counter())
    assert cache.peek("k") is fresh
    fresh.created -= 5.5  # as if computed 5.5 s ago: another process may have written since
    assert cache.peek("k") is None
    assert cache.mode == "memory"


async def test_expired_entries_are_never_served() -> None:
    cache = CacheManager(ttl=60.0)
    answer = await cache.get_or_compute("k", Counter())
    answer.expires = time.time() - 0.001
    assert cache.peek("k") is None


# --- with Redis ------------------------------------------------------------------------------


@pytest.fixture
async def pair(
    redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[CacheManager, CacheManager]]:
    """Two managers sharing one Redis, as two processes would."""
    a = CacheManager(redis_url, prefix=redis_prefix)
    b = CacheManager(redis_url, prefix=redis_prefix)
    await a.start()
    await b.start()
    try:
        await until(lambda: a.feed_is_current() and b.feed_is_current(), "both feeds current")
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_an_answer_computed_by_one_process_is_served_by_the_other(
    pair: tuple[CacheManager, CacheManager],
) -> None:
    a, b = pair
    compute = Counter(deps=("ch:7",))
    first = await a.get_or_compute("k", compute)
    second = await b.get_or_compute("k", compute)
    assert compute.calls == 1
    assert second.body == first.body
    assert second.etag == first.etag
    assert b.stats.hits_redis == 1
    assert a.mode == b.mode == "redis"


async def test_a_bump_in_one_process_reaches_the_other(
    pair: tuple[CacheManager, CacheManager],
) -> None:
    a, b = pair
    compute = Counter(deps=("ch:7",))
    await b.get_or_compute("k", compute)
    assert b.peek("k") is not None
    await a.bump({"ch:7"})
    await until(lambda: b.gens.get("ch:7") == a.gens["ch:7"], "b learns the new generation")
    assert b.peek("k") is None
    assert len(b.local) == 0  # dropped when the bump arrived
    again = await b.get_or_compute("k", compute)
    assert compute.calls == 2
    assert again.stamp == {"ch:7": a.gens["ch:7"]}


async def test_one_computation_across_processes(
    pair: tuple[CacheManager, CacheManager],
) -> None:
    a, b = pair
    compute = Counter()
    compute.gate = asyncio.Event()
    first = asyncio.create_task(a.get_or_compute("k", compute))
    await until(lambda: compute.calls == 1, "a computes")
    second = asyncio.create_task(b.get_or_compute("k", compute))
    await until(lambda: b.stats.lock_waits == 1, "b waits for a's answer instead of computing")
    compute.gate.set()
    await asyncio.gather(first, second)
    assert compute.calls == 1
    assert b.stats.waited == 1


async def test_redis_unreachable_means_memory_only_and_one_log_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    cache = CacheManager(dead, staleness=5.0)
    await cache.start()
    try:
        compute = Counter()
        await cache.get_or_compute("k", compute)
        await cache.bump({"clips"})
        await cache.get_or_compute("k", compute)
        await until(lambda: cache.stats.errors >= 2, "the feed failed too")
        assert compute.calls == 2  # answers keep coming, from the database
        assert cache.mode == "memory (redis unavailable)"
        assert cache.gens["clips"] == 1  # bumped locally
    finally:
        await cache.close()
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("cache_redis_unavailable") == 1


async def test_redis_comes_back_and_sharing_resumes(
    redis_server: RedisServer,
) -> None:
    a = CacheManager(redis_server.url, staleness=2.0)
    b = CacheManager(redis_server.url, staleness=2.0)
    a.breaker.retry_after = b.breaker.retry_after = 0.2
    await a.start()
    await b.start()
    try:
        await until(lambda: a.feed_is_current() and b.feed_is_current(), "feeds current")
        redis_server.stop()
        await until(lambda: not a.feed_is_current(), "a sees Redis gone")
        compute = Counter(deps=("ch:1",))
        await a.get_or_compute("k", compute)  # served, from the computation
        await a.bump({"ch:1"})  # kept to publish later
        redis_server.start()
        await until(lambda: a.feed_is_current() and b.feed_is_current(), "feeds current again")
        await until(lambda: b.gens.get("ch:1") == a.gens.get("ch:1"), "the held bump reached b")
        await a.get_or_compute("k2", compute)
        await b.get_or_compute("k2", compute)
        assert compute.calls == 2  # b took a's answer from Redis: sharing resumed
        assert a.mode == b.mode == "redis"
    finally:
        await a.close()
        await b.close()
