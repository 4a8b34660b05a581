"""Request rate limits (the `limits` library): shared through Redis, per process without it.

When Redis fails, the limiter counts in this process instead, logs once, and tries Redis
again after `RETRY_REDIS_AFTER` seconds: requests keep flowing, each process enforcing the
limits on its own share of them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

log = structlog.get_logger(__name__)
RETRY_REDIS_AFTER = 5.0
REDIS_TIMEOUT = 0.25  # seconds; a limiter that waits longer than this is worse than none


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until the window resets

    def headers(self) -> dict[str, str]:
        """IETF draft `RateLimit-*` fields (and `Retry-After` when refused)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(self.reset_after, 1))
        return headers


def stricter(a: Decision, b: Decision) -> Decision:
    if a.allowed != b.allowed:
        return a if not a.allowed else b
    return a if a.remaining <= b.remaining else b


class RateLimiter:
    def __init__(self, redis_url: str = "", *, key_prefix: str = "clipwatch") -> None:
        self._local = FixedWindowRateLimiter(MemoryStorage())
        self._shared: FixedWindowRateLimiter | None = None
        if redis_url:
            storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix=f"{key_prefix}:ratelimit",
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
            )
            self._shared = FixedWindowRateLimiter(storage)
        self._shared_down_until = 0.0
        self.degraded = False

    @property
    def backend(self) -> str:
        if self._shared is None:
            return "memory"
        return "memory (redis unavailable)" if self.degraded else "redis"

    async def hit(self, limit: str | RateLimitItem, *key: str) -> Decision:
        item = parse(limit) if isinstance(limit, str) else limit
        if self._shared is not None and time.monotonic() >= self._shared_down_until:
            try:
                decision = await self._hit(self._shared, item, key)
            except Exception as exc:  # any storage failure: count locally instead
                self._shared_down_until = time.monotonic() + RETRY_REDIS_AFTER
                if not self.degraded:
                    self.degraded = True
                    log.warning("rate_limiter_degraded", error=type(exc).__name__)
            else:
                if self.degraded:
                    self.degraded = False
                    log.info("rate_limiter_recovered")
                return decision
        return await self._hit(self._local, item, key)

    @staticmethod
    async def _hit(
        limiter: FixedWindowRateLimiter, item: RateLimitItem, key: tuple[str, ...]
    ) -> Decision:
        allowed = await limiter.hit(item, *key)
        stats = await limiter.get_window_stats(item, *key)
        return Decision(
            allowed,
            item.amount,
            max(stats.remaining, 0),
            max(math.ceil(stats.reset_time - time.time()), 0),
        )
