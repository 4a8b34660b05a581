"""Posting one message to one webhook, following Discord's rate limits.

Waiting for a rate limit is not a failed attempt: the sender reserves each send from the
webhook's bucket view (`buckets.py`: shared by every process through Redis when configured)
and waits as long as it says — an empty bucket, the channel's pace, the pause after a 429,
the global limit — then sends; a 429 is recorded and the send reserved again. What is not
the sender's to decide comes back as an outcome for the delivery worker: `RetryLater` (5xx,
timeouts, a wait too long to hold a worker, a ban or too many invalid requests lately),
`Gone` (the webhook was deleted or its token is wrong: disable the route), `Rejected` (the
payload breaks Discord's limits: retrying cannot help).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import structlog

from clipwatch.config import Settings
from clipwatch.discord.buckets import (
    BAN_PAUSE_S,
    CHANNEL_PACE_S,
    INVALID_STOP,
    Answer,
    Buckets,
    Grant,
    LocalBuckets,
    process_view,
)
from clipwatch.discord.webhook_url import WebhookTarget
from clipwatch.monitoring.metrics import DISCORD_RATE_LIMITED, discord_scope
from clipwatch.outbound import http_client

__all__ = [
    "BAN_PAUSE_S",
    "CHANNEL_PACE_S",
    "MAX_WAIT_S",
    "Gone",
    "Missing",
    "Outcome",
    "Rejected",
    "RetryLater",
    "Sent",
    "WebhookFacts",
    "WebhookSender",
    "read_answer",
    "sender_from_settings",
]

log = structlog.get_logger("clipwatch.discord")

MAX_WAIT_S = 30.0  # waits longer than this (in all, for one send) go back to the queue instead


@dataclass(frozen=True)
class Sent:
    message_id: str
    channel_id: str = ""  # where it went: the channel, the thread, a new forum post's thread


@dataclass(frozen=True)
class Missing:
    """The message (10008) or thread (10003) asked for is not there: nothing to edit or
    delete. A post into a missing thread is `Gone` instead (the route's thread is gone)."""

    reason: str


@dataclass(frozen=True)
class WebhookFacts:
    webhook_id: str
    channel_id: str
    guild_id: str
    name: str


@dataclass(frozen=True)
class RetryLater:
    reason: str
    after: float = 0.0
    rate_limited: bool = False  # a wait, not a failed attempt


@dataclass(frozen=True)
class Gone:
    reason: str
    code: int | None = None  # Discord's JSON code (10003: a thread gone, 10015: the webhook)


@dataclass(frozen=True)
class Rejected:
    reason: str
    code: int | None = None  # Discord's JSON code (220001: a forum needs a thread name)


Outcome = Sent | RetryLater | Gone | Rejected | Missing
UNKNOWN_MESSAGE = 10008
UNKNOWN_CHANNEL = 10003  # a deleted thread


@dataclass
class SenderStats:
    sent: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0


class WebhookSender:
    """`redis_url`: draw from the view every process shares; `local`: the view used without
    Redis (and while it fails), this sender's own unless given."""

    def __init__(
        self,
        api_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        redis_url: str = "",
        key_prefix: str = "clipwatch",
        local: LocalBuckets | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = http or http_client(timeout=timeout)
        self.buckets = Buckets(redis_url, key_prefix=key_prefix, local=local)
        # One coroutine per webhook asks the view at a time (the view's lease does the same
        # between processes); the others wait their turn in order.
        self._locks: dict[str, asyncio.Lock] = {}
        self.banned = False  # seen a Cloudflare ban (logged once)
        self._stopped = False  # stopped for too many invalid requests (logged once)
        # Why every send is held back right now (a ban, too many invalid requests), for
        # status; cleared by the next message Discord accepts.
        self.paused: str | None = None
        self.stats = SenderStats()
        self._facts: dict[str, WebhookFacts] = {}  # GET answers, handed to fetch_webhook

    async def aclose(self) -> None:
        await self._http.aclose()
        await self.buckets.aclose()

    async def _wait(self, seconds: float) -> None:
        self.stats.waited_s += seconds
        await asyncio.sleep(seconds)

    async def send(
        self,
        target: WebhookTarget,
        payload: dict[str, Any],
        *,
        max_wait: float = MAX_WAIT_S,
        thread_id: str | None = None,
    ) -> Outcome:
        """Execute the webhook (`?wait=true`: the answer is the message, its id kept for edits
        and deletes); into a thread of the webhook's channel with `thread_id`, or a new forum
        thread when the payload names `thread_name`. `Sent.channel_id` is the channel or
        thread the message went into."""
        params = {"wait": "true"} | ({"thread_id": thread_id} if thread_id else {})
        outcome = await self._call(target, "POST", "", params, payload, max_wait)
        # A post cannot miss a message; a missing thread is the route's thread gone.
        if isinstance(outcome, Missing):
            return Gone(outcome.reason, UNKNOWN_CHANNEL if thread_id else None)
        return outcome

    async def edit(
        self,
        target: WebhookTarget,
        message_id: str,
        payload: dict[str, Any],
        *,
        thread_id: str | None = None,
        max_wait: float = MAX_WAIT_S,
    ) -> Outcome:
        """PATCH a message this webhook posted (Discord re-reads mentions under the edit's own
        `allowed_mentions`, so the payload must carry it). An unknown message is `Missing`."""
        params = {"thread_id": thread_id} if thread_id else {}
        return await self._call(
            target, "PATCH", f"/messages/{message_id}", params, payload, max_wait
        )

    async def delete(
        self,
        target: WebhookTarget,
        message_id: str,
        *,
        thread_id: str | None = None,
        max_wait: float = MAX_WAIT_S,
    ) -> Outcome:
        """DELETE a message this webhook posted (204). An unknown message is `Missing`."""
        params = {"thread_id": thread_id} if thread_id else {}
        outcome = await self._call(
            target, "DELETE", f"/messages/{message_id}", params, None, max_wait
        )
        return Sent(message_id) if isinstance(outcome, Sent) else outcome

    async def fetch_webhook(
        self, target: WebhookTarget, *, max_wait: float = MAX_WAIT_S
    ) -> WebhookFacts | Gone | RetryLater | Rejected | Missing:
        """GET /webhooks/{id}/{token}: the webhook's channel, server and name, without posting.
        A deleted webhook or a wrong token is `Gone`."""
        outcome = await self._call(target, "GET", "", {}, None, max_wait)
        if isinstance(outcome, Sent):
            return self._facts.pop(target.webhook_id, WebhookFacts(target.webhook_id, "", "", ""))
        return outcome

    async def _call(
        self,
        target: WebhookTarget,
        method: str,
        suffix: str,
        params: dict[str, str],
        payload: dict[str, Any] | None,
        max_wait: float,
    ) -> Outcome:
        """One request to this webhook's routes, drawn from its bucket view: rate-limit waits
        happen here (not attempts); everything else is an outcome for the caller."""
        async with self._locks.setdefault(target.webhook_id, asyncio.Lock()):
            waited = 0.0
            while True:
                grant = await self.buckets.reserve(target.webhook_id)
                if grant.stop:
                    return self._stopped_outcome(grant)
                if grant.wait > 0:
                    if waited + grant.wait > max_wait:
                        return RetryLater("rate limited for long", grant.wait, rate_limited=True)
                    waited += grant.wait
                    await self._wait(grant.wait)
                    continue
                outcome = await self._request(target, method, suffix, params, payload, grant)
                if outcome is not None:
                    return outcome

    async def _request(
        self,
        target: WebhookTarget,
        method: str,
        suffix: str,
        params: dict[str, str],
        payload: dict[str, Any] | None,
        grant: Grant,
    ) -> Outcome | None:
        try:
            answer = await self._http.request(
                method,
                f"{self.api_url}/webhooks/{target.webhook_id}/{target.token}{suffix}",
                params=params,
                content=None if payload is None else orjson.dumps(payload),
                headers={"Content-Type": "application/json"} if payload is not None else {},
            )
        except httpx.TransportError as exc:
            await self.buckets.settle(target.webhook_id, grant, Answer(0))
            return RetryLater(f"Discord did not answer ({type(exc).__name__})")
        except asyncio.CancelledError:
            self.buckets.abandon(target.webhook_id, grant)  # a stopping worker frees its lease
            raise
        facts = read_answer(answer)
        await self.buckets.settle(target.webhook_id, grant, facts)
        if method == "GET" and answer.status_code == 200:
            body = _json(answer)
            self._facts[target.webhook_id] = WebhookFacts(
                target.webhook_id,
                str(body.get("channel_id") or ""),
                str(body.get("guild_id") or ""),
                str(body.get("name") or "")[:100],
            )
        return self._outcome(answer, facts)

    def _stopped_outcome(self, grant: Grant) -> RetryLater:
        if grant.stop == "ban":
            self._log_ban()
            return RetryLater("Discord's Cloudflare ban", after=grant.wait, rate_limited=True)
        self.paused = "too many invalid requests to Discord lately: sending paused"
        if not self._stopped:
            self._stopped = True
            log.error(
                "discord_invalid_requests_high",
                detail=f"{INVALID_STOP} invalid requests in 10 minutes: sending paused",
                resume_in_s=round(grant.wait, 1),
            )
        return RetryLater(
            "too many invalid requests to Discord lately: sending paused",
            after=grant.wait,
            rate_limited=True,
        )

    def _log_ban(self) -> None:
        self.paused = "Discord's Cloudflare ban (too many invalid requests): sending paused"
        if not self.banned:
            log.error("discord_ban", detail="429 from Cloudflare: too many invalid requests")
        self.banned = True

    def _outcome(self, answer: httpx.Response, facts: Answer) -> Outcome | None:
        status = answer.status_code
        body = _json(answer)
        if status in (200, 204):
            self.stats.sent += 1
            self._stopped = False
            self.paused = None
            return Sent(str(body.get("id", "")), str(body.get("channel_id") or ""))
        if status == 429:
            self.stats.rate_limited += 1
            DISCORD_RATE_LIMITED.labels(
                discord_scope(
                    cloudflare=facts.cloudflare, is_global=facts.is_global, shared=facts.shared
                )
            ).inc()
            if facts.cloudflare:
                self._log_ban()
                return RetryLater("Discord's Cloudflare ban", after=BAN_PAUSE_S, rate_limited=True)
            retry = 1.0 if facts.retry_after is None else facts.retry_after
            if retry > MAX_WAIT_S:
                return RetryLater("rate limited for long", after=retry, rate_limited=True)
            return None  # send again once the view allows: a rate limit is not a failed attempt
        code = body.get("code") if isinstance(body.get("code"), int) else None
        said = f"Discord says {body.get('message', status)} (code {body.get('code')})"
        if status == 404 and body.get("code") in (UNKNOWN_MESSAGE, UNKNOWN_CHANNEL):
            return Missing(said)
        if status in (401, 403, 404):
            # The webhook deleted, its token wrong, its thread gone or locked, or a permission
            # taken away: nothing a retry can change; the route shows why.
            return Gone(said, code)
        if status == 400:
            message = body.get("message", "bad request")
            return Rejected(f"Discord refused the message: {message}", code)
        return RetryLater(f"Discord answered {status}")


def read_answer(answer: httpx.Response) -> Answer:
    """What an answer says about the limits. A 429 whose body is not Discord's JSON comes
    from Cloudflare: this address is banned for making too many invalid requests."""
    headers = answer.headers
    status = answer.status_code
    body = _json(answer)
    remaining = _float(headers.get("x-ratelimit-remaining"))
    reset_after = _float(headers.get("x-ratelimit-reset-after"))
    if status != 429:
        return Answer(status, None if remaining is None else int(remaining), reset_after)
    retry = _float(body.get("retry_after"))
    return Answer(
        status,
        None if remaining is None else int(remaining),
        reset_after,
        retry_after=retry if retry is not None else _float(headers.get("retry-after")),
        shared=headers.get("x-ratelimit-scope") == "shared",
        is_global=bool(body.get("global") or headers.get("x-ratelimit-global")),
        cloudflare=not _discord_json(answer),
    )


def sender_from_settings(settings: Settings) -> WebhookSender:
    """The service's sender: the shared view through Redis when configured; this process's
    one view of Discord's limits otherwise (so the API's route tests and the worker's
    deliveries in one process respect each other)."""
    return WebhookSender(
        settings.discord_api_url,
        redis_url=settings.redis_url,
        key_prefix=settings.redis_key_prefix,
        local=process_view(settings.discord_api_url),
    )


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
