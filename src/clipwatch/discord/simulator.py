"""A Discord simulator: the webhook routes, the bot's channel-webhook routes and slash-command
registration as reference/discord-api.md describes them.

Never kinder than Discord:
- per-webhook buckets (5 requests per 2 s) with `X-RateLimit-*` headers, drawn by every route
  of the webhook (execute, GET, message GET/PATCH/DELETE); a hidden per-channel limit (30
  messages a minute, no headers before the 429; a thread's messages count against its parent
  channel, so a forum is one channel however many posts it has); a global limit (50 requests
  a second); 429 bodies carry `retry_after`;
- 404 with code 10015 for a deleted webhook, 401 with code 50027 for a wrong token;
- payloads that break Discord's limits get Discord's 400 shape (code 50035 + `errors`, see
  simulator_checks.py: lengths, `allowed_mentions`, `username`, `thread_name`); a body that
  is not JSON, 50109; a body sent without `Content-Type: application/json`, 50035;
- `?wait=true` answers 200 with the message object, `wait` absent or false 204;
- threads: `?thread_id=` posts into a thread of the webhook's channel (an archived one is
  unarchived); a locked thread answers 403 code 50013 "Missing Permissions" (only Manage
  Threads may reopen it; the reference's 403 codes are 50013/50001); an unknown or deleted
  thread, or one of another channel, 404 code 10003 "Unknown Channel";
- forum channels: a message needs `thread_id` or `thread_name` (400 220001 without either,
  220002 with both); `thread_name` (1-100 characters) creates a post whose thread id is the
  message's `channel_id` (an id of its own, never the message's); `thread_name` in a channel
  that is no forum, 220003;
- a webhook's messages (GET/PATCH/DELETE `/messages/{id}`): only its own, and a message in a
  thread only with that thread's `?thread_id=` (otherwise 404 10008 "Unknown Message"); an
  edit is checked like a post and re-reads mentions under the edit's own `allowed_mentions`;
  a deleted message stays listed with `deleted: true`;
- the bot (`Authorization: Bot <token>`, else 401 code 0): `POST|GET
  /channels/{id}/webhooks` (403 50013 without Manage Webhooks, 400 30007 past 15 webhooks,
  404 10003 for an unknown channel; a per-channel bucket and the global limit);
- faults on demand: 5xx, and 429s without any headers; an outage (every webhook route
  answers a 5xx for some seconds; to refuse connections, stop its server instead);
- the invalid-request limit: an address that earns 10,000 answers 401, 403 or 429 (not
  counting 429s of scope `shared`) within 10 minutes is banned, Cloudflare-style, and so is
  one that keeps calling a webhook that answered 404 (the reference gives no number; here the
  tenth such call; an unknown message's 404 does not count): every request then gets a 429
  with an HTML body and no `Via` header, for an hour.
The state is simulator_world.py's, the limits simulator_limits.py's, the bot routes
simulator_bot.py's, the body checks simulator_checks.py's; this module answers the requests.
It records every message it accepted (`GET /_sim/messages`: thread, edits, deletion, who it
pinged) and every request to a webhook or bot route with its answer's status and kind (`GET
/_sim/requests`). A plain ASGI app, served by uvicorn: `clipwatch simulate discord --port N`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Unpack
from urllib.parse import parse_qs

import orjson

from clipwatch.discord.simulator_bot import BotOptions, SimBot
from clipwatch.discord.simulator_checks import (
    MISSING_PERMISSIONS,
    NOT_JSON,
    UNKNOWN_CHANNEL,
    UNKNOWN_MESSAGE,
    invalid_form,
    is_snowflake,
    loads,
    payload_errors,
)
from clipwatch.discord.simulator_limits import (
    BAN_BODY,
    CHANNEL_LIMIT,
    CHANNEL_WINDOW,
    GLOBAL_LIMIT,
    GLOBAL_WINDOW,
    WEBHOOK_LIMIT,
    WEBHOOK_WINDOW,
    window,
)
from clipwatch.discord.simulator_world import (
    DEFAULT_CHANNEL,
    DEFAULT_GUILD,
    Received,
    Request,
    SimChannel,
    SimThread,
    SimWebhook,
)
from clipwatch.simhttp import Receive, Scope, Send, http_body
from clipwatch.simhttp import answer as _answer
from clipwatch.simhttp import raw as _raw

__all__ = [
    "CHANNEL_LIMIT",
    "CHANNEL_WINDOW",
    "GLOBAL_LIMIT",
    "GLOBAL_WINDOW",
    "WEBHOOK_LIMIT",
    "WEBHOOK_WINDOW",
    "DiscordSimulator",
    "Received",
    "Request",
    "SimChannel",
    "SimThread",
    "SimWebhook",
    "payload_errors",
]

_WEBHOOK = re.compile(r"^/api(?:/v\d+)?/webhooks/(\d+)/([^/]+)(?:/messages/([^/]+))?/?$")
_COMMANDS = re.compile(r"^/api(?:/v\d+)?/applications/(\d+)(?:/guilds/(\d+))?/commands$")
_ORIGINAL = re.compile(r"^/api(?:/v\d+)?/webhooks/(\d+)/([^/]+)/messages/@original$")
_CHANNEL_WEBHOOKS = re.compile(r"^/api(?:/v\d+)?/channels/([^/]+)/webhooks/?$")
_TRUE, _FALSE = ("true", "1"), ("false", "0")
_MESSAGE_KINDS = {"GET": "get_message", "PATCH": "edit_message", "DELETE": "delete_message"}


def _one(query: dict[str, list[str]], key: str, default: str = "") -> str:
    return (query.get(key) or [default])[0]


def request_kind(method: str, path: str) -> tuple[str, str, str] | None:
    """(kind, webhook id, channel id) of a request to a webhook or bot route (for the log)."""
    hook = _WEBHOOK.match(path)
    if hook is not None and hook.group(3) != "@original":
        if hook.group(3) is not None:
            return _MESSAGE_KINDS.get(method, "message"), hook.group(1), ""
        return ("execute" if method == "POST" else "get_webhook"), hook.group(1), ""
    channel = _CHANNEL_WEBHOOKS.match(path)
    if channel is not None:
        return ("create_webhook" if method == "POST" else "list_webhooks"), "", channel.group(1)
    return None


class DiscordSimulator(SimBot):
    def __init__(self, **options: Unpack[BotOptions]) -> None:
        super().__init__(**options)
        self.requests: list[Request] = []  # every webhook or bot route call, with its status
        # Interaction responses edited after a deferral: (application id, token, payload).
        self.originals: list[tuple[str, str, dict[str, Any]]] = []

    def url(self, base: str, hook: SimWebhook) -> str:
        """The webhook on this simulator (what `clipwatch simulate discord` prints)."""
        return f"{base}/api/webhooks/{hook.id}/{hook.token}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await http_body(scope, receive, send)
        if body is None:
            return
        query = parse_qs(scope.get("query_string", b"").decode(errors="replace"))
        path: str = scope["path"]
        if path.startswith("/_sim/"):
            await self._control(path, scope["method"], query, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if self.banned_until.get(address, 0.0) > self.clock():
            self._count("cloudflare")
            await _raw(send, 429, BAN_BODY, {"Retry-After": "3600"}, "text/html")
            return
        watched = self._watching(address, scope["method"], path, send)
        await self._api(scope, path, query, body, watched)

    def _watching(self, address: str, method: str, path: str, send: Send) -> Send:
        """`send`, logging the request and counting this address's invalid answers (banning
        it at the limit)."""
        kind = request_kind(method, path)
        status = 0

        async def watched(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                shared = headers.get(b"x-ratelimit-scope") == b"shared"
                if status in (401, 403) or (status == 429 and not shared):
                    self._invalid(address)
                if kind is not None:
                    self.requests.append(Request(kind[1], status, self.clock(), *kind[::2]))
            elif status == 404 and kind is not None and kind[1]:
                try:
                    code = orjson.loads(message.get("body", b"")).get("code")
                except (orjson.JSONDecodeError, AttributeError):
                    code = None
                if code != UNKNOWN_MESSAGE["code"]:
                    self._gone_call(address, kind[1])
            await send(message)

        return watched

    async def _api(
        self, scope: Scope, path: str, query: dict[str, list[str]], body: bytes, send: Send
    ) -> None:
        method = scope["method"]
        headers = dict(scope.get("headers", []))
        registered = _COMMANDS.match(path)
        if registered is not None and method == "PUT":
            await self._register(registered, headers, body, send)
            return
        original = _ORIGINAL.match(path)
        if original is not None and method == "PATCH":
            payload = loads(body)
            errors = payload_errors(payload, edit=True)
            if errors:
                await _answer(send, 400, invalid_form(errors))
                return
            self.originals.append((original.group(1), original.group(2), payload))
            await _answer(send, 200, {"id": self.snowflake(), **payload})
            return
        channel = _CHANNEL_WEBHOOKS.match(path)
        if channel is not None and method in ("GET", "POST"):
            await self._channel_webhooks(method, channel.group(1), headers, body, send)
            return
        hook = _WEBHOOK.match(path)
        routes: dict[tuple[bool, str], Callable[..., Awaitable[None]]] = {
            (False, "POST"): self._execute,
            (False, "GET"): self._get_webhook,
            (True, "GET"): self._message,
            (True, "PATCH"): self._message,
            (True, "DELETE"): self._message,
        }
        handler = None if hook is None else routes.get((hook.group(3) is not None, method))
        if hook is None or handler is None:
            if hook is None:
                await _answer(send, 404, {"message": "404: Not Found", "code": 0})
            else:
                await _answer(send, 405, {"message": "405: Method Not Allowed", "code": 0})
            return
        if method in ("POST", "PATCH") and not headers.get(b"content-type", b"").startswith(
            b"application/json"
        ):
            await self._content_type(hook.group(1), hook.group(2), send)
            return
        request = _Call(hook.group(1), hook.group(2), hook.group(3), method, query, body)
        await handler(request, send)

    async def _content_type(self, hook_id: str, token: str, send: Send) -> None:
        hook = await self._gate(hook_id, token, send)
        if hook is not None:
            self._spend(hook, self.clock())
            errors = {"_errors": [{"code": "CONTENT_TYPE_INVALID", "message": "Expected JSON"}]}
            await _answer(send, 400, invalid_form(errors), self._bucket_headers(hook))

    async def _execute(self, call: _Call, send: Send) -> None:
        hook = await self._gate(call.hook_id, call.token, send)
        if hook is None:
            return
        now = self.clock()
        channel = self.channel_hits.setdefault(hook.channel_id, deque())
        window(channel, now, CHANNEL_WINDOW)
        if len(channel) >= CHANNEL_LIMIT:
            retry = CHANNEL_WINDOW - (now - channel[0])
            await self._rate_limited(send, "channel", retry, {"X-RateLimit-Scope": "shared"})
            return
        self._spend(hook, now)
        headers = self._bucket_headers(hook)
        accepted = await self._posting(hook, call, headers, send)
        if accepted is None:
            return
        payload, thread, wait = accepted
        channel.append(now)
        message = self.record(hook, payload, thread, now)
        if wait:
            await _answer(send, 200, message.as_json(hook), headers)
        else:
            await _raw(send, 204, b"", headers)

    async def _posting(
        self, hook: SimWebhook, call: _Call, headers: dict[str, str], send: Send
    ) -> tuple[dict[str, Any], SimThread | None, bool] | None:
        """The body, the thread and `wait` of a post Discord would accept (None: answered)."""
        wait = _one(call.query, "wait", "false").lower()
        thread_id = _one(call.query, "thread_id") or None
        query_errors: dict[str, Any] = {}
        if wait not in _TRUE + _FALSE:
            query_errors["wait"] = {"_errors": [{"code": "BOOLEAN_TYPE_CONVERT", "message": wait}]}
        if thread_id is not None and not is_snowflake(thread_id):
            query_errors["thread_id"] = {
                "_errors": [{"code": "NUMBER_TYPE_COERCE", "message": "Value is not snowflake."}]
            }
        if query_errors:
            await _answer(send, 400, invalid_form(query_errors), headers)
            return None
        payload = loads(call.body)
        if payload is NOT_JSON:
            await _answer(send, 400, {"message": "400: Bad Request", "code": 50109}, headers)
            return None
        errors = payload_errors(payload)
        if errors:
            await _answer(send, 400, invalid_form(errors), headers)
            return None
        go_on, thread = await self._post_thread(hook, payload, thread_id, headers, send)
        return (payload, thread, wait in _TRUE) if go_on else None

    async def _post_thread(
        self,
        hook: SimWebhook,
        payload: dict[str, Any],
        thread_id: str | None,
        headers: dict[str, str],
        send: Send,
    ) -> tuple[bool, SimThread | None]:
        """Whether the post may go on (False: refused, answered), and the thread it goes into
        (None: the channel itself)."""
        channel = self.channels.get(hook.channel_id) or self.add_channel(hook.channel_id)
        thread_name = payload.get("thread_name")
        rule: tuple[int, str] | None = None
        if channel.forum and thread_id is None and thread_name is None:
            rule = (
                220001,
                "Webhooks posted to forum channels must have a thread_name or thread_id",
            )
        elif channel.forum and thread_id is not None and thread_name is not None:
            rule = (
                220002,
                "Webhooks posted to forum channels cannot have both a thread_name and thread_id",
            )
        elif not channel.forum and thread_name is not None:
            rule = (220003, "Webhooks can only create threads in forum channels")
        if rule is not None:
            await _answer(send, 400, {"message": rule[1], "code": rule[0]}, headers)
            return False, None
        if isinstance(thread_name, str):
            thread_id = self.add_thread(hook.channel_id, name=thread_name.strip())
        if thread_id is None:
            return True, None
        thread = self.thread_of(hook, thread_id)
        if thread is None:
            await _answer(send, 404, UNKNOWN_CHANNEL, headers)
            return False, None
        if thread.locked:
            await _answer(send, 403, MISSING_PERMISSIONS, headers)
            return False, None
        thread.archived = False  # posting into an archived thread unarchives it
        return True, thread

    async def _get_webhook(self, call: _Call, send: Send) -> None:
        hook = await self._gate(call.hook_id, call.token, send)
        if hook is None:
            return
        self._spend(hook, self.clock())
        await _answer(send, 200, hook.as_json(), self._bucket_headers(hook))

    async def _message(self, call: _Call, send: Send) -> None:
        """GET, PATCH or DELETE one of this webhook's messages."""
        hook = await self._gate(call.hook_id, call.token, send)
        if hook is None:
            return
        now = self.clock()
        self._spend(hook, now)
        headers = self._bucket_headers(hook)
        thread_id = _one(call.query, "thread_id") or None
        thread: SimThread | None = None
        if thread_id is not None:
            thread = self.thread_of(hook, thread_id) if is_snowflake(thread_id) else None
            if thread is None:
                await _answer(send, 404, UNKNOWN_CHANNEL, headers)
                return
        message = self.messages.get(call.message_id or "")
        if (
            message is None
            or message.deleted
            or message.webhook_id != hook.id
            or message.thread_id != thread_id
        ):
            await _answer(send, 404, UNKNOWN_MESSAGE, headers)
            return
        if call.method != "GET" and thread is not None and thread.locked:
            await _answer(send, 403, MISSING_PERMISSIONS, headers)
            return
        if call.method == "DELETE":
            message.deleted, message.deleted_at = True, now
            await _raw(send, 204, b"", headers)
            return
        if call.method == "PATCH" and not await self._edit(message, call, headers, send, now):
            return
        await _answer(send, 200, message.as_json(hook), headers)

    async def _edit(
        self, message: Received, call: _Call, headers: dict[str, str], send: Send, now: float
    ) -> bool:
        """Apply a PATCH (False: refused, answered). Content, embeds and flags replace the
        message's when given; `allowed_mentions` is always the edit's own (absent: the
        default), as Discord re-reads mentions under the edit's."""
        edit = loads(call.body)
        if edit is NOT_JSON:
            await _answer(send, 400, {"message": "400: Bad Request", "code": 50109}, headers)
            return False
        if not isinstance(edit, dict):
            await _answer(send, 400, invalid_form(payload_errors(edit)), headers)
            return False
        current = {k: v for k, v in message.payload.items() if k != "allowed_mentions"}
        current |= {k: edit[k] for k in ("content", "embeds", "flags") if k in edit}
        if "allowed_mentions" in edit:
            current["allowed_mentions"] = edit["allowed_mentions"]
        errors = payload_errors(current, edit=True)
        if errors:
            await _answer(send, 400, invalid_form(errors), headers)
            return False
        message.payload, message.edited_at = current, now
        message.edits.append(edit)
        return True

    async def _control(
        self, path: str, method: str, query: dict[str, list[str]], send: Send
    ) -> None:
        try:
            answer = self._controlled(path, method, query)
        except ValueError as exc:
            await _answer(send, 400, {"message": f"bad control parameter: {exc}", "code": 0})
            return
        if answer is None:
            await _answer(send, 404, {"message": "no such control", "code": 0})
        else:
            await _answer(send, 200, answer)

    def _controlled(
        self, path: str, method: str, query: dict[str, list[str]]
    ) -> dict[str, Any] | None:
        """The test-only `/_sim/` endpoints' answers (None: no such endpoint)."""

        def flag(key: str) -> bool:
            return _one(query, key, "false").lower() in _TRUE

        if path == "/_sim/webhooks" and method == "POST":
            hook = self.add_webhook(_one(query, "channel_id", DEFAULT_CHANNEL), forum=flag("forum"))
            return {"id": hook.id, "token": hook.token, "channel_id": hook.channel_id}
        if path == "/_sim/delete-webhook" and method == "POST":
            hook_id = _one(query, "id")
            if hook_id in self.webhooks:
                self.webhooks[hook_id].deleted = True
            return {}
        if path == "/_sim/channels" and method == "POST":
            channel = self.add_channel(
                _one(query, "channel_id", DEFAULT_CHANNEL),
                _one(query, "guild_id", DEFAULT_GUILD),
                forum=flag("forum"),
            )
            return {"id": channel.id, "guild_id": channel.guild_id, "forum": channel.forum}
        if path == "/_sim/deny-manage-webhooks" and method == "POST":
            self.deny_manage_webhooks(_one(query, "channel_id", DEFAULT_CHANNEL))
            return {}
        if path == "/_sim/threads" and method == "POST":
            channel_id = _one(query, "channel_id", DEFAULT_CHANNEL)
            thread_id = self.add_thread(
                channel_id,
                archived=flag("archived"),
                locked=flag("locked"),
                name=_one(query, "name", "a thread"),
            )
            return {"id": thread_id, "channel_id": channel_id}
        if path == "/_sim/threads":
            return {"threads": [vars(t) for t in self.threads.values()]}
        if path == "/_sim/delete-thread" and method == "POST":
            self.delete_thread(_one(query, "id"))
            return {}
        if path == "/_sim/messages":
            return {
                "messages": [r.as_record() for r in self.received],
                "rate_limited": self.rate_limited,
                "invalid_requests": {a: len(h) for a, h in self.invalid.items()},
                "banned": sorted(a for a, t in self.banned_until.items() if t > self.clock()),
            }
        if path == "/_sim/requests":
            return {"requests": [vars(r) for r in self.requests]}
        if path == "/_sim/outage" and method == "POST":
            self.outage(float(_one(query, "seconds", "30")), int(_one(query, "status", "503")))
            return {"down_until": self.down_until}
        if path == "/_sim/fault" and method == "POST":
            self.faults.extend([_one(query, "mode")] * int(_one(query, "count", "1")))
            return {}
        return None


class _Call:
    """One request to a webhook route, as parsed from its path and query."""

    def __init__(
        self,
        hook_id: str,
        token: str,
        message_id: str | None,
        method: str,
        query: dict[str, list[str]],
        body: bytes,
    ) -> None:
        self.hook_id, self.token, self.message_id = hook_id, token, message_id
        self.method, self.query, self.body = method, query, body
