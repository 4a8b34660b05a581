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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from clipwatch.db.repositories import eventsub as rows
from clipwatch.errors import ClipwatchError
from clipwatch.monitoring import metrics
from clipwatch.monitoring.logging import describe_error
from clipwatch.twitch.client import TwitchError
from clipwatch.twitch.eventsub_messages import (
    Event,
    Malformed,
    Message,
    SeenMessages,
    parse_event,
    parse_message,
)
from clipwatch.twitch.eventsub_subscriptions import (
    EventSubState,
    Subscriber,
    TokenSource,
    bookkeep,
)
from clipwatch.twitch.user_tokens import UserTokenFailed
from clipwatch.waiting import cancel_and_wait, wait_event, within

log = structlog.get_logger("clipwatch.eventsub")

WELCOME_TIMEOUT_S = 10.0  # connect + welcome
MAX_MESSAGE_BYTES = 4 * 2**20  # Twitch's messages are small; a frame above this ends the socket
STABLE_S = 30.0  # a session that lived this long resets the reconnect backoff
IDLE_CHECK_S = 5.0  # without channels: how often to look again (a change wakes it at once)
BACKOFF_CAP_S = 60.0
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
                await within(self.ws.close(1000), 2.0)
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


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
        self.subscriber = Subscriber(
            state=self.state,
            api_url=api_url,
            client_id=client_id,
            tokens=tokens,
            http=http,
            sessionmaker=sessionmaker,
            log_once=self._log_once,
            retry_delay=reconnect_delay,
        )

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
                await cancel_and_wait(session)
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
                    conn, item = await within(queue.get(), timeout)
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
        task = asyncio.create_task(self.subscriber.subscribe_all(channels))
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
        self.subscriber.publish_counts()

    # --- helpers ------------------------------------------------------------------------------

    async def _db(self, work: Callable[[AsyncSession], Awaitable[Any]]) -> None:
        await bookkeep(self.sessionmaker, work, self._log_once)

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


async def _wait_either(first: asyncio.Event, second: asyncio.Event, seconds: float) -> None:
    waits = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())}
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    await wait_event(stop, seconds)
