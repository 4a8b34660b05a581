"""Notification routes (owner-scoped; admins see all) and their deliveries."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from clipwatch.api.auth import Reader, Writer
from clipwatch.api.deps import Session, State
from clipwatch.api.errors import problem_responses
from clipwatch.api.route_schemas import (
    DeliveryRead,
    RouteCreate,
    RouteRead,
    RouteTestResult,
    RouteUpdate,
)
from clipwatch.api.routers.me import MINE, WRITE, Id
from clipwatch.api.schemas import ListOf
from clipwatch.discord import routes as service
from clipwatch.discord.sender import WebhookSender
from clipwatch.errors import RateLimited

router = APIRouter(tags=["notifications"])


def _hosts(state: State) -> list[str]:
    return state.settings.webhook_allowed_hosts.split(",")


def _checks(state: State, request: Request) -> dict[str, Any]:
    """What a save checks with: the avatar hosts, and the sender that asks Discord about a
    new webhook (CLIPWATCH_WEBHOOK_CHECK)."""
    settings = state.settings
    return {
        "avatar_hosts": settings.avatar_allowed_hosts.split(","),
        "sender": _sender(request) if settings.webhook_check else None,
    }


SAVE = problem_responses(
    {
        404: "Not yours or absent",
        422: "Invalid, or Discord says the webhook does not exist (its token is wrong)",
        503: "Discord could not be asked about the webhook: see Retry-After; nothing saved",
    }
)


@router.get("/routes", response_model=ListOf[RouteRead], responses=MINE, summary="My routes")
async def list_routes(session: Session, principal: Reader) -> ListOf[RouteRead]:
    routes = await service.routes_of(session, principal)
    return ListOf[RouteRead](data=[RouteRead.from_route(r) for r in routes])


@router.post(
    "/routes",
    response_model=RouteRead,
    status_code=201,
    responses=WRITE | SAVE,
    summary="Add a route (its webhook checked with Discord first)",
)
async def create_route(
    request: Request, state: State, session: Session, principal: Writer, body: RouteCreate
) -> RouteRead:
    route = await service.create_route(
        session,
        principal,
        body.model_dump(),
        key=state.settings.signing_key,
        allowed_hosts=_hosts(state),
        **_checks(state, request),
    )
    return RouteRead.from_route(route)


@router.get("/routes/{route_id}", response_model=RouteRead, responses=MINE, summary="One route")
async def read_route(session: Session, principal: Reader, route_id: Id) -> RouteRead:
    return RouteRead.from_route(await service.visible_route(session, principal, route_id))


@router.patch(
    "/routes/{route_id}",
    response_model=RouteRead,
    responses=MINE | SAVE,
    summary="Change a route (a new webhook checked with Discord first)",
)
async def update_route(
    request: Request,
    state: State,
    session: Session,
    principal: Writer,
    route_id: Id,
    body: RouteUpdate,
) -> RouteRead:
    route = await service.update_route(
        session,
        principal,
        route_id,
        _changes(body),
        key=state.settings.signing_key,
        allowed_hosts=_hosts(state),
        **_checks(state, request),
    )
    return RouteRead.from_route(route)


@router.delete("/routes/{route_id}", status_code=204, responses=MINE, summary="Remove a route")
async def delete_route(session: Session, principal: Writer, route_id: Id) -> Response:
    await service.delete_route(session, principal, route_id)
    return Response(status_code=204)


def _sender(request: Request) -> WebhookSender:
    sender: WebhookSender = request.app.state.discord_sender
    return sender


def _changes(body: RouteUpdate) -> dict[str, Any]:
    """What a PATCH changes: the fields it names. `null` clears one of issue 15's options
    (a thread, a trending threshold, a name...); for the other fields it means "unchanged"."""
    given = body.model_dump(exclude_unset=True)
    return {
        name: value
        for name, value in given.items()
        if value is not None or name in service.DISCORD_OPTIONS
    }


@router.post(
    "/routes/{route_id}/test",
    response_model=RouteTestResult,
    responses=problem_responses(
        {
            404: "Not yours or absent",
            409: "The route is disabled (its webhook is gone, or by its owner): nothing sent",
            429: "Too many route tests: see Retry-After",
        }
    ),
    summary="Post a message marked as a test, showing the newest clip the route would post",
)
async def test_route(
    request: Request, state: State, session: Session, principal: Writer, route_id: Id
) -> RouteTestResult:
    await service.visible_route(session, principal, route_id)  # another's route: 404 first
    decision = await state.limiter.hit(
        state.settings.rate_limit_route_test, "route-test", str(principal.user_id)
    )
    if not decision.allowed:
        raise RateLimited(
            f"too many route tests; try again in {decision.reset_after} s",
            retry_after=max(decision.reset_after, 1),
            headers={"Retry-After": decision.headers()["Retry-After"]},
        )
    result = await service.send_test_message(
        session, principal, route_id, _sender(request), key=state.settings.signing_key
    )
    return RouteTestResult(
        sent=result.sent,
        message_id=result.message_id,
        detail=result.detail,
        clip_id=result.clip_id,
        route_enabled=result.route_enabled,
    )


@router.get(
    "/deliveries",
    response_model=ListOf[DeliveryRead],
    responses=MINE,
    summary="Deliveries of my routes, newest first",
)
async def list_deliveries(
    session: Session,
    principal: Reader,
    status: Literal["pending", "sent", "dead"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ListOf[DeliveryRead]:
    rows = await service.deliveries_of(session, principal, status, limit)
    return ListOf[DeliveryRead](data=[DeliveryRead.from_delivery(d) for d in rows])


@router.post(
    "/deliveries/{delivery_id}/retry",
    response_model=DeliveryRead,
    responses=problem_responses(
        {404: "Not yours or absent", 409: "Not dead, or its route is disabled", 422: "Invalid"}
    ),
    summary="Send a dead delivery again",
)
async def retry_delivery(session: Session, principal: Writer, delivery_id: Id) -> DeliveryRead:
    return DeliveryRead.from_delivery(await service.retry_delivery(session, principal, delivery_id))
