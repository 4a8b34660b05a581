"""Posting one message to one webhook, following Discord's rate-limit headers.

Waiting for a rate limit is not a failed attempt: a bucket with no requests left is waited
out *before* sending (`X-RateLimit-Remaining: 0` + `Reset-After`), and a 429 is waited out
(`retry_after`) and sent again. What is not the sender's to decide comes back as an outcome
for the delivery worker: `RetryLater` (5xx, timeouts, a wait too long to hold a worker),
`Gone` (the webhook was deleted or its token is wrong: disable the route), `Rejected` (the
payload breaks Discord's limits: retrying cannot help).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import structlog

from clipwatch.discord.webhook_url import WebhookTarget

log = structlog.get_logger("clipwatch.discord")

MAX_WAIT_S = 30.0  # a rate-limit wait longer than this goes back to the queue instead
# Discord's hidden per-channel limit (~30 messages a minute, no headers): after a 429 with
# scope "shared", that webhook sends at most one message every CHANNEL_PACE_S seconds.
CHANNEL_PACE_S = 2.1  # a little over 60 s / 30, so timing jitter does not meet the limit
# A 429 whose body is not Discord's JSON comes from Cloudflare: this address is banned for
# making too many invalid requests. Every send pauses this long (asking again would only
# prolong the ban), and the deliveries wait in the outbox.
BAN_PAUSE_S = 900.0


@dataclass(frozen=True)
class Sent:
    message_id: str


@dataclass(frozen=True)
class RetryLater:
    reason: str
    after: float = 0.0
    rate_limited: bool = False  # a wait, not a failed attempt


@dataclass(frozen=True)
class Gone:
    reason: str


@dataclass(frozen=True)
class Rejected:
    reason: str


Outcome = Sent | RetryLater | Gone | Rejected


@dataclass
class _Bucket:
    remaining: int | None = None
    reset_at: float = 0.0  # monotonic
    pace: float = 0.0  # seconds between messages once the channel limit showed itself
    last_sent: float = 0.0
    blocked_until: float = 0.0  # monotonic; after a 429, nothing is sent before this
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class SenderStats:
    sent: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0


class WebhookSender:
    def __init__(
        self, api_url: str, *, http: httpx.AsyncClient | None = None, timeout: float = 10.0
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._buckets: dict[str, _Bucket] = {}
        self._global_until = 0.0
        self.banned = False  # seen a Cloudflare ban (logged once)
        self.stats = SenderStats()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _wait(self, seconds: float) -> None:
        self.stats.waited_s += seconds
        await asyncio.sleep(seconds)

    async def send(self, target: WebhookTarget, payload: dict[str, Any]) -> Outcome:
        bucket = self._buckets.setdefault(target.webhook_id, _Bucket())
        async with bucket.lock:  # one request at a time per webhook: the headers stay true
            while True:
                now = time.monotonic()
                wait = max(
                    self._global_until - now,
                    bucket.last_sent + bucket.pace - now,
                    bucket.blocked_until - now,
                    0.0,
                )
                if bucket.remaining == 0:
                    wait = max(wait, bucket.reset_at - now)
                if wait > MAX_WAIT_S:
                    return RetryLater("rate limited for long", after=wait, rate_limited=True)
                if wait > 0:
                    await self._wait(wait)
                bucket.last_sent = time.monotonic()
                try:
                    answer = await self._http.post(
                        f"{self.api_url}/webhooks/{target.webhook_id}/{target.token}",
                        params={"wait": "true"},
                        content=orjson.dumps(payload),
                        headers={"Content-Type": "application/json"},
                    )
                except httpx.TransportError as exc:
                    return RetryLater(f"Discord did not answer ({type(exc).__name__})")
                self._update(bucket, answer.headers)
                outcome = await self._outcome(bucket, answer)
                if outcome is not None:
                    return outcome

    def _update(self, bucket: _Bucket, headers: httpx.Headers) -> None:
        try:
            bucket.remaining = int(headers["x-ratelimit-remaining"])
            bucket.reset_at = time.monotonic() + float(headers["x-ratelimit-reset-after"])
        except (KeyError, ValueError):
            pass  # no headers (some 429s have none): keep what we knew

    async def _outcome(self, bucket: _Bucket, answer: httpx.Response) -> Outcome | None:
        status = answer.status_code
        body = _json(answer)
        if status in (200, 204):
            self.stats.sent += 1
            return Sent(str(body.get("id", "")))
        if status == 429 and not _discord_json(answer):
            self.stats.rate_limited += 1
            self._global_until = time.monotonic() + BAN_PAUSE_S
            if not self.banned:
                log.error("discord_ban", detail="429 from Cloudflare: too many invalid requests")
            self.banned = True
            return RetryLater("Discord's Cloudflare ban", after=BAN_PAUSE_S, rate_limited=True)
        if status == 429:
            self.stats.rate_limited += 1
            retry = _float(body.get("retry_after")) or _float(answer.headers.get("retry-after"))
            retry = retry if retry is not None else 1.0
            if body.get("global") or answer.headers.get("x-ratelimit-global"):
                self._global_until = time.monotonic() + retry
            if answer.headers.get("x-ratelimit-scope") == "shared":
                bucket.pace = CHANNEL_PACE_S
            bucket.blocked_until = time.monotonic() + retry
            if retry > MAX_WAIT_S:
                return RetryLater("rate limited for long", after=retry, rate_limited=True)
            await self._wait(retry)
            return None  # send again: a rate limit is not a failed attempt
        if status in (401, 404):
            return Gone(f"Discord says {body.get('message', status)} (code {body.get('code')})")
        if status == 400:
            return Rejected(f"Discord refused the message: {body.get('message', 'bad request')}")
        return RetryLater(f"Discord answered {status}")


def _discord_json(answer: httpx.Response) -> bool:
    """Whether the answer is Discord's own JSON (Cloudflare's pages are HTML)."""
    try:
        return isinstance(orjson.loads(answer.content), dict)
    except orjson.JSONDecodeError:
        return False


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(answer.content) if answer.content else {}
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
