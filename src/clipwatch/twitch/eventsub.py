"""The EventSub WebSocket client (reference/twitch-api.md §5; docs/eventsub.md).

One socket at a time (two during a `session_reconnect` hand-over). Every socket's reader
puts what it receives on one queue, stamped with its connection, so events from an old and
a new socket are handled in order of arrival and deduplicated by message id together.

- Welcome: the subscriptions (stream.online/offline, channel.update v2 per tracked channel)
  are created at once (Twitch closes an unused socket with 4003 after the keepalive time),
  online+offline first, while Twitch's `max_total_cost` leaves room; the rest is polled.
- Watchdog: nothing received within keepalive + grace: the link is dead; reconnect.
- Hand-over: `session_reconnect` opens a socket to its URL while the old one stays; the new
  welcome closes the old one; subscriptions carry over (none created).
- A drop (any close code, an error): reconnect to the base URL with a jittered backoff and
  create the subscriptions again. 4001 (we sent something) is our bug, logged as an error.
- Revocations are marked and never created again (until a new token is connected).
- A message that cannot be read is counted and logged once per kind; the socket lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import eventsub as rows
from clipwatch.errors import ClipwatchError
from clipwatch.monitoring import metrics
from clipwatch.monitoring.logging import describe_error
from clipwatch.twitch.client import TwitchError
from clipwatch.twitch.eventsub_messages import (
    OFFLINE,
    ONLINE,
    Event,
    Malformed,
    Message,
    SeenMessages,
    Wanted,
    fits,
    parse_event,
    parse_message,
    plan_subscriptions,
)
from clipwatch.twitch.helix import clean_text, usable_id
from clipwatch.twitch.user_tokens import UserTokenFailed

log = structlog.get_logger("clipwatch.eventsub")

WELCOME_TIMEOUT_S = 10.0  # connect + welcome
MAX_MESSAGE_BYTES = 4 * 2**20  # Twitch's messages are small; a frame above this ends the socket
STABLE_S = 30.0  # a session that lived this long resets the reconnect backoff
IDLE_CHECK_S = 5.0  # without channels: how often to look again (a change wakes it at once)
BACKOFF_CAP_S = 60.0
CREATE_ATTEMPTS = 3
CLOSE_MEANING = {
    4000: "Twitch server error",
    4001: "we sent traffic on a receive-only socket (a clipwatch bug)",
    4002: "failed ping-pong",
    4003: "connection unused: no subscription in time",
    4004: "reconnect grace time expired",
    4005: "network timeout",
    4006: "network error",
    4007: "invalid reconnect URL",
}
FALLBACK_STATUSES = ("authorization_revoked", "user_removed", "moderator_removed")


class EventHandler(Protocol):
    async def __call__(self, event: Event) -> None: ...


class TokenSource(Protocol):
    async def access_token(self) -> str: ...

    async def refresh(self, reason: str, used: str | None = None) -> str: ...

    def revalidate_soon(self) -> None: ...


def reconnect_delay(failures: int) -> float:
    """Full jitter: up to 1 s after a first drop, doubling to a minute while drops repeat."""
    return random.uniform(0, min(BACKOFF_CAP_S, 2.0 ** max(failures - 1, 0)))


@dataclass
class Closed:
    code: int | None
    reason: str = ""


_WAKE = Closed(None, "wake")  # not a close: the subscriber task ended


@dataclass
class _Conn:
    url: str
    last_at: float
    ws: ClientConnection | None = None
    task: asyncio.Task[None] | None = None
    welcomed: bool = False

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(1000), timeout=2.0)
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


@dataclass
class Created:
    wanted: Wanted
    id: str
    status: str
    cost: int


@dataclass
class EventSubState:
    """What the client is doing, for the worker task's detail (status, /api/v1/eventsub)."""

    socket: str = "idle"  # idle | connecting | connected | backoff | stopped
    session_id: str | None = None
    connected_at: datetime | None = None
    last_message_at: datetime | None = None
    subscriptions: dict[str, Created] = field(default_factory=dict)  # enabled, by id
    total_cost: int | None = None
    max_total_cost: int | None = None
    channels: int = 0
    over_budget: set[str] = field(default_factory=set)  # channels left to polling
    revoked: set[tuple[str, str]] = field(default_factory=set)  # (type, channel)
    removed_types: set[tuple[str, str]] = field(default_factory=set)  # (type, version)
    reconnects: int = 0
    events: int = 0
    duplicates: int = 0
    malformed: int = 0
    last_close: str | None = None

    def covered(self) -> set[str]:
        """Channels whose online and offline both come by EventSub."""
        kinds: dict[str, set[str]] = {}
        for sub in self.subscriptions.values():
            kinds.setdefault(sub.wanted.channel_id, set()).add(sub.wanted.type)
        return {c for c, k in kinds.items() if {ONLINE[0], OFFLINE[0]} <= k}

    def detail(self) -> dict[str, Any]:
        return {
            "socket": self.socket,
            "session_id": self.session_id,
            "connected_at": self.connected_at.isoformat() if self.connected_at else None,
            "last_message_at": self.last_message_at.isoformat() if self.last_message_at else None,
            "subscriptions": len(self.subscriptions),
            "total_cost": self.total_cost,
            "max_total_cost": self.max_total_cost,
            "channels": self.channels,
            "covered_channels": len(self.covered()),
            "over_budget_channels": len(self.over_budget),
            "revoked": len(self.revoked),
            "reconnects": self.reconnects,
            "events": self.events,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "last_close": self.last_close,
        }


class EventSubClient:
    def __init__(
        self,
        *,
        ws_url: str,
        api_url: str,
        client_id: str,
        tokens: TokenSource,
        channels: Callable[[], Awaitable[list[str]]],
        handler: EventHandler,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        keepalive_s: int = 30,
        grace_s: float | None = None,
        seen: SeenMessages | None = None,
    ) -> None:
        self.base_url = ws_url
        self.api_url = api_url
        self.client_id = client_id
        self.tokens = tokens
        self.channels = channels
        self.handler = handler
        self.sessionmaker = sessionmaker
        self.http = http
        self.keepalive_s = keepalive_s
        self.grace_s = grace_s
        self.seen = seen or SeenMessages()
        self.state = EventSubState()
        self._keepalive_now = float(keepalive_s)
        self._logged: set[str] = set()
        self._resubscribe = asyncio.Event()
        self._wake: Callable[[], None] | None = None  # wakes the running session's loop

    # --- the loop -----------------------------------------------------------------------------

    def connect_url(self) -> str:
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}{urlencode({'keepalive_timeout_seconds': self.keepalive_s})}"

    def channels_changed(self) -> None:
        """The tracked channels changed: create what is missing on the current socket."""
        self._resubscribe.set()
        if self._wake is not None:
            self._wake()

    async def run(self, stop: asyncio.Event) -> None:
        """Hold a socket until `stop`; UserTokenFailed ends it (polling carries on)."""
        failures = 0
        try:
            while not stop.is_set():
                try:
                    channels = await self.channels()
                except (SQLAlchemyError, OSError) as exc:
                    self._log_once(
                        "channels", "eventsub_channels_unread", error=describe_error(exc, 200)
                    )
                    await _wait(stop, 5.0)
                    continue
                if not channels:
                    # An empty socket would be closed with 4003: connect once there is work.
                    self.state.socket = "idle"
                    await _wait_either(stop, self._resubscribe, IDLE_CHECK_S)
                    self._resubscribe.clear()  # a fresh socket subscribes everything
                    continue
                self.state.socket = "connecting"
                started = asyncio.get_running_loop().time()
                try:
                    reason = await self._until_stop(self._one_session(channels), stop)
                except UserTokenFailed:
                    raise
                except (TwitchError, SQLAlchemyError, OSError) as exc:
                    error = describe_error(exc, 200)
                    self._log_once(
                        f"session:{type(exc).__name__}", "eventsub_session_failed", error=error
                    )
                    reason = "error"
                if reason is None:
                    return
                lived = asyncio.get_running_loop().time() - started
                failures = 1 if lived >= STABLE_S else failures + 1
                self.state.reconnects += 1
                self.state.last_close = reason
                metrics.EVENTSUB_RECONNECTS.labels(reason).inc()
                self._forget_socket()
                self.state.socket = "backoff"
                await _wait(stop, reconnect_delay(failures))
        finally:
            self._forget_socket()
            self.state.socket = "stopped"

    async def _until_stop(self, work: Awaitable[str], stop: asyncio.Event) -> str | None:
        session = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({session, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not session.done():
                session.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await session
        if stop.is_set() and not session.done():
            return None
        if session.cancelled():
            return None
        return session.result()  # raises UserTokenFailed and bugs

    def _forget_socket(self) -> None:
        self.state.session_id = None
        self.state.connected_at = None
        self.state.subscriptions.clear()
        metrics.EVENTSUB_CONNECTED.set(0)
        metrics.EVENTSUB_SUBSCRIPTIONS.set(0)

    def _watchdog_s(self) -> float:
        grace = self.grace_s if self.grace_s is not None else max(2.0, self._keepalive_now * 0.5)
        return self._keepalive_now + grace

    async def _one_session(self, channels: list[str]) -> str:
        """One socket (and its hand-overs) until it is lost; the reason, for the counter."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[_Conn, str | bytes | Closed]] = asyncio.Queue()
        current = self._open(self.connect_url(), queue)
        pending: _Conn | None = None
        subscriber: asyncio.Task[None] | None = None
        self.state.channels = len(channels)
        self._wake = lambda: queue.put_nowait((current, _WAKE))
        try:
            while True:
                if subscriber is not None and subscriber.done():
                    error = None if subscriber.cancelled() else subscriber.exception()
                    if error is not None:
                        raise error
                    subscriber = None
                if self._resubscribe.is_set() and current.welcomed and subscriber is None:
                    self._resubscribe.clear()
                    try:
                        channels = await self.channels()
                    except (SQLAlchemyError, OSError):
                        self._resubscribe.set()  # tried again with the next message
                    else:
                        self.state.channels = len(channels)
                        subscriber = self._subscriber(channels, current, queue)
                limit = self._watchdog_s() if current.welcomed else WELCOME_TIMEOUT_S
                timeout = current.last_at + limit - loop.time()
                try:
                    conn, item = await asyncio.wait_for(queue.get(), max(timeout, 0.0))
                except TimeoutError:
                    _token_failure(subscriber)
                    self._log_once("keepalive", "eventsub_keepalive_lost", limit_s=limit)
                    return "keepalive" if current.welcomed else "no_welcome"
                if item is _WAKE:
                    continue  # the subscriber ended, or channels changed: looked at above
                if isinstance(item, Closed):
                    if conn is current:
                        _token_failure(subscriber)  # the cause, if the token failed first
                        return self._closed(item)
                    if conn is pending:
                        log.warning("eventsub_handover_failed", code=item.code, error=item.reason)
                        pending = None
                    continue
                message = self._read(item)
                if message is None:
                    continue
                self.state.last_message_at = datetime.now(UTC)
                if message.type == "session_welcome":
                    assert message.session is not None
                    if conn is pending:
                        old, current, pending = current, conn, None
                        current.welcomed = True
                        await self._handed_over(old, message)
                        await old.close()
                    elif conn is current and not current.welcomed:
                        current.welcomed = True
                        self._welcomed(message)
                        subscriber = self._subscriber(channels, current, queue)
                elif message.type == "session_reconnect":
                    assert message.session is not None
                    assert message.session.reconnect_url
                    if conn is current and pending is None:
                        log.info("eventsub_reconnect_requested")
                        pending = self._open(message.session.reconnect_url, queue)
                elif message.type == "notification":
                    await self._notified(message)
                elif message.type == "revocation":
                    await self._revoked(message)
        finally:
            self._wake = None
            if subscriber is not None:
                subscriber.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await subscriber
            for open_conn in (pending, current):
                if open_conn is not None:
                    await open_conn.close()

    def _subscriber(
        self,
        channels: list[str],
        conn: _Conn,
        queue: asyncio.Queue[tuple[_Conn, str | bytes | Closed]],
    ) -> asyncio.Task[None]:
        """Create the subscriptions beside the reading; its end wakes the loop (a token
        that failed must end the session at once, not at the next message)."""
        task = asyncio.create_task(self._subscribe_all(channels))
        task.add_done_callback(lambda _: queue.put_nowait((conn, _WAKE)))
        return task

    def _open(self, url: str, queue: asyncio.Queue[tuple[_Conn, str | bytes | Closed]]) -> _Conn:
        conn = _Conn(url, asyncio.get_running_loop().time())
        conn.task = asyncio.create_task(self._reader(conn, queue))
        return conn

    async def _reader(
        self, conn: _Conn, queue: asyncio.Queue[tuple[_Conn, str | bytes | Closed]]
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            # No pings of ours: the socket is receive-only (§5.1); Twitch's pings are answered.
            async with connect(
                conn.url,
                open_timeout=WELCOME_TIMEOUT_S,
                ping_interval=None,
                max_size=MAX_MESSAGE_BYTES,
                close_timeout=2.0,
            ) as ws:
                conn.ws = ws
                async for raw in ws:
                    conn.last_at = loop.time()
                    await queue.put((conn, raw))
                await queue.put((conn, Closed(ws.close_code, ws.close_reason or "")))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            await queue.put((conn, Closed(code, exc.rcvd.reason if exc.rcvd else "")))
        except (OSError, WebSocketException, TimeoutError) as exc:
            await queue.put((conn, Closed(None, describe_error(exc, 200))))

    def _closed(self, closed: Closed) -> str:
        code = closed.code
        meaning = CLOSE_MEANING.get(code or 0)
        if code == 4001:
            self._log_once("4001", "eventsub_closed_inbound_traffic", "error", meaning=meaning)
        elif code == 4003:
            self._log_once("4003", "eventsub_closed_unused", code=code, meaning=meaning)
        elif code == 4007:
            self._log_once("4007", "eventsub_closed_bad_reconnect_url", code=code, meaning=meaning)
        else:
            log.info("eventsub_closed", code=code, meaning=meaning, reason=closed.reason[:200])
        return f"closed:{code}" if code is not None and 1000 <= code <= 4999 else "error"

    def _read(self, raw: str | bytes) -> Message | None:
        try:
            message = parse_message(raw)
        except Malformed as exc:
            self.state.malformed += 1
            metrics.EVENTSUB_MESSAGES.labels("unknown").inc()
            self._log_once(f"malformed:{exc.kind}", "eventsub_message_unreadable", kind=exc.kind)
            return None
        if message.type == "unknown":
            metrics.EVENTSUB_MESSAGES.labels("unknown").inc()
            return None
        if (
            message.type in ("notification", "revocation")
            and message.message_id is not None
            and self.seen.repeat(message.message_id)
        ):
            self.state.duplicates += 1
            metrics.EVENTSUB_MESSAGES.labels("duplicate").inc()
            return None
        metrics.EVENTSUB_MESSAGES.labels(message.type).inc()
        return message

    def _welcomed(self, message: Message) -> None:
        assert message.session is not None
        self.state.session_id = message.session.id
        self.state.connected_at = message.session.connected_at or datetime.now(UTC)
        self.state.socket = "connected"
        if message.session.keepalive_s:
            self._keepalive_now = float(message.session.keepalive_s)
        metrics.EVENTSUB_CONNECTED.set(1)
        log.info("eventsub_connected", session_id=message.session.id)

    async def _handed_over(self, old: _Conn, message: Message) -> None:
        assert message.session is not None
        old_id, new_id = self.state.session_id, message.session.id
        self._welcomed(message)
        metrics.EVENTSUB_RECONNECTS.labels("handover").inc()
        self.state.reconnects += 1
        if old_id and old_id != new_id:
            await self._db(lambda s: rows.move_subscriptions(s, old_id, new_id, _now()))
        log.info("eventsub_handover_done", session_id=new_id)

    async def _notified(self, message: Message) -> None:
        assert message.subscription is not None
        assert message.event is not None
        try:
            event = parse_event(message.subscription, message.event)
        except Malformed as exc:
            self.state.malformed += 1
            self._log_once(f"event:{exc.kind}", "eventsub_event_unreadable", kind=exc.kind)
            return
        if event is None:
            return
        self.state.events += 1
        try:
            await self.handler(event)
        except (ClipwatchError, SQLAlchemyError, OSError) as exc:
            # The poller will see the change; this event is lost, not the socket.
            self._log_once("handler", "eventsub_event_not_stored", error=describe_error(exc, 200))

    async def _revoked(self, message: Message) -> None:
        sub = message.subscription
        assert sub is not None
        created = self.state.subscriptions.pop(sub.id or "", None)
        channel = sub.channel_id or (created.wanted.channel_id if created else None)
        if sub.status == "version_removed":
            self.state.removed_types.add((sub.type, sub.version))
            self._log_once(
                f"version:{sub.type}:{sub.version}",
                "eventsub_version_removed",
                type=sub.type,
                version=sub.version,
            )
        elif channel is not None:
            # authorization_revoked, user_removed and reasons to come: never created again
            # by this holder; the channel's live state comes from polling.
            if sub.status == "authorization_revoked":
                # The user may have disconnected the app: the holder's next renewal asks
                # /validate (a token gone for good stops EventSub), not an hour later.
                self.tokens.revalidate_soon()
            self.state.revoked.add((sub.type, channel))
            log.warning("eventsub_revoked", type=sub.type, channel_id=channel, status=sub.status)
        if sub.id is not None:
            status = sub.status or "revoked"
            await self._db(lambda s: rows.set_subscription_status(s, sub.id or "", status, _now()))
        self._publish_counts()

    # --- subscriptions ------------------------------------------------------------------------

    async def _subscribe_all(self, channels: list[str]) -> None:
        """Create what is missing for `channels` on the current session, inside the budget."""
        session_id = self.state.session_id
        if session_id is None:
            return
        have = {(c.wanted.type, c.wanted.channel_id) for c in self.state.subscriptions.values()}
        async with session_scope(self.sessionmaker) as session:
            await rows.forget_dead_subscriptions(session, session_id)
            for row in await rows.subscriptions(session):
                if row.status in rows.REVOKED:
                    if row.status == "version_removed":
                        self.state.removed_types.add((row.type, row.version))
                    else:
                        self.state.revoked.add((row.type, row.channel_id))
        groups = plan_subscriptions(
            channels,
            skip=self.state.revoked | have,
            skip_types=self.state.removed_types,
        )
        over: set[str] = set()
        exhausted = False
        for group in groups:
            if exhausted or not fits(
                group,
                total_cost=self.state.total_cost or 0,
                max_total_cost=self.state.max_total_cost,
                unit_cost=1,
                created=len(self.state.subscriptions),
            ):
                over.add(group[0].channel_id)
                continue
            for wanted in group:
                outcome = await self._create(wanted, session_id)
                if outcome == "exhausted":
                    exhausted = True
                    over.add(wanted.channel_id)
                    break
        self.state.over_budget = over - self.state.covered()
        if self.state.over_budget:
            self._log_once(
                f"budget:{len(self.state.over_budget)}",
                "eventsub_budget_short",
                polled_channels=len(self.state.over_budget),
                max_total_cost=self.state.max_total_cost,
            )
        self._publish_counts()
        log.info(
            "eventsub_subscribed",
            subscriptions=len(self.state.subscriptions),
            covered_channels=len(self.state.covered()),
            total_cost=self.state.total_cost,
            max_total_cost=self.state.max_total_cost,
        )

    async def _create(self, wanted: Wanted, session_id: str) -> str:
        """One subscription: created, exists, refused, failed or exhausted (stop creating)."""
        body = {
            "type": wanted.type,
            "version": wanted.version,
            "condition": {"broadcaster_user_id": wanted.channel_id},
            "transport": {"method": "websocket", "session_id": session_id},
        }
        refreshed = False
        attempt = 0
        while True:
            token = await self.tokens.access_token()
            try:
                answer = await self.http.post(
                    self.api_url,
                    json=body,
                    headers={"Authorization": f"Bearer {token}", "Client-Id": self.client_id},
                )
            except httpx.TransportError as exc:
                metrics.count_twitch_request("/eventsub/subscriptions", None)
                attempt += 1
                if attempt >= CREATE_ATTEMPTS:
                    raise TwitchError(f"Twitch did not answer ({type(exc).__name__})") from None
                await asyncio.sleep(reconnect_delay(attempt))
                continue
            status = answer.status_code
            metrics.count_twitch_request("/eventsub/subscriptions", status)
            if status == 401 and not refreshed:
                refreshed = True
                await self.tokens.refresh("401 on subscription create", token)
                continue
            if status == 401:
                raise UserTokenFailed("Twitch refused a freshly refreshed user token", status=401)
            if status >= 500:
                attempt += 1
                if attempt >= CREATE_ATTEMPTS:
                    raise TwitchError(f"Twitch answered {status} on subscription create")
                await asyncio.sleep(reconnect_delay(attempt))
                continue
            break
        payload = _json(answer)
        if status == 202:
            return await self._created(wanted, session_id, payload)
        message = clean_text(str(payload.get("message") or answer.reason_phrase), 200)
        if status == 429:
            self._log_once("429", "eventsub_subscription_limit", message=message)
            return "exhausted"
        if status == 409:
            return "exists"
        # 400/403: this type (or condition) is refused; others are not worth retrying either.
        self._log_once(
            f"refused:{wanted.type}:{status}",
            "eventsub_subscription_refused",
            type=wanted.type,
            status=status,
            message=message,
        )
        return "refused"

    async def _created(self, wanted: Wanted, session_id: str, payload: dict[str, Any]) -> str:
        data = payload.get("data")
        item = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        sub_id = usable_id(item.get("id"), 64)
        raw_cost = item.get("cost")
        cost = raw_cost if isinstance(raw_cost, int) and not isinstance(raw_cost, bool) else 1
        for name in ("total_cost", "max_total_cost"):
            value = payload.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self.state, name, value)
        if sub_id is None:
            self._log_once("no_sub_id", "eventsub_created_without_id")
            return "refused"
        status = clean_text(str(item.get("status") or "enabled"), 64)
        created = Created(wanted, sub_id, status, cost)
        self.state.subscriptions[sub_id] = created
        await self._db(
            lambda s: rows.save_subscription(
                s,
                subscription_id=sub_id,
                type=wanted.type,
                version=wanted.version,
                channel_id=wanted.channel_id,
                status=status,
                cost=cost,
                session_id=session_id,
                now=_now(),
            )
        )
        self._publish_counts()
        return "created"

    def _publish_counts(self) -> None:
        metrics.EVENTSUB_SUBSCRIPTIONS.set(len(self.state.subscriptions))
        if self.state.total_cost is not None:
            metrics.EVENTSUB_COST.labels("total").set(self.state.total_cost)
        if self.state.max_total_cost is not None:
            metrics.EVENTSUB_COST.labels("max").set(self.state.max_total_cost)

    # --- helpers ------------------------------------------------------------------------------

    async def _db(self, work: Callable[[AsyncSession], Awaitable[Any]]) -> None:
        """A bookkeeping write; failing costs the row (status may lag), never the socket."""
        try:
            async with session_scope(self.sessionmaker) as session:
                await work(session)
        except (SQLAlchemyError, OSError) as exc:
            self._log_once("db", "eventsub_bookkeeping_failed", error=describe_error(exc, 200))

    def _log_once(self, key: str, event: str, level: str = "warning", **fields: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            getattr(log, level)(event, **fields)


def _now() -> datetime:
    return datetime.now(UTC)


def _token_failure(subscriber: asyncio.Task[None] | None) -> None:
    """Raise the subscriber's UserTokenFailed, if that is how it ended."""
    if subscriber is not None and subscriber.done() and not subscriber.cancelled():
        error = subscriber.exception()
        if isinstance(error, UserTokenFailed):
            raise error


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def _wait_either(first: asyncio.Event, second: asyncio.Event, seconds: float) -> None:
    waits = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())}
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
