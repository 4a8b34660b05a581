"""Request rate limits (`limits` items and storage): shared through Redis, per process
without it.

When Redis fails, the limiter counts in this process instead, logs once, and tries Redis
again after `RETRY_REDIS_AFTER` seconds: requests keep flowing, each process enforcing the
limits on its own share of them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis.asyncio as redis_asyncio
import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from redis.commands.core import AsyncScript

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


# KEYS[1] the window's counter; ARGV: window seconds, cost. One round trip per hit:
# the count after this hit and the milliseconds until the window resets.
_HIT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1]) * 1000
end
return {n, ttl}
"""


class RateLimiter:
    """Fixed windows (as `limits`' FixedWindowRateLimiter counts them). In memory through
    `limits`' storage; in Redis through one script per hit, so a request's limit costs one
    round trip instead of the three of `hit` + `get_window_stats`."""

    def __init__(self, redis_url: str = "", *, key_prefix: str = "clipwatch") -> None:
        self._local = MemoryStorage()
        self._prefix = f"{key_prefix}:ratelimit:"
        self._redis: redis_asyncio.Redis | None = None
        self._hit_script: AsyncScript | None = None
        if redis_url:
            self._redis = redis_asyncio.from_url(
                redis_url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
            )
            self._hit_script = self._redis.register_script(_HIT)
        self._shared_down_until = 0.0
        self.degraded = False

    @property
    def backend(self) -> str:
        if self._redis is None:
            return "memory"
        return "memory (redis unavailable)" if self.degraded else "redis"

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def hit(self, limit: str | RateLimitItem, *key: str) -> Decision:
        item = parse(limit) if isinstance(limit, str) else limit
        name = item.key_for(*key)
        if self._hit_script is not None and time.monotonic() >= self._shared_down_until:
            try:
                count, reset_ms = await self._hit_script(
                    keys=[self._prefix + name], args=[item.get_expiry(), 1]
                )
            except Exception as exc:  # any Redis failure: count locally instead
                self._shared_down_until = time.monotonic() + RETRY_REDIS_AFTER
                if not self.degraded:
                    self.degraded = True
                    log.warning("rate_limiter_degraded", error=type(exc).__name__)
            else:
                if self.degraded:
                    self.degraded = False
                    log.info("rate_limiter_recovered")
                return _decision(item, int(count), int(reset_ms) / 1000)
        count = await self._local.incr(name, item.get_expiry())
        reset_at = await self._local.get_expiry(name)
        return _decision(item, count, reset_at - time.time())


def _decision(item: RateLimitItem, count: int, reset_after: float) -> Decision:
    return Decision(
        count <= item.amount,
        item.amount,
        max(item.amount - count, 0),
        max(math.ceil(reset_after), 0),
    )
