"""The few bot-token calls /clipwatch follow needs: a channel's webhooks, and a new one.

`Authorization: Bot <token>` (reference §5.4). The bot token and the webhook tokens Discord
returns never leave this module in text: outcomes carry Discord's message and code only.
A 429 is waited out once when it is short (a command is answered within minutes at most);
a longer one is an outcome the user reads.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from clipwatch.outbound import http_client

WEBHOOK_NAME = "clipwatch"
SHORT_WAIT_S = 5.0  # a 429 asking for longer than this is answered, not waited out
INCOMING = 1  # webhook type: incoming (has a token); 2 is a channel follower


@dataclass(frozen=True)
class BotWebhook:
    id: str
    token: str
    channel_id: str
    guild_id: str
    name: str


@dataclass(frozen=True)
class BotRefused:
    """Discord said no: `status` and its JSON `code` (50013: the bot lacks a permission;
    30007: the channel has the most webhooks allowed; 10003: no such channel)."""

    status: int
    code: int | None
    message: str


@dataclass(frozen=True)
class BotUnavailable:
    reason: str


BotOutcome = BotWebhook | BotRefused | BotUnavailable
MISSING_PERMISSIONS, MAX_WEBHOOKS, UNKNOWN_CHANNEL = 50013, 30007, 10003


class BotApi:
    def __init__(
        self, api_url: str, bot_token: str, *, http: httpx.AsyncClient | None = None
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = bot_token
        self._http = http or http_client(timeout=10.0)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def webhook_for(self, channel_id: str, application_id: str) -> tuple[BotOutcome, bool]:
        """The channel's webhook named "clipwatch" that this application made, or a new one:
        (outcome, whether it was created now)."""
        path = f"/channels/{quote(channel_id, safe='')}/webhooks"
        found = await self._call("GET", path, None)
        if not isinstance(found, list):
            return _problem(found), False
        for hook in found:
            mine = isinstance(hook, dict) and _made_by(hook, application_id)
            if mine and hook.get("name") == WEBHOOK_NAME and hook.get("type") == INCOMING:
                made = _webhook(hook, channel_id)
                if made is not None:
                    return made, False
        created = await self._call("POST", path, {"name": WEBHOOK_NAME})
        if isinstance(created, dict) and (made := _webhook(created, channel_id)) is not None:
            return made, True
        return _problem(created), False

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> list[Any] | dict[str, Any] | BotRefused | BotUnavailable:
        for attempt in range(2):
            try:
                answer = await self._http.request(
                    method,
                    f"{self.api_url}{path}",
                    content=None if body is None else orjson.dumps(body),
                    headers={
                        "Authorization": f"Bot {self._token}",
                        "Content-Type": "application/json",
                    },
                )
            except httpx.TransportError as exc:
                return BotUnavailable(f"Discord did not answer ({type(exc).__name__})")
            data = _json(answer)
            if answer.status_code in (200, 201):
                return data if isinstance(data, list | dict) else BotUnavailable("odd answer")
            if answer.status_code == 429:
                wait = _retry_after(answer, data)
                if attempt == 0 and wait is not None and wait <= SHORT_WAIT_S:
                    await asyncio.sleep(wait)
                    continue
                return BotUnavailable("Discord asks the bot to slow down")
            if answer.status_code >= 500:
                return BotUnavailable(f"Discord answered {answer.status_code}")
            said = data if isinstance(data, dict) else {}
            code = said.get("code") if type(said.get("code")) is int else None
            message = str(said.get("message") or answer.reason_phrase)[:200]
            return BotRefused(answer.status_code, code, message.replace(self._token, "…"))
        return BotUnavailable("Discord asks the bot to slow down")


def _made_by(hook: dict[str, Any], application_id: str) -> bool:
    user = hook.get("user")
    maker = user.get("id") if isinstance(user, dict) else None
    return bool(application_id) and application_id in (hook.get("application_id"), maker)


def _webhook(hook: dict[str, Any], channel_id: str) -> BotWebhook | None:
    hook_id, token = hook.get("id"), hook.get("token")
    if not (isinstance(hook_id, str) and hook_id.isdigit() and isinstance(token, str) and token):
        return None
    return BotWebhook(
        hook_id,
        token,
        str(hook.get("channel_id") or channel_id),
        str(hook.get("guild_id") or ""),
        str(hook.get("name") or WEBHOOK_NAME)[:100],
    )


def _problem(outcome: object) -> BotRefused | BotUnavailable:
    if isinstance(outcome, BotRefused | BotUnavailable):
        return outcome
    return BotUnavailable("Discord's answer held no usable webhook")


def _retry_after(answer: httpx.Response, data: object) -> float | None:
    said = data.get("retry_after") if isinstance(data, dict) else None
    for value in (said, answer.headers.get("retry-after")):
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
    return None


def _json(answer: httpx.Response) -> object:
    try:
        return orjson.loads(answer.content) if answer.content else None
    except orjson.JSONDecodeError:
        return None
