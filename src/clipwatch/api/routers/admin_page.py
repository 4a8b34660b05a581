"""The admin pages (/admin: status, channels, deliveries, incidents) and the demo's Discord
sink page (/demo/discord). docs/web.md, "Admin".

Every read and write goes through what the API calls: the status is GET /api/v1/status's
own function, channels are added and removed by the catalog router's functions, deliveries
retried and incidents acknowledged or resolved by the same services; "Sync now" marks the
channel due through the repository twitch/live.py uses, so the cadence loop takes it next.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from clipwatch.api.deps import AppState, Session, State
from clipwatch.api.errors import STATUS_BY_ERROR
from clipwatch.api.incident_schemas import IncidentAction
from clipwatch.api.page_session import AdminPage, form_of, see_other
from clipwatch.api.params import Key
from clipwatch.api.routers import catalog as catalog_api
from clipwatch.api.routers import health
from clipwatch.api.routers import incidents as incidents_api
from clipwatch.api.routers import routes as routes_api
from clipwatch.api.routers.me import Id
from clipwatch.api.routers.pages import PAGE_DEPENDENCIES, PAGE_TAG, _common, _html
from clipwatch.api.schemas import ChannelRead, ChannelsAdd
from clipwatch.db.repositories import cadence as cadence_repo
from clipwatch.db.repositories import catalog, live_state, sync_state
from clipwatch.db.repositories import incidents as incidents_repo
from clipwatch.discord import routes as route_service
from clipwatch.errors import ClipwatchError, NotFound, UpstreamUnavailable
from clipwatch.monitoring.logging import describe_error
from clipwatch.outbound import http_client
from clipwatch.twitch.cadence import CadencePolicy, recent_due_at
from clipwatch.web.discord_render import render_message
from clipwatch.web.render import render

router = APIRouter(include_in_schema=False, tags=[PAGE_TAG], dependencies=PAGE_DEPENDENCIES)

Done = Annotated[str | None, Query(max_length=40)]
DeliveryStatus = Literal["pending", "sent", "dead"]
NOTICES = {
    "added": "Channel tracked: its history is read from now on.",
    "removed": "Channel no longer tracked; its clips stay in the archive.",
    "sync": "Sync requested: the worker's cadence takes this channel on its next tick "
    "(within a few seconds while a worker runs).",
    "retried": "Delivery queued again: the worker sends it on its next pass.",
    "acknowledged": "Incident acknowledged: no more repeats.",
    "resolved": "Incident resolved.",
}
SECTIONS = (
    ("/admin", "Status"),
    ("/admin/channels", "Channels"),
    ("/admin/deliveries", "Deliveries"),
    ("/admin/incidents", "Incidents"),
)
DELIVERIES_SHOWN = 200
OPEN_SHOWN = 200
RESOLVED_SHOWN = 50
MESSAGES_SHOWN = 100
SINK_TIMEOUT_S = 3.0
LOGINS_FIELD = "logins"
_LOGIN_SPLIT = re.compile(r"[\s,]+")


def _status_of(exc: ClipwatchError) -> int:
    return next((s for kind, (s, _) in STATUS_BY_ERROR.items() if isinstance(exc, kind)), 400)


def _page(
    state: AppState, request: Request, template: str, status: int = 200, **context: Any
) -> Response:
    context.setdefault("notice", None)
    context.setdefault("problem", None)
    return _html(
        render(
            template,
            **_common(state, request),
            sections=SECTIONS,
            now=datetime.now(UTC),
            **context,
        ),
        status,
    )


def _notice(done: str | None) -> str | None:
    return NOTICES.get(done or "")


# --- Status -----------------------------------------------------------------------------------


@router.get("/admin", response_class=HTMLResponse)
async def admin_status(
    request: Request, state: State, session: Session, admin: AdminPage
) -> Response:
    summary = await health.status(state, session)
    open_incidents = await incidents_repo.open_counts(session)
    return _page(
        state,
        request,
        "admin.html",
        status_read=summary,
        open_incidents=sum(open_incidents.values()),
        open_by_severity=sorted(open_incidents.items()),
    )


# --- Channels ---------------------------------------------------------------------------------


async def _channel_rows(state: AppState, session: Session) -> list[dict[str, Any]]:
    """Tracked channels with what the API shows of them (ChannelRead), when the cadence
    takes each next, and its last error."""
    channels = await sync_state.tracked_channels(session)
    ids = [c.id for c in channels]
    states = await sync_state.states_of(session, ids)
    live = await live_state.live_of(session, ids)
    policy = CadencePolicy.from_settings(state.settings)
    due = {
        r.channel_id: recent_due_at(r, policy)[0] for r in await cadence_repo.cadence_rows(session)
    }
    rows = []
    for channel in channels:
        sync = states.get(channel.id)
        rows.append(
            {
                "channel": ChannelRead.from_channel(channel, sync, live.get(channel.id)),
                "key": channel.login or channel.id,
                "next_pass": due.get(channel.id),
                "failures": sync.consecutive_failures if sync else 0,
                "last_error": describe_error(sync.last_error) if sync and sync.last_error else None,
                "last_error_at": sync.last_error_at if sync else None,
            }
        )
    return rows


async def _channels_page(
    request: Request,
    state: AppState,
    session: Session,
    status: int = 200,
    **context: Any,
) -> Response:
    context.setdefault("logins", "")
    context.setdefault("field_error", None)
    return _page(
        state,
        request,
        "admin_channels.html",
        status,
        rows=await _channel_rows(state, session),
        twitch=state.twitch is not None,
        **context,
    )


@router.get("/admin/channels", response_class=HTMLResponse)
async def admin_channels(
    request: Request, state: State, session: Session, admin: AdminPage, done: Done = None
) -> Response:
    return await _channels_page(request, state, session, notice=_notice(done))


@router.post("/admin/channels/add", response_class=HTMLResponse)
async def admin_add_channels(
    request: Request, state: State, session: Session, admin: AdminPage
) -> Response:
    form = await form_of(request, admin)
    typed = form.get(LOGINS_FIELD)
    logins = [login for login in _LOGIN_SPLIT.split(typed) if login]
    try:
        body = ChannelsAdd(logins=logins)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = first.get("loc", ())
        bad = logins[where[1]] if len(where) > 1 and isinstance(where[1], int) else None
        reason = (
            f"“{bad[:40]}” is not a Twitch login: 1 to 25 letters, digits or _"
            if bad is not None
            else "enter 1 to 100 Twitch logins, separated by spaces or commas"
        )
        return await _channels_page(
            request, state, session, 422, logins=typed[:2000], field_error=reason
        )
    # The API's own handler: Twitch resolves the logins (503 when it is absent or silent).
    try:
        added = await catalog_api.add_channels(state, session, admin, body)
    except UpstreamUnavailable as exc:
        return await _channels_page(
            request,
            state,
            session,
            503,
            logins=typed[:2000],
            problem=f"Twitch could not be asked about these logins ({exc}). Nothing was "
            "added; try again in a moment.",
        )
    if added.unknown:
        known = f"Tracked: {', '.join(added.added)}. " if added.added else ""
        reason = f"{known}Twitch knows no channel named {', '.join(added.unknown)}."
        return await _channels_page(
            request, state, session, 422, logins=" ".join(added.unknown), field_error=reason
        )
    return see_other("/admin/channels?done=added")


@router.post("/admin/channels/{login}/remove", response_class=HTMLResponse)
async def admin_remove_channel(
    request: Request, state: State, session: Session, admin: AdminPage, login: Key
) -> Response:
    form = await form_of(request, admin)
    channel = await catalog.get_channel(session, login)
    if channel is None or not channel.tracked:
        return await _channels_page(
            request, state, session, 404, problem=f"No tracked channel {login}."
        )
    if form.get("confirm") != "yes":
        # Without script, the confirmation is a page of its own with the same form.
        return _page(
            state,
            request,
            "admin_confirm.html",
            name=channel.display_name or channel.login or channel.id,
            key=channel.login or channel.id,
        )
    await catalog_api.remove_channel(session, admin, login)
    return see_other("/admin/channels?done=removed")


@router.post("/admin/channels/{login}/sync", response_class=HTMLResponse)
async def admin_sync_channel(
    request: Request, state: State, session: Session, admin: AdminPage, login: Key
) -> Response:
    await form_of(request, admin)
    channel = await catalog.get_channel(session, login)
    if channel is None or not channel.tracked:
        return await _channels_page(
            request, state, session, 404, problem=f"No tracked channel {login}."
        )
    # What going live or offline does (twitch/live.py): the recent step is due at once.
    await live_state.mark_sync_due(session, channel.id, datetime.now(UTC))
    return see_other("/admin/channels?done=sync")


# --- Deliveries -------------------------------------------------------------------------------


async def _deliveries_page(
    request: Request,
    state: AppState,
    session: Session,
    admin: AdminPage,
    status_filter: DeliveryStatus,
    status: int = 200,
    **context: Any,
) -> Response:
    listed = await routes_api.list_deliveries(session, admin, status_filter, DELIVERIES_SHOWN)
    names = {r.id: r.name for r in await route_service.routes_of(session, admin)}
    rows = [
        {
            "delivery": d,
            "route": names.get(d.route_id, f"route {d.route_id}"),
            "error": describe_error(d.last_error) if d.last_error else None,
        }
        for d in listed.data
    ]
    return _page(
        state,
        request,
        "admin_deliveries.html",
        status,
        rows=rows,
        status_filter=status_filter,
        statuses=("dead", "pending", "sent"),
        shown=DELIVERIES_SHOWN,
        **context,
    )


@router.get("/admin/deliveries", response_class=HTMLResponse)
async def admin_deliveries(
    request: Request,
    state: State,
    session: Session,
    admin: AdminPage,
    status: DeliveryStatus = "dead",
    done: Done = None,
) -> Response:
    return await _deliveries_page(request, state, session, admin, status, notice=_notice(done))


@router.post("/admin/deliveries/{delivery_id}/retry", response_class=HTMLResponse)
async def admin_retry_delivery(
    request: Request, state: State, session: Session, admin: AdminPage, delivery_id: Id
) -> Response:
    await form_of(request, admin)
    try:
        await routes_api.retry_delivery(session, admin, delivery_id)
    except ClipwatchError as exc:
        return await _deliveries_page(
            request, state, session, admin, "dead", _status_of(exc), problem=str(exc)
        )
    return see_other("/admin/deliveries?done=retried")


# --- Incidents --------------------------------------------------------------------------------


async def _incidents_page(
    request: Request,
    state: AppState,
    session: Session,
    admin: AdminPage,
    status: int = 200,
    **context: Any,
) -> Response:
    # Open ones first (the API's `state=open`), then the latest resolved.
    opened = await incidents_api.list_incidents(session, admin, state=["open"], limit=OPEN_SHOWN)
    resolved = await incidents_api.list_incidents(
        session, admin, state=["resolved"], limit=RESOLVED_SHOWN
    )
    rules = await incidents_api.list_alert_rules(state, admin)
    return _page(
        state,
        request,
        "admin_incidents.html",
        status,
        opened=opened.data,
        resolved=resolved.data,
        rules=rules,
        **context,
    )


@router.get("/admin/incidents", response_class=HTMLResponse)
async def admin_incidents(
    request: Request, state: State, session: Session, admin: AdminPage, done: Done = None
) -> Response:
    return await _incidents_page(request, state, session, admin, notice=_notice(done))


async def _incident_action(
    request: Request,
    state: AppState,
    session: Session,
    admin: AdminPage,
    incident_id: int,
    action: Literal["acknowledged", "resolved"],
) -> Response:
    form = await form_of(request, admin)
    try:
        body = IncidentAction(note=form.get("note") or None)
    except ValidationError:
        return await _incidents_page(
            request,
            state,
            session,
            admin,
            422,
            problem="The note must be at most 2,000 characters of text (tabs and new lines "
            "are fine; other control characters are not).",
        )
    act = (
        incidents_api.acknowledge_incident
        if action == "acknowledged"
        else incidents_api.resolve_incident
    )
    try:
        await act(session, admin, incident_id, body)
    except ClipwatchError as exc:
        return await _incidents_page(
            request, state, session, admin, _status_of(exc), problem=str(exc)
        )
    return see_other(f"/admin/incidents?done={action}")


@router.post("/admin/incidents/{incident_id}/ack", response_class=HTMLResponse)
async def admin_ack_incident(
    request: Request, state: State, session: Session, admin: AdminPage, incident_id: Id
) -> Response:
    return await _incident_action(request, state, session, admin, incident_id, "acknowledged")


@router.post("/admin/incidents/{incident_id}/resolve", response_class=HTMLResponse)
async def admin_resolve_incident(
    request: Request, state: State, session: Session, admin: AdminPage, incident_id: Id
) -> Response:
    return await _incident_action(request, state, session, admin, incident_id, "resolved")


# --- The demo's Discord -----------------------------------------------------------------------

DEMO_WEBHOOK = "demo_webhook_url"
DEMO_WEBHOOK_LOCK = "demo_webhook_lock"


def _discord_base(sink: str) -> str:
    return sink.removesuffix("/").removesuffix("/_sim/messages")


async def _demo_webhook(request: Request, http: httpx.AsyncClient, sink: str) -> str:
    """One webhook on the simulator per process, made on first view and kept on app.state:
    the URL a demo user pastes into a route (the simulator's, not a secret)."""
    app_state = request.app.state
    lock: asyncio.Lock | None = getattr(app_state, DEMO_WEBHOOK_LOCK, None)
    if lock is None:
        lock = asyncio.Lock()
        setattr(app_state, DEMO_WEBHOOK_LOCK, lock)
    async with lock:
        url: str | None = getattr(app_state, DEMO_WEBHOOK, None)
        if url is None:
            made = await http.post(f"{_discord_base(sink)}/_sim/webhooks")
            made.raise_for_status()
            hook = made.json()
            url = f"https://discord.com/api/webhooks/{int(hook['id'])}/{hook['token']}"
            setattr(app_state, DEMO_WEBHOOK, url)
        return url


def _when(at: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(at), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@router.get("/demo/discord", response_class=HTMLResponse)
async def demo_discord(request: Request, state: State) -> Response:
    if not state.settings.demo_mode:
        raise NotFound("no such page: the demo's Discord exists only in demo mode")
    sink = state.demo_sink
    if not sink:
        raise UpstreamUnavailable(
            "this process runs no simulated Discord (start it with `clipwatch demo`)"
        )
    try:
        async with http_client(timeout=SINK_TIMEOUT_S) as http:
            webhook_url = await _demo_webhook(request, http, sink)
            answer = await http.get(sink)
            answer.raise_for_status()
            received = answer.json().get("messages")
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
        raise UpstreamUnavailable(
            "the demo's simulated Discord does not answer; reload in a moment"
        ) from None
    if not isinstance(received, list):
        raise UpstreamUnavailable("the demo's simulated Discord sent something unreadable")
    messages = []
    for item in reversed(received[-MESSAGES_SHOWN:]):
        if not isinstance(item, dict):
            continue
        messages.append(
            {
                "at": _when(item.get("at")),
                "webhook_id": str(item.get("webhook_id", ""))[:40],
                "html": render_message(item.get("payload")).html,
            }
        )
    return _page(
        state,
        request,
        "demo_discord.html",
        messages=messages,
        total=len(received),
        webhook_url=webhook_url,
    )
