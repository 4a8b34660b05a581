"""EventSub over WebSocket, the pure part: reading messages, dropping repeats, planning
subscriptions inside the cost budget (reference/twitch-api.md §5).

Read liberally: a message that cannot be read raises `Malformed` (its kind counted by the
caller), never anything else; unknown fields are ignored and unknown message types come
back as `unknown`. The I/O shell is twitch/eventsub.py.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from clipwatch.twitch.helix import clean_text, parse_instant, usable_id

KNOWN_TYPES = frozenset(
    {"session_welcome", "session_keepalive", "notification", "session_reconnect", "revocation"}
)
ID_MAX = 128
TYPE_MAX = 64
TITLE_MAX = 1_000
NAME_MAX = 256
LANGUAGE_MAX = 16
URL_MAX = 2_048
KEEPALIVE_RANGE = (1, 600)
# What we subscribe to per channel: online and offline first (they make the live state),
# channel.update after (title and game only).
ONLINE = ("stream.online", "1")
OFFLINE = ("stream.offline", "1")
UPDATE = ("channel.update", "2")
SUBSCRIPTION_TYPES = (ONLINE, OFFLINE, UPDATE)
MAX_PER_CONNECTION = 300  # enabled subscriptions on one socket (§5.4)


class Malformed(ValueError):
    """A message that cannot be read; `kind` names why (for the counter and one log line)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


@dataclass(frozen=True)
class SessionInfo:
    id: str
    keepalive_s: int | None
    reconnect_url: str | None
    connected_at: datetime | None


@dataclass(frozen=True)
class SubscriptionInfo:
    id: str | None
    type: str
    version: str
    status: str
    cost: int | None
    channel_id: str | None


@dataclass(frozen=True)
class Message:
    type: str  # one of KNOWN_TYPES, or "unknown"
    message_id: str | None
    timestamp: datetime | None
    session: SessionInfo | None = None
    subscription: SubscriptionInfo | None = None
    event: dict[str, Any] | None = None


@dataclass(frozen=True)
class StreamOnline:
    channel_id: str
    stream_id: str | None
    started_at: datetime | None
    stream_type: str | None


@dataclass(frozen=True)
class StreamOffline:
    channel_id: str


@dataclass(frozen=True)
class ChannelUpdate:
    channel_id: str
    title: str | None
    language: str | None
    game_id: str | None
    game_name: str | None


Event = StreamOnline | StreamOffline | ChannelUpdate


def _loads(raw: str | bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:  # escaped lone surrogates are valid JSON that orjson refuses (twitch/client.py)
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Malformed("bad_json", str(exc)[:80]) from None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    cleaned = clean_text(value, limit)
    return cleaned or None


def _instant(value: Any) -> datetime | None:
    try:
        return parse_instant(value)
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def ws_url(value: Any) -> str | None:
    """A WebSocket URL we may connect to (`ws`/`wss` with a host), else None."""
    if not isinstance(value, str) or not 0 < len(value) <= URL_MAX or not value.isprintable():
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme in ("ws", "wss") and parts.hostname else None


def _session(payload: dict[str, Any]) -> SessionInfo:
    session = _dict(payload.get("session"))
    session_id = usable_id(session.get("id"), ID_MAX)
    if session_id is None:
        raise Malformed("no_session_id")
    keepalive = _int(session.get("keepalive_timeout_seconds"))
    if keepalive is not None:
        keepalive = min(max(keepalive, KEEPALIVE_RANGE[0]), KEEPALIVE_RANGE[1])
    return SessionInfo(
        id=session_id,
        keepalive_s=keepalive,
        reconnect_url=ws_url(session.get("reconnect_url")),
        connected_at=_instant(session.get("connected_at")),
    )


def _subscription(payload: dict[str, Any], metadata: dict[str, Any]) -> SubscriptionInfo:
    sub = _dict(payload.get("subscription"))
    sub_type = _text(sub.get("type"), TYPE_MAX) or _text(
        metadata.get("subscription_type"), TYPE_MAX
    )
    if sub_type is None:
        raise Malformed("no_subscription_type")
    version = _text(sub.get("version"), 8) or _text(metadata.get("subscription_version"), 8)
    return SubscriptionInfo(
        id=usable_id(sub.get("id"), ID_MAX),
        type=sub_type,
        version=version or "",
        status=_text(sub.get("status"), TYPE_MAX) or "",
        cost=_int(sub.get("cost")),
        channel_id=usable_id(_dict(sub.get("condition")).get("broadcaster_user_id"), 64),
    )


def parse_message(raw: str | bytes) -> Message:
    """One WebSocket message; `Malformed` when it cannot be read at all."""
    body = _loads(raw)
    if not isinstance(body, dict):
        raise Malformed("not_an_object")
    metadata = _dict(body.get("metadata"))
    payload = _dict(body.get("payload"))
    kind = metadata.get("message_type")
    if not isinstance(kind, str):
        raise Malformed("no_message_type")
    message_id = usable_id(metadata.get("message_id"), ID_MAX)
    timestamp = _instant(metadata.get("message_timestamp"))
    if kind not in KNOWN_TYPES:
        return Message("unknown", message_id, timestamp)
    if kind in ("session_welcome", "session_reconnect"):
        session = _session(payload)
        if kind == "session_reconnect" and session.reconnect_url is None:
            raise Malformed("bad_reconnect_url")
        return Message(kind, message_id, timestamp, session=session)
    if kind == "session_keepalive":
        return Message(kind, message_id, timestamp)
    subscription = _subscription(payload, metadata)
    if kind == "notification":
        if message_id is None:
            raise Malformed("no_message_id")  # cannot be deduplicated, nor trusted
        event = payload.get("event")
        if not isinstance(event, dict):
            raise Malformed("no_event")
        return Message(kind, message_id, timestamp, subscription=subscription, event=event)
    return Message(kind, message_id, timestamp, subscription=subscription)


def parse_event(subscription: SubscriptionInfo, event: dict[str, Any]) -> Event | None:
    """The event of a notification we subscribe to; None for other types; Malformed when
    it names no channel."""
    channel_id = usable_id(event.get("broadcaster_user_id"), 64) or subscription.channel_id
    if subscription.type not in {t for t, _ in SUBSCRIPTION_TYPES}:
        return None
    if channel_id is None:
        raise Malformed("no_channel")
    if subscription.type == ONLINE[0]:
        return StreamOnline(
            channel_id=channel_id,
            stream_id=usable_id(event.get("id"), 64),
            started_at=_instant(event.get("started_at")),
            stream_type=_text(event.get("type"), 16),
        )
    if subscription.type == OFFLINE[0]:
        return StreamOffline(channel_id)
    return ChannelUpdate(
        channel_id=channel_id,
        title=_text(event.get("title"), TITLE_MAX),
        language=_text(event.get("language"), LANGUAGE_MAX),
        game_id=usable_id(event.get("category_id"), 64),
        game_name=_text(event.get("category_name"), NAME_MAX),
    )


class SeenMessages:
    """Message ids seen lately (delivery is at least once: a repeat keeps its id). Bounded
    both ways: ids older than `ttl_s` are forgotten, and at most `limit` are kept."""

    def __init__(
        self,
        *,
        limit: int = 1_000,
        ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.ttl_s = ttl_s
        self._clock = clock
        self._ids: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def repeat(self, message_id: str) -> bool:
        """True when this id was seen (drop the message); records it otherwise."""
        moment = self._clock()
        while self._ids:
            oldest, at = next(iter(self._ids.items()))
            if moment - at <= self.ttl_s and len(self._ids) < self.limit:
                break
            del self._ids[oldest]
        if message_id in self._ids:
            return True
        self._ids[message_id] = moment
        return False


@dataclass(frozen=True)
class Wanted:
    channel_id: str
    type: str
    version: str


def plan_subscriptions(
    channel_ids: Iterable[str],
    *,
    skip: set[tuple[str, str]] | None = None,
    skip_types: set[tuple[str, str]] | None = None,
) -> list[list[Wanted]]:
    """Groups to create in order: each channel's online+offline pair first (both or none
    make the live state), then each channel's channel.update. `skip` holds (type, channel)
    pairs that were revoked, `skip_types` (type, version) pairs Twitch removed."""
    skip = skip or set()
    skip_types = skip_types or set()
    channels = sorted(set(channel_ids))
    groups: list[list[Wanted]] = []
    for kinds in ((ONLINE, OFFLINE), (UPDATE,)):
        for channel in channels:
            group = [
                Wanted(channel, t, v)
                for t, v in kinds
                if (t, channel) not in skip and (t, v) not in skip_types
            ]
            if group:
                groups.append(group)
    return groups


def fits(
    group: Sequence[Wanted],
    *,
    total_cost: int,
    max_total_cost: int | None,
    unit_cost: int,
    created: int,
) -> bool:
    """Whether a group can be created without passing Twitch's `max_total_cost` (unknown
    before the first answer: try) or the subscriptions a connection may hold."""
    if created + len(group) > MAX_PER_CONNECTION:
        return False
    if max_total_cost is None:
        return True
    return total_cost + unit_cost * len(group) <= max_total_cost
