"""The EventSub socket as a worker task: every worker runs one, and the one that holds the
`eventsub` lease (short, renewed every few seconds) holds the socket. A holder that loses
the lease (or cannot renew it before it runs out) closes its socket at once; another takes
over once the lease expired. docs/eventsub.md
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import leases, sync_state
from clipwatch.errors import ClipwatchError
from clipwatch.outbound import http_client
from clipwatch.runtime.supervisor import TaskState, wait_for_stop
from clipwatch.twitch import live
from clipwatch.twitch.client import TwitchError
from clipwatch.twitch.eventsub import EventSubClient
from clipwatch.twitch.eventsub_messages import ChannelUpdate, Event, StreamOffline, StreamOnline
from clipwatch.twitch.user_tokens import UserTokenFailed, UserTokenKeeper
from clipwatch.waiting import cancel_and_wait

log = structlog.get_logger("clipwatch.eventsub")
Sessions = async_sessionmaker[AsyncSession]
LEASE_NAME = "eventsub"
LEASE_TTL = timedelta(seconds=15)
RENEW_S = 5.0
# Stop using the socket this long before our last renewal runs out (clock skew, slow renewals).
LEASE_MARGIN_S = 2.0
TRANSIENT = (SQLAlchemyError, OSError, ClipwatchError)


def live_handler(settings: Settings, sessionmaker: Sessions) -> Any:
    """Notifications into the live state (twitch/live.py), source `eventsub`."""
    final_pass = timedelta(seconds=settings.stream_end_pass_seconds)

    async def handle(event: Event) -> None:
        if isinstance(event, StreamOnline):
            await live.went_online(
                sessionmaker,
                event.channel_id,
                stream_id=event.stream_id,
                started_at=event.started_at,
                stream_type=event.stream_type,
                source="eventsub",
                final_pass_after=final_pass,  # a new stream replacing one never ended
            )
        elif isinstance(event, StreamOffline):
            await live.went_offline(
                sessionmaker, event.channel_id, source="eventsub", final_pass_after=final_pass
            )
        elif isinstance(event, ChannelUpdate):
            await live.channel_updated(
                sessionmaker,
                event.channel_id,
                source="eventsub",
                title=event.title,
                game_id=event.game_id,
                game_name=event.game_name,
                language=event.language,
            )

    return handle


async def tracked_channel_ids(sessionmaker: Sessions) -> list[str]:
    async with session_scope(sessionmaker) as session:
        return [c.id for c in await sync_state.tracked_channels(session)]


class _Socket:
    """The client task this process runs while it holds the lease."""

    def __init__(self, client: EventSubClient, token_generation: int) -> None:
        self.client = client
        self.token_generation = token_generation
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(client.run(self.stop))

    async def close(self) -> BaseException | None:
        self.stop.set()
        await cancel_and_wait(self.task)
        return self.outcome()

    def outcome(self) -> BaseException | None:
        if not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception()


async def eventsub_forever(
    settings: Settings,
    sessionmaker: Sessions,
    stop: asyncio.Event,
    state: TaskState,
    *,
    owner: str,
    renew_s: float = RENEW_S,
    ttl: timedelta = LEASE_TTL,
    handler: Any = None,
) -> None:
    """Hold the EventSub socket while this process holds the lease, until `stop`."""
    if not settings.eventsub_enabled or not settings.twitch_client_id:
        state.detail.clear()
        state.succeeded(eventsub="off")
        await stop.wait()
        return
    loop = asyncio.get_running_loop()
    async with http_client(timeout=10.0) as http:
        keeper = UserTokenKeeper(settings, sessionmaker, http)
        socket: _Socket | None = None
        held_until = 0.0
        known: list[str] | None = None

        async def channels() -> list[str]:
            return await tracked_channel_ids(sessionmaker)

        def new_client() -> EventSubClient:
            return EventSubClient(
                ws_url=settings.twitch_eventsub_ws_url,
                api_url=settings.eventsub_api_url,
                client_id=settings.twitch_client_id,
                tokens=keeper,
                channels=channels,
                handler=handler or live_handler(settings, sessionmaker),
                sessionmaker=sessionmaker,
                http=http,
                keepalive_s=settings.eventsub_keepalive_seconds,
            )

        async def close_socket(why: str) -> None:
            nonlocal socket
            if socket is not None:
                log.info("eventsub_socket_closing", reason=why)
                await socket.close()
                socket = None

        try:
            while not stop.is_set():
                state.working()
                role, problem = "standby", None
                try:
                    async with session_scope(sessionmaker) as session:
                        held = await leases.acquire(
                            session, LEASE_NAME, owner, datetime.now(UTC), ttl
                        )
                    if held:
                        held_until = (
                            loop.time()
                            + ttl.total_seconds()
                            - min(LEASE_MARGIN_S, ttl.total_seconds() / 3)
                        )
                    database_ok = True
                except TRANSIENT as exc:
                    # Ours until the last renewal runs out; after that another may hold it.
                    held = loop.time() < held_until
                    database_ok = False
                    if state.failed(exc):
                        log.warning("eventsub_lease_failed", error=state.last_error)
                if not held:
                    if socket is not None:
                        log.warning("eventsub_lease_lost", owner=owner)
                    await close_socket("lease lost")
                    known = None
                elif database_ok:
                    try:
                        role, problem, socket, known = await _tick(
                            keeper, state, socket, known, channels, new_client, close_socket
                        )
                    except TRANSIENT as exc:
                        # The database or Twitch failed this tick: the socket stays as it is.
                        database_ok = False
                        role = "holder" if socket is not None else "standby"
                        if state.failed(exc):
                            log.warning("eventsub_check_failed", error=state.last_error)
                _report(state, role, problem, socket, database_ok)
                await wait_for_stop(stop, renew_s)
        finally:
            await close_socket("stopping")
            with contextlib.suppress(*TRANSIENT):
                async with session_scope(sessionmaker) as session:
                    await leases.release(session, LEASE_NAME, owner, datetime.now(UTC))


async def _tick(
    keeper: UserTokenKeeper,
    state: TaskState,
    socket: _Socket | None,
    known: list[str] | None,
    channels: Callable[[], Awaitable[list[str]]],
    new_client: Callable[[], EventSubClient],
    close_socket: Callable[[str], Awaitable[None]],
) -> tuple[str, str | None, _Socket | None, list[str] | None]:
    """One renewal of the holder: the token's health, the socket started or restarted, the
    channels it should cover. Returns (role, problem, socket, channels known)."""
    role, problem = await _hold(keeper, state)
    if role != "holder":
        await close_socket(role)
        return role, problem, None, known
    ids = await channels()
    if socket is not None and socket.token_generation != keeper.generation:
        # A new token was connected: its user's subscriptions, afresh.
        await close_socket("token replaced")
        socket = None
    if socket is None:
        socket = _Socket(new_client(), keeper.generation)
        log.info("eventsub_socket_started", channels=len(ids))
    elif known is not None and set(ids) != set(known):
        socket.client.channels_changed()
    failure = socket.outcome()
    if failure is not None or socket.task.done():
        await close_socket("client ended")
        socket = None
        if isinstance(failure, UserTokenFailed):
            await keeper.mark_failed(str(failure))
            return "token failed", token_problem(str(failure)), None, ids
        if failure is not None:
            raise failure  # a bug: the supervisor restarts the task
    return role, problem, socket, ids


def token_problem(error: str) -> str:
    return (
        f"EventSub stopped: the Twitch user token failed ({error}); live state comes from "
        "polling until an admin connects a token again (clipwatch eventsub connect)"
    )


async def _hold(keeper: UserTokenKeeper, state: TaskState) -> tuple[str, str | None]:
    """Whether the holder has a usable token: ("holder", None) or why not."""
    try:
        if not await keeper.load():
            if keeper.failed:
                return "token failed", token_problem(keeper.failed)
            return "no token", None
        await keeper.access_token()  # validated hourly, refreshed before expiry
    except UserTokenFailed as exc:
        return "token failed", token_problem(str(exc))
    except TwitchError as exc:
        # Twitch's /validate did not answer: keep the socket; the next tick asks again.
        if state.failed(exc):
            log.warning("eventsub_token_check_failed", error=state.last_error)
    return "holder", None


def _report(
    state: TaskState,
    role: str,
    problem: str | None,
    socket: _Socket | None,
    database_ok: bool,
) -> None:
    detail: dict[str, Any] = {"eventsub": role}
    if problem:
        detail["eventsub_problem"] = problem
    if socket is not None:
        detail.update(socket.client.state.detail())
    state.detail.clear()
    if database_ok and state.state != "failing":
        state.succeeded(**detail)
    else:
        state.detail.update(detail)


# --- what status, the API and the CLI show -----------------------------------------------------


async def eventsub_overview(session: AsyncSession) -> dict[str, Any]:
    """The socket as its holder last reported it (`worker_task`), the connected token
    (never its secrets), the subscriptions and their cost, from the database."""
    from clipwatch.db.repositories import eventsub as rows
    from clipwatch.db.repositories import workers
    from clipwatch.runtime.supervisor import ALIVE_S, now

    moment = now()
    token = await rows.user_token(session)
    lease = await leases.holder(session, LEASE_NAME)
    holder = lease.owner if lease is not None and lease.expires_at > moment else None
    socket: dict[str, Any] = {}
    if holder is not None:
        for task in await workers.worker_tasks(session, moment - timedelta(seconds=ALIVE_S)):
            if task.worker == holder and task.task == "eventsub":
                socket = dict(task.detail or {})
    subscriptions = [
        {
            "id": s.id,
            "type": s.type,
            "version": s.version,
            "channel_id": s.channel_id,
            "status": s.status,
            "cost": s.cost,
            "session_id": s.session_id,
            "created_at": s.created_at,
        }
        for s in await rows.subscriptions(session)
    ]
    enabled = [s for s in subscriptions if s["status"] == "enabled"]
    return {
        "holder": holder,
        "socket": socket.get("socket") or ("down" if holder is None else "unknown"),
        "role": socket.get("eventsub"),
        "session_id": socket.get("session_id"),
        "connected_at": socket.get("connected_at"),
        "last_message_at": socket.get("last_message_at"),
        "total_cost": socket.get("total_cost"),
        "max_total_cost": socket.get("max_total_cost"),
        "covered_channels": socket.get("covered_channels"),
        "over_budget_channels": socket.get("over_budget_channels"),
        "reconnects": socket.get("reconnects"),
        "problem": socket.get("eventsub_problem")
        or (token_problem(token.last_error) if token is not None and token.last_error else None),
        "token": None
        if token is None
        else {
            "login": token.login,
            "twitch_user_id": token.twitch_user_id,
            "scopes": list(token.scopes or []),
            "expires_at": token.expires_at,
            "validated_at": token.validated_at,
            "updated_at": token.updated_at,
            "last_error": token.last_error,
            "last_error_at": token.last_error_at,
        },
        "subscriptions": subscriptions,
        "enabled_subscriptions": len(enabled),
        "cost_enabled": sum(s["cost"] for s in enabled),
    }
