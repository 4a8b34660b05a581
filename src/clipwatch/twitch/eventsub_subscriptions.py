"""EventSub subscriptions, for the socket's client (twitch/eventsub.py): what it knows of
its session (`EventSubState`) and the creation of the subscriptions inside Twitch's cost
budget (reference/twitch-api.md §5.4), online+offline first, the rest left to polling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import eventsub as rows
from clipwatch.monitoring import metrics
from clipwatch.monitoring.logging import describe_error
from clipwatch.twitch.client import TwitchError
from clipwatch.twitch.eventsub_messages import (
    OFFLINE,
    ONLINE,
    Wanted,
    fits,
    plan_subscriptions,
)
from clipwatch.twitch.helix import clean_text, usable_id
from clipwatch.twitch.user_tokens import UserTokenFailed

log = structlog.get_logger("clipwatch.eventsub")
CREATE_ATTEMPTS = 3
LogOnce = Callable[..., None]


class TokenSource(Protocol):
    async def access_token(self) -> str: ...

    async def refresh(self, reason: str, used: str | None = None) -> str: ...

    def revalidate_soon(self) -> None: ...


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


class Subscriber:
    """Creates the subscriptions of the current session (`state.session_id`)."""

    def __init__(
        self,
        *,
        state: EventSubState,
        api_url: str,
        client_id: str,
        tokens: TokenSource,
        http: httpx.AsyncClient,
        sessionmaker: async_sessionmaker[AsyncSession],
        log_once: LogOnce,
        retry_delay: Callable[[int], float],
    ) -> None:
        self.state = state
        self.api_url = api_url
        self.client_id = client_id
        self.tokens = tokens
        self.http = http
        self.sessionmaker = sessionmaker
        self._log_once = log_once
        self._retry_delay = retry_delay

    async def _db(self, work: Callable[[AsyncSession], Awaitable[Any]]) -> None:
        await bookkeep(self.sessionmaker, work, self._log_once)

    async def subscribe_all(self, channels: list[str]) -> None:
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
        self.publish_counts()
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
                await asyncio.sleep(self._retry_delay(attempt))
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
                await asyncio.sleep(self._retry_delay(attempt))
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
        self.publish_counts()
        return "created"

    def publish_counts(self) -> None:
        metrics.EVENTSUB_SUBSCRIPTIONS.set(len(self.state.subscriptions))
        if self.state.total_cost is not None:
            metrics.EVENTSUB_COST.labels("total").set(self.state.total_cost)
        if self.state.max_total_cost is not None:
            metrics.EVENTSUB_COST.labels("max").set(self.state.max_total_cost)


async def bookkeep(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[Any]],
    log_once: LogOnce,
) -> None:
    """A bookkeeping write; failing costs the row (status may lag), never the socket."""
    try:
        async with session_scope(sessionmaker) as session:
            await work(session)
    except (SQLAlchemyError, OSError) as exc:
        log_once("db", "eventsub_bookkeeping_failed", error=describe_error(exc, 200))


def _now() -> datetime:
    return datetime.now(UTC)


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
