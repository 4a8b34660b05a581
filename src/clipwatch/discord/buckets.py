"""What the sender knows of Discord's limits: one view shared by every process through
Redis, or this process's own.

Per webhook: the bucket's `remaining` and reset (X-RateLimit-* headers), the pace learned
from a 429 of scope `shared` (the hidden per-channel limit, which no header announces), the
time before which nothing is sent after a 429, and a lease: one request in flight per
webhook across all processes, so each answer's headers describe the bucket truly. For the
whole service: the global limit (a proactive GLOBAL_PER_S and the pause after a `global`
429), the pause after Cloudflare's ban, and the invalid requests (401, 403, 404, and 429s
other than `shared`) of the last ten minutes. Discord bans an address at 10,000 of those in
ten minutes; at INVALID_STOP (a tenth of that) the service stops sending until old ones age
out, and deliveries wait in the outbox.

`reserve` grants a send (the lease) or says how long to wait; `settle` records the answer
and frees the lease. The Redis view does both in one Lua script each, on Redis' clock.
Redis is an accelerator: when it fails, `Buckets` draws from this process's own view
(logged once) and asks Redis again after RETRY_REDIS_S.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import redis.asyncio as redis_asyncio
import structlog
from redis.exceptions import RedisError

log = structlog.get_logger("clipwatch.discord")

CHANNEL_PACE_S = 2.1  # a little over 60 s / 30: the hidden channel limit, with some margin
BAN_PAUSE_S = 900.0  # asking during a Cloudflare ban only prolongs it
GLOBAL_PER_S = 45.0  # below Discord's 50 requests a second per address
INVALID_WINDOW_S = 600.0
INVALID_STOP = 1_000  # a tenth of Discord's ban line (10,000 in 10 minutes)
LEASE_S = 15.0  # longer than a request may take (the HTTP timeout): a dead holder's lease lapses
POLL_S = 0.02  # how soon to ask again while another process holds the lease
RETRY_REDIS_S = 5.0
REDIS_TIMEOUT_S = 0.5
KEY_TTL_S = 3600


@dataclass(frozen=True)
class Answer:
    """What an answer (or its absence: status 0) tells about the limits."""

    status: int
    remaining: int | None = None
    reset_after: float | None = None
    retry_after: float | None = None
    shared: bool = False
    is_global: bool = False
    cloudflare: bool = False

    @property
    def invalid(self) -> bool:
        """Counted towards Discord's ban (404 too: repeated calls to a deleted webhook are)."""
        return self.status in (401, 403, 404) or (self.status == 429 and not self.shared)


@dataclass(frozen=True)
class Grant:
    wait: float  # 0: the send is the caller's (holding `lease`)
    lease: str = ""
    stop: str = ""  # "ban" or "invalid": sending has stopped, not merely to be paced
    shared: bool = False  # granted by the Redis view


@dataclass
class _Webhook:
    remaining: int | None = None
    reset_at: float = 0.0
    pace: float = 0.0
    last_sent: float = 0.0
    blocked_until: float = 0.0
    lease: str = ""
    lease_until: float = 0.0


@dataclass
class LocalBuckets:
    """This process's view (monotonic clock). Every method takes `now` for tests."""

    hooks: dict[str, _Webhook] = field(default_factory=dict)
    global_until: float = 0.0
    ban_until: float = 0.0
    invalid: deque[float] = field(default_factory=deque)
    level: float = GLOBAL_PER_S
    level_at: float = 0.0

    def reserve(self, webhook_id: str, now: float | None = None) -> Grant:
        now = time.monotonic() if now is None else now
        if self.ban_until > now:
            return Grant(self.ban_until - now, stop="ban")
        while self.invalid and self.invalid[0] <= now - INVALID_WINDOW_S:
            self.invalid.popleft()
        if len(self.invalid) >= INVALID_STOP:
            oldest = self.invalid[len(self.invalid) - INVALID_STOP]
            return Grant(oldest + INVALID_WINDOW_S - now, stop="invalid")
        hook = self.hooks.setdefault(webhook_id, _Webhook())
        wait = max(self.global_until, hook.blocked_until, hook.last_sent + hook.pace) - now
        if hook.remaining == 0:
            wait = max(wait, hook.reset_at - now)
        if hook.lease and hook.lease_until > now:
            wait = max(wait, min(POLL_S, hook.lease_until - now))
        self.level = min(GLOBAL_PER_S, self.level + (now - self.level_at) * GLOBAL_PER_S)
        self.level_at = now
        if self.level < 1:
            wait = max(wait, (1 - self.level) / GLOBAL_PER_S)
        if wait > 0:
            return Grant(wait)
        self.level -= 1
        hook.lease, hook.lease_until, hook.last_sent = uuid.uuid4().hex, now + LEASE_S, now
        return Grant(0.0, hook.lease)

    def note_sent(self, webhook_id: str, now: float | None = None) -> None:
        """A send granted by the shared view: kept here for the day Redis fails."""
        now = time.monotonic() if now is None else now
        self.hooks.setdefault(webhook_id, _Webhook()).last_sent = now

    def settle(self, webhook_id: str, lease: str, answer: Answer, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        hook = self.hooks.setdefault(webhook_id, _Webhook())
        if lease and hook.lease == lease:
            hook.lease, hook.lease_until = "", 0.0
        if answer.remaining is not None and answer.reset_after is not None:
            hook.remaining, hook.reset_at = answer.remaining, now + answer.reset_after
        if answer.status == 429 and not answer.cloudflare:
            retry = 1.0 if answer.retry_after is None else answer.retry_after
            hook.blocked_until = max(hook.blocked_until, now + retry)
            if answer.is_global:
                self.global_until = max(self.global_until, now + retry)
            if answer.shared:
                hook.pace = CHANNEL_PACE_S
        if answer.cloudflare:
            self.ban_until = now + BAN_PAUSE_S
        if answer.invalid:
            self.invalid.append(now)


# KEYS: the webhook's hash, the service's hash, the invalid requests (a sorted set).
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local function num(key, name, default)
  local v = redis.call('HGET', key, name)
  if v and v ~= '' then return tonumber(v) end
  return default
end
"""
# ARGV: lease, lease seconds, invalid window, invalid stop, global per second, poll, key TTL.
_RESERVE = (
    _NOW
    + """
local ban = num(KEYS[2], 'ban_until', 0)
if ban > now then return {'ban', tostring(ban - now)} end
local window, stop = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[3])
if count >= stop then
  local oldest = redis.call('ZRANGE', KEYS[3], count - stop, count - stop, 'WITHSCORES')
  return {'invalid', tostring(tonumber(oldest[2]) + window - now)}
end
local wait = math.max(num(KEYS[2], 'global_until', 0), num(KEYS[1], 'blocked_until', 0),
  num(KEYS[1], 'last_sent', 0) + num(KEYS[1], 'pace', 0)) - now
if redis.call('HGET', KEYS[1], 'remaining') == '0' then
  wait = math.max(wait, num(KEYS[1], 'reset_at', 0) - now)
end
local lease_until = num(KEYS[1], 'lease_until', 0)
if lease_until > now then wait = math.max(wait, math.min(tonumber(ARGV[6]), lease_until - now)) end
local rate = tonumber(ARGV[5])
local level = num(KEYS[2], 'level', rate) + (now - num(KEYS[2], 'level_at', now)) * rate
level = math.min(rate, level)
if level < 1 then wait = math.max(wait, (1 - level) / rate) end
if wait > 0 then return {'wait', tostring(wait)} end
redis.call('HSET', KEYS[2], 'level', level - 1, 'level_at', now)
redis.call('HSET', KEYS[1], 'lease', ARGV[1], 'lease_until', now + tonumber(ARGV[2]),
  'last_sent', now)
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[7])
return {'go', '0'}
"""
)
# ARGV: lease, status, remaining, reset after, retry after ('' when unknown), shared,
# global, cloudflare, invalid ('1' or '0'), pace, ban pause, invalid window, key TTL.
_SETTLE = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'lease') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'lease', '', 'lease_until', 0)
  if ARGV[3] ~= '' and ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'remaining', ARGV[3], 'reset_at', now + tonumber(ARGV[4]))
  end
end
if ARGV[2] == '429' and ARGV[8] == '0' then
  local retry = 1.0
  if ARGV[5] ~= '' then retry = tonumber(ARGV[5]) end
  redis.call('HSET', KEYS[1], 'blocked_until',
    math.max(num(KEYS[1], 'blocked_until', 0), now + retry))
  if ARGV[7] == '1' then
    redis.call('HSET', KEYS[2], 'global_until',
      math.max(num(KEYS[2], 'global_until', 0), now + retry))
  end
  if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'pace', ARGV[10]) end
end
if ARGV[8] == '1' then redis.call('HSET', KEYS[2], 'ban_until', now + tonumber(ARGV[11])) end
if ARGV[9] == '1' then
  redis.call('ZADD', KEYS[3], now, ARGV[1] .. ':' .. now)
  redis.call('EXPIRE', KEYS[3], ARGV[12])
end
redis.call('EXPIRE', KEYS[1], ARGV[13])
redis.call('EXPIRE', KEYS[2], ARGV[13])
return 'ok'
"""
)


def _arg(value: float | int | None) -> str:
    return "" if value is None else str(value)


class RedisBuckets:
    """The shared view: the same rules as `LocalBuckets`, in Lua on Redis' clock."""

    def __init__(self, redis_url: str, key_prefix: str) -> None:
        self._redis = redis_asyncio.from_url(
            redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        self._prefix = f"{key_prefix}:discord"
        self._reserve = self._redis.register_script(_RESERVE)
        self._settle = self._redis.register_script(_SETTLE)

    def _keys(self, webhook_id: str) -> list[str]:
        p = self._prefix
        return [f"{p}:webhook:{webhook_id}", f"{p}:service", f"{p}:invalid"]

    async def reserve(self, webhook_id: str) -> Grant:
        lease = uuid.uuid4().hex
        args: list[str | float | int] = [
            lease,
            LEASE_S,
            INVALID_WINDOW_S,
            INVALID_STOP,
            GLOBAL_PER_S,
            POLL_S,
            KEY_TTL_S,
        ]
        kind, wait = await self._reserve(keys=self._keys(webhook_id), args=args)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind == "go":
            return Grant(0.0, lease, shared=True)
        return Grant(float(wait), stop=kind if kind != "wait" else "", shared=True)

    async def settle(self, webhook_id: str, lease: str, answer: Answer) -> None:
        flags = [answer.shared, answer.is_global, answer.cloudflare, answer.invalid]
        args: list[str | float | int] = [
            lease,
            str(answer.status),
            _arg(answer.remaining),
            _arg(answer.reset_after),
            _arg(answer.retry_after),
            *("1" if f else "0" for f in flags),
            CHANNEL_PACE_S,
            BAN_PAUSE_S,
            int(INVALID_WINDOW_S),
            KEY_TTL_S,
        ]
        await self._settle(keys=self._keys(webhook_id), args=args)

    async def aclose(self) -> None:
        await self._redis.aclose()


class Buckets:
    """The view a sender draws from: Redis' when configured and answering, else `local`."""

    def __init__(
        self, redis_url: str = "", *, key_prefix: str = "clipwatch", local: LocalBuckets | None
    ) -> None:
        self.local = local if local is not None else LocalBuckets()
        self._shared = RedisBuckets(redis_url, key_prefix) if redis_url else None
        self._down_until = 0.0
        self.degraded = False

    def _fail(self, exc: Exception) -> None:
        self._down_until = time.monotonic() + RETRY_REDIS_S
        if not self.degraded:
            self.degraded = True
            log.warning("discord_buckets_degraded", error=type(exc).__name__)

    async def reserve(self, webhook_id: str) -> Grant:
        if self._shared is not None and time.monotonic() >= self._down_until:
            try:
                grant = await self._shared.reserve(webhook_id)
            except (RedisError, OSError) as exc:  # Redis is an accelerator: go on without it
                self._fail(exc)
            else:
                if self.degraded:
                    self.degraded = False
                    log.info("discord_buckets_recovered")
                if grant.lease:
                    self.local.note_sent(webhook_id)
                return grant
        return self.local.reserve(webhook_id)

    async def settle(self, webhook_id: str, grant: Grant, answer: Answer) -> None:
        self.local.settle(webhook_id, "" if grant.shared else grant.lease, answer)
        if grant.shared and self._shared is not None:
            try:
                await self._shared.settle(webhook_id, grant.lease, answer)
            except (RedisError, OSError) as exc:
                self._fail(exc)

    def abandon(self, webhook_id: str, grant: Grant) -> None:
        """The send was cancelled: free a local lease now (a shared one lapses by itself)."""
        if not grant.shared:
            self.local.settle(webhook_id, grant.lease, Answer(0))

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()


# One process is the embedded mode: its API (route tests) and its worker (deliveries) see one
# view of each Discord API's limits without Redis. Senders made directly get their own.
_PROCESS_VIEWS: dict[str, LocalBuckets] = {}


def process_view(api_url: str) -> LocalBuckets:
    return _PROCESS_VIEWS.setdefault(api_url, LocalBuckets())
