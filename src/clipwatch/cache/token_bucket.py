"""A token bucket in Redis, shared by every process that draws from one outside budget.

Each draw reserves the next free slot atomically (a Lua script on Redis' own clock) and
returns how long to wait for it, so N processes together never spend faster than the
refill rate. Answers from the outside service can only lower the level (`observe`).
"""

from __future__ import annotations

import redis.asyncio as redis_asyncio

# Both scripts: KEYS[1] the bucket; ARGV[1] capacity, ARGV[2] refill per second. The level
# is brought up to Redis' own clock first.
_REFILL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or cap)
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or now)
level = math.min(cap, level + (now - at) * rate)
"""
_STORE = """
redis.call('HSET', KEYS[1], 'level', level, 'at', now)
redis.call('EXPIRE', KEYS[1], 3600)
"""
# ARGV[3] cost. Returns the wait in seconds.
_DRAW = (
    _REFILL
    + "level = level - tonumber(ARGV[3])"
    + _STORE
    + """
if level >= 0 then return '0' end
return tostring(-level / rate)
"""
)
# ARGV[3] the level the service reported.
_OBSERVE = (
    _REFILL + "level = math.min(level, tonumber(ARGV[3]))" + _STORE + "return tostring(level)"
)


class SharedTokenBucket:
    def __init__(
        self, redis_url: str, key: str, *, capacity: float, per_second: float, timeout: float = 1.0
    ) -> None:
        self._redis = redis_asyncio.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.key = key
        self.capacity = capacity
        self.per_second = per_second
        self._draw = self._redis.register_script(_DRAW)
        self._observe = self._redis.register_script(_OBSERVE)

    async def draw(self, cost: float = 1.0) -> float:
        """Reserve `cost` points; the seconds to wait before spending them."""
        wait = await self._draw(keys=[self.key], args=[self.capacity, self.per_second, cost])
        return float(wait)

    async def observe(self, remaining: float) -> None:
        """The service said this many points are left: never believe in more."""
        await self._observe(keys=[self.key], args=[self.capacity, self.per_second, remaining])

    async def aclose(self) -> None:
        await self._redis.aclose()
