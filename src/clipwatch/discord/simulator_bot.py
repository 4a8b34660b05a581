"""The Discord simulator's bot routes (`Authorization: Bot <token>`): slash-command
registration and a channel's webhooks (`POST|GET /channels/{id}/webhooks`), with Manage
Webhooks, Discord's name rules and its 15-webhook cap, a per-channel bucket and the global
limit."""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Unpack

from clipwatch.discord.simulator_checks import (
    MISSING_PERMISSIONS,
    NOT_JSON,
    UNAUTHORIZED,
    UNKNOWN_CHANNEL,
    invalid_form,
    loads,
    name_errors,
    payload_errors,
)
from clipwatch.discord.simulator_limits import (
    WEBHOOK_LIMIT,
    WEBHOOK_WINDOW,
    LimitOptions,
    SimLimits,
    window,
)
from clipwatch.discord.simulator_world import MAX_CHANNEL_WEBHOOKS
from clipwatch.simhttp import Send
from clipwatch.simhttp import answer as _answer

BOT_USER = {"user": {"id": "700000000000000001", "username": "clipwatch", "bot": True}}
_SOMEONE = {"user": {"id": "700000000000000002", "username": "a server admin"}}


class BotOptions(LimitOptions, total=False):
    """SimBot's options, as DiscordSimulator passes them on."""

    bot_token: str


class SimBot(SimLimits):
    def __init__(self, *, bot_token: str = "sim-bot-token", **limits: Unpack[LimitOptions]) -> None:
        super().__init__(**limits)
        self.bot_token = bot_token
        # Registered slash commands: (application id, guild id or None) -> commands.
        self.commands: dict[tuple[str, str | None], list[dict[str, Any]]] = {}

    async def _register(
        self, registered: re.Match[str], headers: dict[bytes, bytes], body: bytes, send: Send
    ) -> None:
        if not self._is_bot(headers):
            await _answer(send, 401, UNAUTHORIZED)
            return
        commands = loads(body)
        if not isinstance(commands, list) or len(commands) > 100:
            await _answer(send, 400, invalid_form({}))
            return
        self.commands[(registered.group(1), registered.group(2))] = commands
        await _answer(
            send,
            200,
            [{"id": self.snowflake(), **c} if isinstance(c, dict) else c for c in commands],
        )

    def _is_bot(self, headers: dict[bytes, bytes]) -> bool:
        return headers.get(b"authorization", b"").decode(errors="replace") == (
            f"Bot {self.bot_token}"
        )

    async def _channel_webhooks(
        self, method: str, channel_id: str, headers: dict[bytes, bytes], body: bytes, send: Send
    ) -> None:
        """The bot's `POST|GET /channels/{id}/webhooks`."""
        if not self._is_bot(headers):
            await _answer(send, 401, UNAUTHORIZED)
            return
        now = self.clock()
        if await self._global_limited(send, now):
            return
        hits = self.route_hits.setdefault(f"{method} {channel_id}", deque())
        window(hits, now, WEBHOOK_WINDOW)
        bucket = self._route_headers(hits, now, channel_id)
        if len(hits) >= WEBHOOK_LIMIT:
            retry = WEBHOOK_WINDOW - (now - hits[0])
            await self._rate_limited(send, "bot", retry, bucket | {"X-RateLimit-Scope": "user"})
            return
        self.global_hits.append(now)
        hits.append(now)
        bucket = self._route_headers(hits, now, channel_id)
        channel = self.channels.get(channel_id)
        if channel is None:
            await _answer(send, 404, UNKNOWN_CHANNEL, bucket)
            return
        if not channel.manage_webhooks:
            await _answer(send, 403, MISSING_PERMISSIONS, bucket)
            return
        if method == "GET":
            # Tokens of the bot's own webhooks only: another's token is not the bot's to use.
            listed = [
                h.as_json(token=h.by_bot) | (BOT_USER if h.by_bot else _SOMEONE)
                for h in self.channel_webhooks(channel_id)
            ]
            await _answer(send, 200, listed, bucket)
            return
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            errors = {"_errors": [{"code": "CONTENT_TYPE_INVALID", "message": "Expected JSON"}]}
            await _answer(send, 400, invalid_form(errors), bucket)
            return
        asked = loads(body)
        if asked is NOT_JSON:
            await _answer(send, 400, {"message": "400: Bad Request", "code": 50109}, bucket)
            return
        if not isinstance(asked, dict):
            await _answer(send, 400, invalid_form(payload_errors(asked)), bucket)
            return
        bad_name = name_errors(asked.get("name"))
        if bad_name:
            await _answer(send, 400, invalid_form({"name": bad_name}), bucket)
            return
        if len(self.channel_webhooks(channel_id)) >= MAX_CHANNEL_WEBHOOKS:
            full = {"message": "Maximum number of webhooks reached (15)", "code": 30007}
            await _answer(send, 400, full, bucket)
            return
        hook = self.add_webhook(channel_id, name=asked["name"], by_bot=True)
        await _answer(send, 200, hook.as_json() | BOT_USER, bucket)
