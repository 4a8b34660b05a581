"""EventSub (admins): the socket, its session, subscriptions and cost; connecting the Twitch
user token the socket needs. docs/eventsub.md"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from clipwatch.api.auth import Admin
from clipwatch.api.deps import Session, State
from clipwatch.api.errors import problem_responses
from clipwatch.api.schemas import StrictBody
from clipwatch.errors import UpstreamUnavailable
from clipwatch.runtime.eventsub_task import eventsub_overview
from clipwatch.twitch.user_tokens import check_user_token, store_user_token

router = APIRouter(tags=["eventsub"])
ADMIN = problem_responses(
    {401: "No valid credentials", 403: "Admins only", 422: "Invalid input", 429: "Rate limited"}
)
CONNECT = problem_responses(
    {
        401: "No valid credentials",
        403: "Admins only (and the CSRF proof with a session)",
        422: "Invalid input, or Twitch refused the token",
        429: "Rate limited",
        503: "Twitch is not configured or does not answer",
    }
)
# Twitch tokens are short ASCII; this bound keeps a pasted mistake out of the database.
TOKEN = Field(min_length=1, max_length=512, pattern=r"^[\x21-\x7e]+$")


class EventSubConnect(StrictBody):
    user_token: str = TOKEN
    refresh_token: str | None = Field(
        default=None, min_length=1, max_length=512, pattern=r"^[\x21-\x7e]+$"
    )


class EventSubTokenRead(BaseModel):
    login: str
    twitch_user_id: str
    scopes: list[str]
    expires_at: datetime | None
    validated_at: datetime | None
    updated_at: datetime
    last_error: str | None
    last_error_at: datetime | None


class EventSubSubscriptionRead(BaseModel):
    id: str
    type: str
    version: str
    channel_id: str
    status: str
    cost: int
    session_id: str
    created_at: datetime


class EventSubRead(BaseModel):
    holder: str | None = Field(description="The worker holding the socket (`eventsub` lease)")
    socket: str = Field(description="connected, connecting, backoff, idle, stopped, down")
    role: str | None = Field(description="holder, no token, token failed (the holder's view)")
    session_id: str | None
    connected_at: str | None
    last_message_at: str | None
    total_cost: int | None
    max_total_cost: int | None
    covered_channels: int | None = Field(
        description="Channels whose online+offline come by EventSub"
    )
    over_budget_channels: int | None = Field(description="Channels left to polling by the budget")
    reconnects: int | None
    problem: str | None
    token: EventSubTokenRead | None
    subscriptions: list[EventSubSubscriptionRead]
    enabled_subscriptions: int
    cost_enabled: int


@router.get(
    "/eventsub",
    response_model=EventSubRead,
    responses=ADMIN,
    summary="The EventSub socket: holder, session, subscriptions, cost (no secrets)",
)
async def read_eventsub(session: Session, _principal: Admin) -> EventSubRead:
    overview: dict[str, Any] = await eventsub_overview(session)
    return EventSubRead.model_validate(overview)


@router.post(
    "/eventsub/connect",
    response_model=EventSubTokenRead,
    responses=CONNECT,
    summary="Connect the Twitch user token EventSub uses (checked with /oauth2/validate)",
)
async def connect_eventsub(
    session: Session, state: State, principal: Admin, body: EventSubConnect
) -> EventSubTokenRead:
    """Any Twitch user's token works (stream.online/offline and channel.update need no
    scope); it must belong to clipwatch's client id. Stored sealed; the holder of the
    socket picks it up within seconds. The token is never shown again."""
    if not state.settings.twitch_client_id:
        raise UpstreamUnavailable("Twitch is not configured (CLIPWATCH_TWITCH_CLIENT_ID/SECRET)")
    owner = await check_user_token(state.settings, body.user_token)
    await store_user_token(
        session,
        state.settings,
        owner,
        body.user_token,
        body.refresh_token,
        connected_by=principal.user_id,
    )
    overview = await eventsub_overview(session)
    return EventSubTokenRead.model_validate(overview["token"])
