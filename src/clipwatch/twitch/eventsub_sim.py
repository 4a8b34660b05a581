"""EventSub over WebSocket, simulated as reference/twitch-api.md §5 describes it, never kinder.

Part of the Twitch simulator (same ASGI app, same port): `ws://host:port/ws` is the
WebSocket, `{base}/helix/eventsub/subscriptions` the subscriptions endpoint (the simulator
checks the token and the bucket, then calls `helix`).

- A socket gets `session_welcome` at once; `keepalive_timeout_seconds` (query) is clamped
  to `min_keepalive_s`..600 (10 by default, like Twitch; tests lower `min_keepalive_s`).
- No subscription within the keepalive window after the welcome: closed 4003.
- A keepalive goes out only after `keepalive_s` of silence (any message resets the clock).
- Anything the client sends (text or binary) closes the socket 4001. Pings are answered by
  the WebSocket library (uvicorn + websockets).
- `reconnect()` sends `session_reconnect` with a `reconnect_url`; the new socket gets a
  welcome with a NEW session id (take it from the welcome) and the subscriptions move to it.
  Until the client closes the old socket, notifications go out on both (same message_id);
  after `grace_s` the old one is closed 4004 (it sends no keepalives meanwhile, as in
  twitch-cli). A reconnect URL works once; a wrong one is closed 4007.
- Losing a socket disables its subscriptions (`websocket_*` status); disabled or revoked
  subscriptions stay listed but count toward no cost or limit.
- Delivery is at least once: `duplicate_next(n)` sends the next n notifications twice.
- `inject(raw)` sends anything (unknown types, fields, broken JSON) to test tolerance.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from clipwatch.simhttp import Receive, Scope, Send
from clipwatch.waiting import cancel_and_wait, wait_event

DEFAULT_KEEPALIVE_S = 10
MAX_KEEPALIVE_S = 600
# type -> the one version Twitch serves for it here (reference §5.5)
TYPES = {"stream.online": "1", "stream.offline": "1", "channel.update": "2"}
REVOCATION_STATUSES = ("authorization_revoked", "user_removed", "version_removed")
CLOSE_REASONS = {
    4000: "internal server error",
    4001: "sent inbound traffic",
    4002: "failed ping pong",
    4003: "connection unused",
    4004: "reconnect grace time expired",
    4005: "network timeout",
    4006: "network error",
    4007: "invalid reconnect",
}
# What a subscription on a socket closed with a code becomes (reference §5.3 statuses).
CLOSE_STATUS = {
    4000: "websocket_internal_error",
    4001: "websocket_received_inbound_traffic",
    4002: "websocket_failed_ping_pong",
    4003: "websocket_connection_unused",
    4004: "websocket_failed_to_reconnect",
    4005: "websocket_network_timeout",
    4006: "websocket_network_error",
    4007: "websocket_failed_to_reconnect",
}
PAGE_SIZE = 100
MESSAGE_LOG = 50_000  # sent messages kept for assertions (demo mode runs for days)


def timestamp(at: datetime | None = None) -> str:
    """RFC3339 UTC with a nanosecond fraction, as EventSub writes it."""
    ns = time.time_ns() if at is None else int(at.timestamp()) * 10**9 + at.microsecond * 1_000
    seconds, fraction = divmod(ns, 1_000_000_000)
    whole = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{fraction:09d}Z"


@dataclass
class Subscription:
    id: str
    type: str
    version: str
    condition: dict[str, str]
    user_id: str  # the token's user (client id + user own the cost)
    cost: int
    session_id: str
    created_at: str
    status: str = "enabled"

    @property
    def enabled(self) -> bool:
        return self.status == "enabled"

    def view(self, *, connected_at: str | None = None) -> dict[str, Any]:
        transport: dict[str, Any] = {"method": "websocket", "session_id": self.session_id}
        if connected_at is not None:
            transport["connected_at"] = connected_at
        return {
            "id": self.id,
            "status": self.status,
            "type": self.type,
            "version": self.version,
            "condition": dict(self.condition),
            "created_at": self.created_at,
            "transport": transport,
            "cost": self.cost,
        }


@dataclass
class _Close:
    code: int
    reason: str


class _Gone:
    """The client went away (its close frame or a broken connection)."""


_Item = dict[str, Any] | str | _Close | _Gone


@dataclass
class Session:
    """One socket and the session id it was welcomed with."""

    id: str
    keepalive_s: int
    connected_at: str
    opened: float  # monotonic, when the welcome went out
    inherited: bool = False  # came from a reconnect: no subscribe deadline
    open: bool = True
    silenced: bool = False
    subscribed: bool = False  # a subscription was ever created on it
    last_sent: float = 0.0
    reconnect_sent: float | None = None  # monotonic, when session_reconnect went out
    reconnect_token: str | None = None
    handed_to: str | None = None  # the session that took its subscriptions
    close_code: int | None = None
    status: str = "connected"
    outbox: deque[_Item] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, item: _Item) -> None:
        self.outbox.append(item)
        self.wake.set()


@dataclass(frozen=True)
class SessionView:
    id: str
    open: bool
    keepalive_s: int
    subscription_ids: list[str]
    silenced: bool
    close_code: int | None
    handed_to: str | None


@dataclass(frozen=True)
class Sent:
    session_id: str
    message: dict[str, Any] | str  # str: injected raw text
    at: float  # monotonic


@dataclass(frozen=True)
class Broadcaster:
    id: str
    login: str
    name: str


class HelixError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class EventSubSim:
    """Sessions, subscriptions and what was sent; steered by the test or /_sim/eventsub/*."""

    def __init__(self, broadcaster: Callable[[str], Broadcaster | None]) -> None:
        self._broadcaster = broadcaster
        self.min_keepalive_s = 10
        self.default_keepalive_s = DEFAULT_KEEPALIVE_S
        self.max_total_cost = 10
        self.max_connections = 3
        self.max_subscriptions_per_connection = 300
        self.grace_s = 30.0
        self.ws_base = ""  # ws://host:port/ws, learnt from the first socket
        self._sessions: dict[str, Session] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.messages: deque[Sent] = deque(maxlen=MESSAGE_LOG)  # the newest, for assertions
        self.notifications_sent = 0
        self._duplicate = 0

    # --- steering -----------------------------------------------------------------------------

    def sessions(self) -> list[SessionView]:
        return [
            SessionView(
                id=s.id,
                open=s.open,
                keepalive_s=s.keepalive_s,
                subscription_ids=[
                    sub.id for sub in self.subscriptions.values() if sub.session_id == s.id
                ],
                silenced=s.silenced,
                close_code=s.close_code,
                handed_to=s.handed_to,
            )
            for s in self._sessions.values()
        ]

    def _session(self, session_id: str | None) -> Session:
        if session_id is not None:
            session = self._sessions.get(session_id)
            if session is None or not session.open:
                raise KeyError(f"no open session {session_id}")
            return session
        live = [s for s in self._sessions.values() if s.open]
        if not live:
            raise KeyError("no open session")
        return live[-1]  # the newest

    def reconnect(self, session_id: str | None = None) -> str:
        """Send session_reconnect; returns the reconnect URL."""
        session = self._session(session_id)
        token = secrets.token_urlsafe(12)
        session.reconnect_token = token
        session.reconnect_sent = time.monotonic()
        session.status = "reconnecting"
        url = f"{self.ws_base}?reconnect_id={token}"
        session.put(
            _envelope(
                "session_reconnect",
                {
                    "session": {
                        "id": session.id,
                        "status": "reconnecting",
                        "keepalive_timeout_seconds": None,
                        "reconnect_url": url,
                        "connected_at": session.connected_at,
                    }
                },
            )
        )
        session.wake.set()
        return url

    def expire_grace(self, session_id: str | None = None) -> None:
        """End the reconnect grace now: sockets that got session_reconnect are closed 4004
        (as after `grace_s`), without a test waiting on the clock."""
        for session in self._sessions.values():
            wanted = session_id is None or session.id == session_id
            if wanted and session.open and session.reconnect_sent is not None:
                session.reconnect_sent = time.monotonic() - self.grace_s
                session.wake.set()

    def close(self, code: int, session_id: str | None = None) -> None:
        if code not in CLOSE_REASONS:
            raise ValueError(f"close code must be 4000-4007, not {code}")
        self._session(session_id).put(_Close(code, CLOSE_REASONS[code]))

    def revoke(self, subscription_id: str, status: str = "authorization_revoked") -> None:
        if status not in REVOCATION_STATUSES:
            raise ValueError(f"revocation status must be one of {REVOCATION_STATUSES}")
        sub = self.subscriptions[subscription_id]
        sub.status = status
        message = _envelope(
            "revocation",
            {"subscription": sub.view()},
            subscription_type=sub.type,
            subscription_version=sub.version,
        )
        for session in self._targets(sub.session_id):
            session.put(message)

    def duplicate_next(self, n: int = 1) -> None:
        self._duplicate += n

    def silence(self, session_id: str | None = None) -> None:
        self._session(session_id).silenced = True

    def unsilence(self, session_id: str | None = None) -> None:
        for session in self._sessions.values():
            if session_id is None or session.id == session_id:
                session.silenced = False
                session.wake.set()

    def inject(self, raw: dict[str, Any] | str, session_id: str | None = None) -> None:
        """Send anything as it is: a dict as JSON, a str as the very text."""
        self._session(session_id).put(raw)

    # --- events -------------------------------------------------------------------------------

    def notify(self, sub_type: str, broadcaster_id: str, event: dict[str, Any]) -> int:
        """Send the event to every enabled subscription of this type on this broadcaster;
        returns how many subscriptions it went to."""
        count = 0
        for sub in list(self.subscriptions.values()):
            if (
                not sub.enabled
                or sub.type != sub_type
                or sub.condition.get("broadcaster_user_id") != broadcaster_id
            ):
                continue
            message = _envelope(
                "notification",
                {"subscription": sub.view(), "event": event},
                subscription_type=sub.type,
                subscription_version=sub.version,
            )
            copies = 1
            if self._duplicate > 0:
                self._duplicate -= 1
                copies = 2
            for session in self._targets(sub.session_id):
                for _ in range(copies):
                    session.put(message)
            count += 1
        return count

    def _targets(self, session_id: str) -> list[Session]:
        """The session's socket, and any old socket handing over to it that is still open."""
        return [
            s
            for s in self._sessions.values()
            if s.open and (s.id == session_id or s.handed_to == session_id)
        ]

    # --- the WebSocket ------------------------------------------------------------------------

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        server = scope.get("server") or ("127.0.0.1", 0)
        if not self.ws_base:
            self.ws_base = f"ws://{server[0]}:{server[1]}{scope.get('path', '/ws')}"
        query = parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True)
        old: Session | None = None
        keepalive = self.default_keepalive_s
        if "reconnect_id" in query:
            token = query["reconnect_id"][0]
            old = next(
                (s for s in self._sessions.values() if s.open and s.reconnect_token == token),
                None,
            )
            if old is None:
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": 4007, "reason": CLOSE_REASONS[4007]})
                return
            old.reconnect_token = None
            keepalive = old.keepalive_s
        elif "keepalive_timeout_seconds" in query:
            try:
                keepalive = int(query["keepalive_timeout_seconds"][0])
            except ValueError:
                await send({"type": "websocket.close", "code": 1008})  # refused: HTTP 403
                return
        keepalive = max(self.min_keepalive_s, min(MAX_KEEPALIVE_S, keepalive))
        await send({"type": "websocket.accept"})
        now = time.monotonic()
        session = Session(
            id=_session_id(),
            keepalive_s=keepalive,
            connected_at=timestamp(),
            opened=now,
            inherited=old is not None,
        )
        self._sessions[session.id] = session
        welcome = _envelope(
            "session_welcome",
            {
                "session": {
                    "id": session.id,
                    "status": "connected",
                    "connected_at": session.connected_at,
                    "keepalive_timeout_seconds": keepalive,
                    "reconnect_url": None,
                    "recovery_url": None,
                }
            },
        )
        if not await self._send(session, send, welcome):
            self._finish(session, "websocket_disconnected")
            return
        if old is not None:
            for sub in self.subscriptions.values():
                if sub.session_id == old.id:
                    sub.session_id = session.id
            old.handed_to = session.id
        reader = asyncio.create_task(self._read(session, receive))
        try:
            status = await self._write(session, send)
        finally:
            await cancel_and_wait(reader)
        self._finish(session, status)

    async def _read(self, session: Session, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                session.put(_Gone())
                return
            if message["type"] == "websocket.receive":
                session.put(_Close(4001, CLOSE_REASONS[4001]))

    async def _write(self, session: Session, send: Send) -> str:
        """Send what is queued, keepalives after silence, and closes; returns the status the
        session's subscriptions take when it ends."""
        while True:
            while not session.outbox:
                wait = self._next_deadline(session) - time.monotonic()
                if wait <= 0:
                    due = self._due(session)
                    if isinstance(due, _Close):
                        return await self._close(session, send, due)
                    if due is not None and not await self._send(session, send, due):
                        return "websocket_disconnected"
                    continue
                session.wake.clear()
                await wait_event(session.wake, wait)
            item = session.outbox.popleft()
            if isinstance(item, _Gone):
                return "websocket_disconnected"
            if isinstance(item, _Close):
                return await self._close(session, send, item)
            if session.silenced:
                continue  # a dead link: nothing reaches the client
            if not await self._send(session, send, item):
                return "websocket_disconnected"

    def _next_deadline(self, session: Session) -> float:
        deadlines = [session.last_sent + session.keepalive_s]
        if session.reconnect_sent is not None:
            deadlines = []  # like twitch-cli: no keepalives once session_reconnect went out
        if not session.subscribed and not session.inherited:
            deadlines.append(session.opened + session.keepalive_s)
        if session.reconnect_sent is not None:
            deadlines.append(session.reconnect_sent + self.grace_s)
        return min(deadlines)

    def _due(self, session: Session) -> dict[str, Any] | _Close | None:
        now = time.monotonic()
        if session.reconnect_sent is not None and now >= session.reconnect_sent + self.grace_s:
            return _Close(4004, CLOSE_REASONS[4004])
        if (
            not session.subscribed
            and not session.inherited
            and now >= session.opened + session.keepalive_s
        ):
            return _Close(4003, CLOSE_REASONS[4003])
        if session.silenced or session.reconnect_sent is not None:
            session.last_sent = now  # nothing goes out, and nothing to do until the next window
            return None
        return _envelope("session_keepalive", {})

    async def _send(self, session: Session, send: Send, item: dict[str, Any] | str) -> bool:
        text = item if isinstance(item, str) else json.dumps(item)
        try:
            await send({"type": "websocket.send", "text": text})
        except Exception:  # the connection broke under us
            return False
        session.last_sent = time.monotonic()
        self.messages.append(Sent(session.id, item, session.last_sent))
        if (
            isinstance(item, dict)
            and item.get("metadata", {}).get("message_type") == "notification"
        ):
            self.notifications_sent += 1
        return True

    async def _close(self, session: Session, send: Send, close: _Close) -> str:
        session.close_code = close.code
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": close.code, "reason": close.reason})
        return CLOSE_STATUS[close.code]

    def _finish(self, session: Session, status: str) -> None:
        session.open = False
        session.status = status
        for sub in self.subscriptions.values():
            if sub.session_id == session.id and sub.enabled:
                sub.status = status

    # --- Helix: /helix/eventsub/subscriptions ------------------------------------------------

    def helix(
        self,
        method: str,
        query: dict[str, list[str]],
        body: bytes,
        user_id: str,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any] | None]:
        """The subscriptions endpoint for an authenticated user token (the caller checked the
        token, the client id and the bucket)."""
        try:
            if method == "POST":
                if content_type.partition(";")[0].strip().lower() != "application/json":
                    raise HelixError(400, "Content-Type must be application/json")
                return 202, self._create(body, user_id)
            if method == "GET":
                return 200, self._list(query, user_id)
            if method == "DELETE":
                self._delete(query, user_id)
                return 204, None
            raise HelixError(405, "method not allowed")
        except HelixError as exc:
            return exc.status, {
                "error": _REASONS.get(exc.status, "Error"),
                "status": exc.status,
                "message": exc.message,
            }

    def _cost_of(self, user_id: str) -> int:
        return sum(
            s.cost for s in self.subscriptions.values() if s.enabled and s.user_id == user_id
        )

    def _create(self, body: bytes, user_id: str) -> dict[str, Any]:
        try:
            request = json.loads(body or b"null")
        except ValueError:
            raise HelixError(400, "malformed JSON body") from None
        if not isinstance(request, dict):
            raise HelixError(400, "the body must be a JSON object")
        sub_type, version = request.get("type"), request.get("version")
        condition, transport = request.get("condition"), request.get("transport")
        if not isinstance(sub_type, str) or sub_type not in TYPES:
            raise HelixError(400, "invalid subscription type")
        if version != TYPES[sub_type]:
            raise HelixError(400, "invalid subscription type and version combination")
        if (
            not isinstance(condition, dict)
            or set(condition) != {"broadcaster_user_id"}
            or not isinstance(condition["broadcaster_user_id"], str)
        ):
            raise HelixError(400, "invalid condition")
        broadcaster_id: str = condition["broadcaster_user_id"]
        if self._broadcaster(broadcaster_id) is None:
            raise HelixError(400, "invalid condition: unknown broadcaster_user_id")
        if not isinstance(transport, dict) or transport.get("method") != "websocket":
            raise HelixError(400, "invalid transport: method must be websocket for a user token")
        session_id = transport.get("session_id")
        if set(transport) - {"method", "session_id"}:
            raise HelixError(400, "invalid transport: unexpected fields")
        session = self._sessions.get(session_id) if isinstance(session_id, str) else None
        if session is None or not session.open or session.handed_to is not None:
            raise HelixError(400, "invalid transport: session does not exist or has disconnected")
        enabled = [s for s in self.subscriptions.values() if s.enabled and s.user_id == user_id]
        if any(s.type == sub_type and s.condition == condition for s in enabled):
            raise HelixError(409, "subscription already exists")
        sockets = {s.session_id for s in enabled}
        if session.id not in sockets and len(sockets) >= self.max_connections:
            raise HelixError(429, "number of websocket transports limit exceeded")
        on_socket = sum(1 for s in enabled if s.session_id == session.id)
        if on_socket >= self.max_subscriptions_per_connection:
            raise HelixError(429, "websocket transport subscription limit exceeded")
        cost = 0 if broadcaster_id == user_id else 1
        if self._cost_of(user_id) + cost > self.max_total_cost:
            raise HelixError(429, "maximum total cost exceeded")
        sub = Subscription(
            id=str(uuid.uuid4()),
            type=sub_type,
            version=version,
            condition={"broadcaster_user_id": broadcaster_id},
            user_id=user_id,
            cost=cost,
            session_id=session.id,
            created_at=timestamp(),
        )
        self.subscriptions[sub.id] = sub
        session.subscribed = True
        return {
            "data": [sub.view(connected_at=session.connected_at)],
            "total": sum(1 for s in self.subscriptions.values() if s.user_id == user_id),
            "total_cost": self._cost_of(user_id),
            "max_total_cost": self.max_total_cost,
        }

    def _list(self, query: dict[str, list[str]], user_id: str) -> dict[str, Any]:
        filters = [k for k in ("status", "type", "user_id", "subscription_id") if query.get(k)]
        if len(filters) > 1:
            raise HelixError(400, "use at most one of status, type, user_id, subscription_id")
        subs = [s for s in self.subscriptions.values() if s.user_id == user_id]
        if filters:
            key, value = filters[0], query[filters[0]][0]
            if key == "status":
                subs = [s for s in subs if s.status == value]
            elif key == "type":
                subs = [s for s in subs if s.type == value]
            elif key == "user_id":
                subs = [s for s in subs if s.condition.get("broadcaster_user_id") == value]
            else:
                subs = [s for s in subs if s.id == value]
        offset = 0
        after = (query.get("after") or [""])[0]
        if after:
            try:
                offset = int(base64.urlsafe_b64decode(after.encode()).decode())
            except ValueError:
                raise HelixError(400, "invalid cursor") from None
        page = subs[offset : offset + PAGE_SIZE]
        pagination: dict[str, str] = {}
        if offset + PAGE_SIZE < len(subs):
            pagination["cursor"] = base64.urlsafe_b64encode(
                str(offset + PAGE_SIZE).encode()
            ).decode()
        views = []
        for sub in page:
            session = self._sessions.get(sub.session_id)
            views.append(sub.view(connected_at=session.connected_at if session else None))
        return {
            "data": views,
            "total": len(subs),
            "total_cost": self._cost_of(user_id),
            "max_total_cost": self.max_total_cost,
            "pagination": pagination,
        }

    def _delete(self, query: dict[str, list[str]], user_id: str) -> None:
        ids = query.get("id") or []
        if not ids or not ids[0]:
            raise HelixError(400, "id is required")
        sub = self.subscriptions.get(ids[0])
        if sub is None or sub.user_id != user_id:
            raise HelixError(404, "subscription not found")
        del self.subscriptions[sub.id]


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    429: "Too Many Requests",
}


def _session_id() -> str:
    # Twitch's look: opaque, URL-safe, longer than a UUID.
    return "AgoQ" + secrets.token_urlsafe(24)


def _envelope(
    message_type: str,
    payload: dict[str, Any],
    *,
    subscription_type: str | None = None,
    subscription_version: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "message_id": str(uuid.uuid4()),
        "message_type": message_type,
        "message_timestamp": timestamp(),
    }
    if subscription_type is not None:
        metadata["subscription_type"] = subscription_type
        metadata["subscription_version"] = subscription_version
    return {"metadata": metadata, "payload": payload}
