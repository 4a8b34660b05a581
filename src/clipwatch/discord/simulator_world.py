"""What the Discord simulator holds: channels (in servers, some of them forums), threads,
webhooks and the messages they posted, kept by id so they can be read, edited and deleted.
No HTTP here (simulator.py answers requests over this state)."""

from __future__ import annotations

import itertools
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from clipwatch.discord.simulator_checks import pinged

DEFAULT_CHANNEL = "900000000000000001"
DEFAULT_GUILD = "800000000000000001"
MAX_CHANNEL_WEBHOOKS = 15  # Discord's code 30007 "Maximum number of webhooks reached (15)"


@dataclass
class SimChannel:
    id: str
    guild_id: str
    forum: bool = False  # a forum (or media) channel: every message goes to a post (thread)
    manage_webhooks: bool = True  # whether the bot may create and list webhooks here


@dataclass
class SimThread:
    id: str
    channel_id: str  # the parent channel (a forum's posts are threads of it too)
    name: str
    archived: bool = False
    locked: bool = False
    deleted: bool = False


@dataclass
class SimWebhook:
    id: str
    token: str
    channel_id: str
    deleted: bool = False
    hits: deque[float] = field(default_factory=deque)
    name: str = "Captain Hook"
    guild_id: str = DEFAULT_GUILD
    by_bot: bool = False  # created through the bot's `POST /channels/{id}/webhooks`

    @property
    def pasted_url(self) -> str:
        """The URL a user would paste into a route: Discord's host; deliveries reach the
        simulator through CLIPWATCH_DISCORD_API_URL."""
        return f"https://discord.com/api/webhooks/{self.id}/{self.token}"

    def as_json(self, *, token: bool = True) -> dict[str, Any]:
        """Discord's webhook object (type 1, incoming); the token only where Discord shows it."""
        body: dict[str, Any] = {
            "id": self.id,
            "type": 1,
            "guild_id": self.guild_id,
            "channel_id": self.channel_id,
            "name": self.name,
            "avatar": None,
            "application_id": None,
        }
        if token:
            body["token"] = self.token
        return body


@dataclass(frozen=True)
class Request:
    webhook_id: str
    status: int
    at: float
    kind: str = "execute"  # execute, get_webhook, get/edit/delete_message, create/list_webhooks
    channel_id: str = ""  # for the bot's channel routes


@dataclass
class Received:
    """A message a webhook posted. `payload` is its current body (edits replace content,
    embeds and allowed_mentions); `edits` every PATCH body in order; a deleted message stays
    listed with `deleted` set."""

    webhook_id: str
    channel_id: str  # the webhook's channel (a thread's parent)
    message_id: str
    payload: dict[str, Any]
    at: float
    thread_id: str | None = None  # the thread (or forum post) it went into
    thread_name: str | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)
    edited_at: float | None = None
    deleted: bool = False
    deleted_at: float | None = None

    @property
    def where(self) -> str:
        """The message's `channel_id` as Discord gives it: the thread when in one."""
        return self.thread_id or self.channel_id

    @property
    def pinged(self) -> dict[str, Any]:
        return pinged(self.payload.get("content"), self.payload.get("allowed_mentions"))

    def as_json(self, hook: SimWebhook) -> dict[str, Any]:
        """Discord's message object for this message, as `?wait=true` and GET answer it."""
        mentions = self.pinged
        username = self.payload.get("username")
        return {
            "id": self.message_id,
            "type": 0,
            "channel_id": self.where,
            "webhook_id": self.webhook_id,
            "author": {
                "id": self.webhook_id,
                "username": username if isinstance(username, str) else hook.name,
                "avatar": None,
                "bot": True,
                "discriminator": "0000",
            },
            "content": self.payload.get("content") or "",
            "embeds": self.payload.get("embeds") or [],
            "allowed_mentions": self.payload.get("allowed_mentions"),
            "mention_roles": mentions["roles"],
            "mentions": [{"id": u} for u in mentions["users"]],
            "mention_everyone": mentions["everyone"],
            "tts": False,
            "pinned": False,
            "attachments": [],
            "components": [],
            "flags": self.payload.get("flags") or 0,
            "timestamp": _iso(self.at),
            "edited_timestamp": _iso(self.edited_at) if self.edited_at else None,
        }

    def as_record(self) -> dict[str, Any]:
        """What `/_sim/messages` lists."""
        return {
            "webhook_id": self.webhook_id,
            "message_id": self.message_id,
            "channel_id": self.channel_id,
            "thread_id": self.thread_id,
            "thread_name": self.thread_name,
            "at": self.at,
            "payload": self.payload,
            "pinged": self.pinged,
            "edits": len(self.edits),
            "edited_at": self.edited_at,
            "deleted": self.deleted,
        }


def _iso(at: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}000+00:00"
    )


class SimWorld:
    """Servers' channels, threads, webhooks and messages, by id."""

    def __init__(self) -> None:
        self.channels: dict[str, SimChannel] = {}
        self.threads: dict[str, SimThread] = {}
        self.webhooks: dict[str, SimWebhook] = {}
        self.received: list[Received] = []  # every message accepted, in order
        self.messages: dict[str, Received] = {}  # the same, by message id
        self._ids = itertools.count(1_100_000_000_000_000_000)

    def snowflake(self) -> str:
        return str(next(self._ids))

    def add_channel(
        self, channel_id: str, guild_id: str = DEFAULT_GUILD, *, forum: bool = False
    ) -> SimChannel:
        """A channel of a server (a forum with `forum`); its webhooks carry its `guild_id`."""
        channel = self.channels.get(channel_id)
        if channel is None:
            channel = self.channels[channel_id] = SimChannel(channel_id, guild_id, forum)
        else:
            channel.guild_id = guild_id
            channel.forum = channel.forum or forum
        return channel

    def forum_channel(self, channel_id: str, guild_id: str = DEFAULT_GUILD) -> SimChannel:
        return self.add_channel(channel_id, guild_id, forum=True)

    def add_webhook(
        self,
        channel_id: str = DEFAULT_CHANNEL,
        *,
        forum: bool = False,
        name: str = "Captain Hook",
        by_bot: bool = False,
    ) -> SimWebhook:
        """A webhook of `channel_id` (made a forum channel with `forum`; a channel not added
        yet joins the default server)."""
        channel = self.channels.get(channel_id) or self.add_channel(channel_id)
        channel.forum = channel.forum or forum
        hook = SimWebhook(
            self.snowflake(),
            secrets.token_urlsafe(51),
            channel_id,
            name=name,
            guild_id=channel.guild_id,
            by_bot=by_bot,
        )
        self.webhooks[hook.id] = hook
        return hook

    def add_thread(
        self,
        channel_id: str = DEFAULT_CHANNEL,
        *,
        archived: bool = False,
        locked: bool = False,
        name: str = "a thread",
    ) -> str:
        """A thread of `channel_id` (a post, in a forum); its id."""
        if channel_id not in self.channels:
            self.add_channel(channel_id)
        thread = SimThread(self.snowflake(), channel_id, name, archived, locked)
        self.threads[thread.id] = thread
        return thread.id

    def delete_thread(self, thread_id: str) -> None:
        if thread_id in self.threads:
            self.threads[thread_id].deleted = True

    def deny_manage_webhooks(self, channel_id: str) -> None:
        """The bot loses Manage Webhooks in `channel_id`: creating or listing webhooks there
        answers 403 50013."""
        (self.channels.get(channel_id) or self.add_channel(channel_id)).manage_webhooks = False

    def thread_of(self, hook: SimWebhook, thread_id: str) -> SimThread | None:
        """The live thread `thread_id` of the webhook's channel (None: Discord's 10003)."""
        thread = self.threads.get(thread_id)
        if thread is None or thread.deleted or thread.channel_id != hook.channel_id:
            return None
        return thread

    def channel_webhooks(self, channel_id: str) -> list[SimWebhook]:
        return [h for h in self.webhooks.values() if h.channel_id == channel_id and not h.deleted]

    def record(
        self, hook: SimWebhook, payload: dict[str, Any], thread: SimThread | None, at: float
    ) -> Received:
        message = Received(
            hook.id,
            hook.channel_id,
            self.snowflake(),
            payload,
            at,
            thread_id=thread.id if thread else None,
            thread_name=thread.name if thread else None,
        )
        self.received.append(message)
        self.messages[message.message_id] = message
        return message
