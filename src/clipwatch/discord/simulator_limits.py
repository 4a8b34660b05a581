"""The Discord simulator's limits, as reference/discord-api.md §3 gives them: per-webhook
buckets with `X-RateLimit-*` headers, a hidden per-channel limit, the global limit, 429
bodies with `retry_after`, the invalid-request (Cloudflare) ban and the repeated-404
restriction; outages and faults on demand. simulator.py answers requests through them."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TypedDict

from clipwatch.discord.simulator_world import SimWebhook, SimWorld
from clipwatch.simhttp import Send
from clipwatch.simhttp import answer as _answer

WEBHOOK_LIMIT = 5
WEBHOOK_WINDOW = 2.0
CHANNEL_LIMIT = 30
CHANNEL_WINDOW = 60.0
GLOBAL_LIMIT = 50
GLOBAL_WINDOW = 1.0
INVALID_LIMIT = 10_000
INVALID_WINDOW = 600.0
REPEATED_404_LIMIT = 10
BAN_SECONDS = 3600.0
BAN_BODY = b"<!DOCTYPE html><title>Access denied | discord.com</title>error code: 1015"


def window(hits: deque[float], now: float, span: float) -> None:
    """Drop the hits older than `span` seconds."""
    while hits and hits[0] <= now - span:
        hits.popleft()


class LimitOptions(TypedDict, total=False):
    """SimLimits' options, as subclasses pass them on."""

    invalid_limit: int
    repeated_404_limit: int
    ban_seconds: float


class SimLimits(SimWorld):
    """The world (channels, threads, webhooks, messages) and Discord's limits over it."""

    def __init__(
        self,
        *,
        invalid_limit: int = INVALID_LIMIT,
        repeated_404_limit: int = REPEATED_404_LIMIT,
        ban_seconds: float = BAN_SECONDS,
    ) -> None:
        super().__init__()
        # What the limits read the time from: a test may stop it (a window that must not pass).
        self.clock: Callable[[], float] = time.time
        self.invalid_limit = invalid_limit
        self.repeated_404_limit = repeated_404_limit
        self.ban_seconds = ban_seconds
        self.invalid: dict[str, deque[float]] = {}  # address -> times of invalid answers
        self.gone_calls: dict[tuple[str, str], int] = {}  # (address, webhook) -> 404s
        self.banned_until: dict[str, float] = {}
        self.channel_hits: dict[str, deque[float]] = {}
        self.route_hits: dict[str, deque[float]] = {}  # bot routes' buckets, per channel
        self.global_hits: deque[float] = deque()
        self.rate_limited: dict[str, int] = {}  # scope -> 429s sent
        self.faults: list[str] = []
        self.down_until = 0.0  # an outage: webhook routes answer `down_status` until then
        self.down_status = 503

    def outage(self, seconds: float, status: int = 503) -> None:
        """Every webhook route answers `status` for the next `seconds`."""
        self.down_until = self.clock() + seconds
        self.down_status = status

    def _gone_call(self, address: str, hook_id: str) -> None:
        key = (address, hook_id)
        self.gone_calls[key] = self.gone_calls.get(key, 0) + 1
        if self.gone_calls[key] >= self.repeated_404_limit:
            self.banned_until[address] = self.clock() + self.ban_seconds

    def _invalid(self, address: str) -> None:
        now = self.clock()
        hits = self.invalid.setdefault(address, deque())
        window(hits, now, INVALID_WINDOW)
        hits.append(now)
        if len(hits) >= self.invalid_limit:
            self.banned_until[address] = now + self.ban_seconds

    async def _gate(self, hook_id: str, token: str, send: Send) -> SimWebhook | None:
        """The checks every webhook route passes first: an outage, a fault, the webhook, its
        token, the global limit and its bucket (answered here; None then)."""
        now = self.clock()
        if now < self.down_until:
            await _answer(send, self.down_status, {"message": "Service Unavailable", "code": 0})
            return None
        fault = self.faults.pop(0) if self.faults else None
        if fault == "5xx":
            await _answer(send, 502, {"message": "Bad Gateway", "code": 0})
            return None
        if fault == "429_no_headers":
            await self._rate_limited(send, "unknown", 0.3, {})
            return None
        hook = self.webhooks.get(hook_id)
        if hook is None or hook.deleted:
            await _answer(send, 404, {"message": "Unknown Webhook", "code": 10015})
            return None
        if hook.token != token:
            await _answer(send, 401, {"message": "Invalid Webhook Token", "code": 50027})
            return None
        if await self._global_limited(send, now):
            return None
        window(hook.hits, now, WEBHOOK_WINDOW)
        if len(hook.hits) >= WEBHOOK_LIMIT:
            retry = WEBHOOK_WINDOW - (now - hook.hits[0])
            headers = self._bucket_headers(hook) | {"X-RateLimit-Scope": "user"}
            await self._rate_limited(send, "webhook", retry, headers)
            return None
        return hook

    async def _global_limited(self, send: Send, now: float) -> bool:
        window(self.global_hits, now, GLOBAL_WINDOW)
        if len(self.global_hits) < GLOBAL_LIMIT:
            return False
        retry = GLOBAL_WINDOW - (now - self.global_hits[0])
        headers = {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
        await self._rate_limited(send, "global", retry, headers, is_global=True)
        return True

    def _spend(self, hook: SimWebhook, now: float) -> None:
        self.global_hits.append(now)
        hook.hits.append(now)

    async def _rate_limited(
        self,
        send: Send,
        scope: str,
        retry: float,
        headers: dict[str, str],
        *,
        is_global: bool = False,
    ) -> None:
        """Discord's 429: `retry_after` in the body, `Retry-After` too unless `headers` is
        empty (the fault of a 429 with no headers at all)."""
        self._count(scope)
        if headers:
            headers = {"Retry-After": f"{retry:.3f}", **headers}
        body = {
            "message": "You are being rate limited.",
            "retry_after": round(retry, 3),
            "global": is_global,
        }
        await _answer(send, 429, body, headers)

    def _count(self, scope: str) -> None:
        self.rate_limited[scope] = self.rate_limited.get(scope, 0) + 1

    def _bucket_headers(self, hook: SimWebhook) -> dict[str, str]:
        return self._route_headers(hook.hits, self.clock(), hook.id)

    @staticmethod
    def _route_headers(hits: deque[float], now: float, key: str) -> dict[str, str]:
        window(hits, now, WEBHOOK_WINDOW)
        reset_after = WEBHOOK_WINDOW - (now - hits[0]) if hits else 0.0
        return {
            "X-RateLimit-Limit": str(WEBHOOK_LIMIT),
            "X-RateLimit-Remaining": str(WEBHOOK_LIMIT - len(hits)),
            "X-RateLimit-Reset": f"{now + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"bucket-{key[-6:]}",
        }
