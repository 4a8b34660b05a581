"""A Discord simulator: execute-webhook as reference/discord-api.md describes it.

Never kinder than Discord:
- per-webhook buckets (5 requests per 2 s) with `X-RateLimit-*` headers; a hidden
  per-channel limit (30 messages a minute, no headers before the 429); a global limit
  (50 requests a second); 429 bodies carry `retry_after`;
- 404 with code 10015 for a deleted webhook, 401 with code 50027 for a wrong token;
- payloads that break Discord's limits get Discord's 400 shape (code 50035 + `errors`);
- faults on demand: 5xx, and 429s without any headers; an outage (every execute-webhook
  answers a 5xx for some seconds; to refuse connections, stop its server instead);
- the invalid-request limit: an address that earns 10,000 answers 401, 403 or 429 (not
  counting 429s of scope `shared`) within 10 minutes is banned, Cloudflare-style, and so is
  one that keeps calling a webhook that answered 404 (the reference gives no number; here the
  tenth such call): every request then gets a 429 with an HTML body and no `Via` header, for
  an hour.
It records every message it accepted (`GET /_sim/messages`) and every execute-webhook request
with its answer's status (`GET /_sim/requests`). A plain ASGI app, served by uvicorn:
`clipwatch simulate discord --port N`.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

from clipwatch.simhttp import Receive, Scope, Send, http_body
from clipwatch.simhttp import answer as _answer
from clipwatch.simhttp import raw as _raw

_EXECUTE = re.compile(r"^/api(?:/v\d+)?/webhooks/(\d+)/([^/]+)/?$")
_COMMANDS = re.compile(r"^/api(?:/v\d+)?/applications/(\d+)(?:/guilds/(\d+))?/commands$")
_ORIGINAL = re.compile(r"^/api(?:/v\d+)?/webhooks/(\d+)/([^/]+)/messages/@original$")
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


@dataclass
class SimWebhook:
    id: str
    token: str
    channel_id: str
    deleted: bool = False
    hits: deque[float] = field(default_factory=deque)

    @property
    def pasted_url(self) -> str:
        """The URL a user would paste into a route: Discord's host; deliveries reach the
        simulator through CLIPWATCH_DISCORD_API_URL."""
        return f"https://discord.com/api/webhooks/{self.id}/{self.token}"


@dataclass(frozen=True)
class Request:
    webhook_id: str
    status: int
    at: float


@dataclass
class Received:
    webhook_id: str
    channel_id: str
    message_id: str
    payload: dict[str, Any]
    at: float


def _window(hits: deque[float], now: float, span: float) -> None:
    while hits and hits[0] <= now - span:
        hits.popleft()


def payload_errors(payload: Any) -> dict[str, Any]:
    """Discord's own checks of an execute-webhook body, written apart from our builder's."""
    if not isinstance(payload, dict):
        return {"_errors": [{"code": "DICT_TYPE_CONVERT", "message": "Only dictionaries"}]}
    errors: dict[str, Any] = {}
    content = payload.get("content") or ""
    embeds = payload.get("embeds") or []
    if not content and not embeds:
        return {"_errors": [{"code": "50006", "message": "Cannot send an empty message"}]}
    if len(str(content)) > 2000:
        errors["content"] = {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "2000"}]}
    if not isinstance(embeds, list) or len(embeds) > 10:
        errors["embeds"] = {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "10"}]}
        return errors
    total = 0
    limits = {"title": 256, "description": 4096}
    for index, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            errors[f"embeds.{index}"] = "not an object"
            continue
        for key, limit in limits.items():
            text = str(embed.get(key) or "").strip()
            total += len(text)
            if len(text) > limit:
                errors[f"embeds.{index}.{key}"] = f"Must be {limit} or fewer in length."
        fields = embed.get("fields") or []
        if len(fields) > 25:
            errors[f"embeds.{index}.fields"] = "Must be 25 or fewer in length."
        for number, item in enumerate(fields):
            name, value = str(item.get("name") or "").strip(), str(item.get("value") or "").strip()
            total += len(name) + len(value)
            if not name or len(name) > 256:
                errors[f"embeds.{index}.fields.{number}.name"] = "1 to 256 in length."
            if not value or len(value) > 1024:
                errors[f"embeds.{index}.fields.{number}.value"] = "1 to 1024 in length."
        footer = str((embed.get("footer") or {}).get("text") or "").strip()
        author = str((embed.get("author") or {}).get("name") or "").strip()
        total += len(footer) + len(author)
        if len(footer) > 2048:
            errors[f"embeds.{index}.footer.text"] = "Must be 2048 or fewer in length."
        if len(author) > 256:
            errors[f"embeds.{index}.author.name"] = "Must be 256 or fewer in length."
    if total > 6000:
        errors["embeds"] = "Embed size exceeds maximum size of 6000"
    return errors


class DiscordSimulator:
    def __init__(
        self,
        *,
        invalid_limit: int = INVALID_LIMIT,
        repeated_404_limit: int = REPEATED_404_LIMIT,
        ban_seconds: float = BAN_SECONDS,
    ) -> None:
        self.invalid_limit = invalid_limit
        self.repeated_404_limit = repeated_404_limit
        self.ban_seconds = ban_seconds
        self.invalid: dict[str, deque[float]] = {}  # address -> times of invalid answers
        self.gone_calls: dict[tuple[str, str], int] = {}  # (address, webhook) -> 404s
        self.banned_until: dict[str, float] = {}
        self.webhooks: dict[str, SimWebhook] = {}
        self.received: list[Received] = []
        self.channel_hits: dict[str, deque[float]] = {}
        self.global_hits: deque[float] = deque()
        self.rate_limited: dict[str, int] = {}  # scope -> 429s sent
        self.faults: list[str] = []
        self.requests: list[Request] = []  # every execute-webhook call, with its status
        self.down_until = 0.0  # an outage: execute-webhook answers `down_status` until then
        self.down_status = 503
        self.bot_token = "sim-bot-token"
        # Registered slash commands: (application id, guild id or None) -> commands.
        self.commands: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        # Interaction responses edited after a deferral: (application id, token, payload).
        self.originals: list[tuple[str, str, dict[str, Any]]] = []
        self._ids = itertools.count(1_100_000_000_000_000_000)

    def add_webhook(self, channel_id: str = "900000000000000001") -> SimWebhook:
        hook = SimWebhook(str(next(self._ids)), secrets.token_urlsafe(51), channel_id)
        self.webhooks[hook.id] = hook
        return hook

    def outage(self, seconds: float, status: int = 503) -> None:
        """Every execute-webhook answers `status` for the next `seconds`."""
        self.down_until = time.time() + seconds
        self.down_status = status

    def url(self, base: str, hook: SimWebhook) -> str:
        """The webhook on this simulator (what `clipwatch simulate discord` prints)."""
        return f"{base}/api/webhooks/{hook.id}/{hook.token}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await http_body(scope, receive, send)
        if body is None:
            return
        query = parse_qs(scope.get("query_string", b"").decode())
        path: str = scope["path"]
        if path.startswith("/_sim/"):
            await self._control(path, scope["method"], query, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if self.banned_until.get(address, 0.0) > time.time():
            self._count("cloudflare")
            await _raw(send, 429, BAN_BODY, {"Retry-After": "3600"}, "text/html")
            return
        await self._api(scope, path, query, body, self._watching(address, path, send))

    def _watching(self, address: str, path: str, send: Send) -> Send:
        """`send`, counting this address's invalid answers (and banning it at the limit)."""

        async def watched(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                shared = headers.get(b"x-ratelimit-scope") == b"shared"
                if status in (401, 403) or (status == 429 and not shared):
                    self._invalid(address)
                execute = _EXECUTE.match(path)
                if execute is not None:
                    self.requests.append(Request(execute.group(1), status, time.time()))
                if status == 404 and execute is not None:
                    key = (address, execute.group(1))
                    self.gone_calls[key] = self.gone_calls.get(key, 0) + 1
                    if self.gone_calls[key] >= self.repeated_404_limit:
                        self.banned_until[address] = time.time() + self.ban_seconds
            await send(message)

        return watched

    def _invalid(self, address: str) -> None:
        now = time.time()
        hits = self.invalid.setdefault(address, deque())
        _window(hits, now, INVALID_WINDOW)
        hits.append(now)
        if len(hits) >= self.invalid_limit:
            self.banned_until[address] = now + self.ban_seconds

    async def _api(
        self, scope: Scope, path: str, query: dict[str, list[str]], body: bytes, send: Send
    ) -> None:
        registered = _COMMANDS.match(path)
        if registered is not None and scope["method"] == "PUT":
            auth = dict(scope.get("headers", [])).get(b"authorization", b"").decode()
            if auth != f"Bot {self.bot_token}":
                await _answer(send, 401, {"message": "401: Unauthorized", "code": 0})
                return
            commands = orjson.loads(body) if body else []
            if not isinstance(commands, list) or len(commands) > 100:
                await _answer(send, 400, {"message": "Invalid Form Body", "code": 50035})
                return
            self.commands[(registered.group(1), registered.group(2))] = commands
            await _answer(send, 200, [{"id": str(next(self._ids)), **c} for c in commands])
            return
        original = _ORIGINAL.match(path)
        if original is not None and scope["method"] == "PATCH":
            payload = orjson.loads(body) if body else {}
            errors = payload_errors(payload)
            if errors:
                await _answer(
                    send, 400, {"message": "Invalid Form Body", "code": 50035, "errors": errors}
                )
                return
            self.originals.append((original.group(1), original.group(2), payload))
            await _answer(send, 200, {"id": str(next(self._ids)), **payload})
            return
        match = _EXECUTE.match(path)
        if scope["method"] != "POST" or match is None:
            await _answer(send, 404, {"message": "404: Not Found", "code": 0})
            return
        await self._execute(match.group(1), match.group(2), query, body, send)

    async def _execute(
        self, hook_id: str, token: str, query: dict[str, list[str]], body: bytes, send: Send
    ) -> None:
        now = time.time()
        if now < self.down_until:
            await _answer(send, self.down_status, {"message": "Service Unavailable", "code": 0})
            return
        fault = self.faults.pop(0) if self.faults else None
        if fault == "5xx":
            await _answer(send, 502, {"message": "Bad Gateway", "code": 0})
            return
        if fault == "429_no_headers":
            await self._rate_limited(send, "unknown", 0.3, {})
            return
        hook = self.webhooks.get(hook_id)
        if hook is None or hook.deleted:
            await _answer(send, 404, {"message": "Unknown Webhook", "code": 10015})
            return
        if hook.token != token:
            await _answer(send, 401, {"message": "Invalid Webhook Token", "code": 50027})
            return
        _window(self.global_hits, now, GLOBAL_WINDOW)
        if len(self.global_hits) >= GLOBAL_LIMIT:
            retry = GLOBAL_WINDOW - (now - self.global_hits[0])
            headers = {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
            await self._rate_limited(send, "global", retry, headers, is_global=True)
            return
        _window(hook.hits, now, WEBHOOK_WINDOW)
        if len(hook.hits) >= WEBHOOK_LIMIT:
            retry = WEBHOOK_WINDOW - (now - hook.hits[0])
            headers = self._bucket_headers(hook, now) | {"X-RateLimit-Scope": "user"}
            await self._rate_limited(send, "webhook", retry, headers)
            return
        channel = self.channel_hits.setdefault(hook.channel_id, deque())
        _window(channel, now, CHANNEL_WINDOW)
        if len(channel) >= CHANNEL_LIMIT:
            retry = CHANNEL_WINDOW - (now - channel[0])
            headers = {"X-RateLimit-Scope": "shared"}
            await self._rate_limited(send, "channel", retry, headers)
            return
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            await _answer(send, 400, {"message": "400: Bad Request", "code": 50109})
            return
        errors = payload_errors(payload)
        self.global_hits.append(now)
        hook.hits.append(now)
        if errors:
            await _answer(
                send,
                400,
                {"message": "Invalid Form Body", "code": 50035, "errors": errors},
                self._bucket_headers(hook, now),
            )
            return
        channel.append(now)
        message_id = str(next(self._ids))
        self.received.append(Received(hook.id, hook.channel_id, message_id, payload, now))
        headers = self._bucket_headers(hook, now)
        if (query.get("wait") or ["false"])[0].lower() == "true":
            message = {
                "id": message_id,
                "channel_id": hook.channel_id,
                "webhook_id": hook.id,
                "content": payload.get("content") or "",
                "embeds": payload.get("embeds") or [],
            }
            await _answer(send, 200, message, headers)
        else:
            await _raw(send, 204, b"", headers)

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

    def _bucket_headers(self, hook: SimWebhook, now: float) -> dict[str, str]:
        _window(hook.hits, now, WEBHOOK_WINDOW)
        reset_after = WEBHOOK_WINDOW - (now - hook.hits[0]) if hook.hits else 0.0
        return {
            "X-RateLimit-Limit": str(WEBHOOK_LIMIT),
            "X-RateLimit-Remaining": str(WEBHOOK_LIMIT - len(hook.hits)),
            "X-RateLimit-Reset": f"{now + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"bucket-{hook.id[-6:]}",
        }

    async def _control(
        self, path: str, method: str, query: dict[str, list[str]], send: Send
    ) -> None:
        if path == "/_sim/webhooks" and method == "POST":
            hook = self.add_webhook((query.get("channel_id") or ["900000000000000001"])[0])
            await _answer(
                send, 200, {"id": hook.id, "token": hook.token, "channel_id": hook.channel_id}
            )
        elif path == "/_sim/delete-webhook" and method == "POST":
            hook_id = (query.get("id") or [""])[0]
            if hook_id in self.webhooks:
                self.webhooks[hook_id].deleted = True
            await _answer(send, 200, {})
        elif path == "/_sim/messages":
            await _answer(
                send,
                200,
                {
                    "messages": [
                        {
                            "webhook_id": r.webhook_id,
                            "message_id": r.message_id,
                            "at": r.at,
                            "payload": r.payload,
                        }
                        for r in self.received
                    ],
                    "rate_limited": self.rate_limited,
                    "invalid_requests": {a: len(h) for a, h in self.invalid.items()},
                    "banned": sorted(a for a, t in self.banned_until.items() if t > time.time()),
                },
            )
        elif path == "/_sim/requests":
            rows = [
                {"webhook_id": r.webhook_id, "status": r.status, "at": r.at} for r in self.requests
            ]
            await _answer(send, 200, {"requests": rows})
        elif path == "/_sim/outage" and method == "POST":
            self.outage(
                float((query.get("seconds") or ["30"])[0]),
                int((query.get("status") or ["503"])[0]),
            )
            await _answer(send, 200, {"down_until": self.down_until})
        elif path == "/_sim/fault" and method == "POST":
            mode = (query.get("mode") or [""])[0]
            count = int((query.get("count") or ["1"])[0])
            self.faults.extend([mode] * count)
            await _answer(send, 200, {})
        else:
            await _answer(send, 404, {"message": "no such control", "code": 0})
