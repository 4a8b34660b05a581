"""Notification routes: owner-scoped (admins see all; another's route is NotFound)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.secrets import seal
from clipwatch.accounts.service import Principal
from clipwatch.db.models import Delivery, NotificationRoute
from clipwatch.db.repositories import notifications as repo
from clipwatch.discord.delivery import template_of
from clipwatch.discord.messages import validate_template
from clipwatch.discord.webhook_url import parse_webhook_url
from clipwatch.errors import Conflict, NotFound


async def routes_of(session: AsyncSession, principal: Principal) -> Sequence[NotificationRoute]:
    return await repo.list_routes(session, None if principal.is_admin else principal.user_id)


async def visible_route(
    session: AsyncSession, principal: Principal, route_id: int
) -> NotificationRoute:
    route = await repo.get_route(session, route_id)
    if route is None or not principal.can_see(route.user_id):
        raise NotFound(f"no route {route_id}")
    return route


def _apply(
    route: NotificationRoute,
    values: dict[str, Any],
    *,
    key: bytes,
    allowed_hosts: list[str],
) -> None:
    if "webhook_url" in values:
        target = parse_webhook_url(values.pop("webhook_url"), allowed_hosts)
        route.webhook_id = target.webhook_id
        route.webhook_token_sealed = seal(key, target.token)
    for name in ("name", "filters", "template", "delay_seconds", "batching"):
        if name in values:
            setattr(route, name, values[name])
    if "enabled" in values:
        route.enabled = bool(values["enabled"])
        if route.enabled:
            route.disabled_reason = None
    validate_template(template_of(route))


async def create_route(
    session: AsyncSession,
    principal: Principal,
    values: dict[str, Any],
    *,
    key: bytes,
    allowed_hosts: list[str],
    owner_id: int | None = None,
) -> NotificationRoute:
    """A route of the caller's (or, for admins, of `owner_id`)."""
    if owner_id is not None and owner_id != principal.user_id and not principal.is_admin:
        raise NotFound(f"no user {owner_id}")
    route = NotificationRoute(
        user_id=owner_id if owner_id is not None else principal.user_id,
        filters={},
        template={"name": "card"},
        delay_seconds=0,
        batching=True,
        enabled=True,
        created_at=datetime.now(UTC),
    )
    _apply(route, dict(values), key=key, allowed_hosts=allowed_hosts)
    session.add(route)
    await session.flush()
    return route


async def update_route(
    session: AsyncSession,
    principal: Principal,
    route_id: int,
    values: dict[str, Any],
    *,
    key: bytes,
    allowed_hosts: list[str],
) -> NotificationRoute:
    route = await visible_route(session, principal, route_id)
    _apply(route, dict(values), key=key, allowed_hosts=allowed_hosts)
    await session.flush()
    return route


async def delete_route(session: AsyncSession, principal: Principal, route_id: int) -> None:
    route = await visible_route(session, principal, route_id)
    await session.delete(route)
    await session.flush()


async def deliveries_of(
    session: AsyncSession, principal: Principal, status: str | None, limit: int
) -> Sequence[Delivery]:
    routes = await routes_of(session, principal)
    return await repo.list_deliveries(session, [r.id for r in routes], status, limit)


async def retry_delivery(session: AsyncSession, principal: Principal, delivery_id: int) -> Delivery:
    delivery = await repo.get_delivery(session, delivery_id)
    if delivery is None:
        raise NotFound(f"no delivery {delivery_id}")
    route = await repo.get_route(session, delivery.route_id)
    if route is None or not principal.can_see(route.user_id):
        raise NotFound(f"no delivery {delivery_id}")
    if delivery.status != "dead":
        raise Conflict(f"delivery {delivery_id} is {delivery.status}, not dead")
    if not route.enabled:
        raise Conflict(f"route {route.id} is disabled: {route.disabled_reason}")
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = datetime.now(UTC)
    await session.flush()
    return delivery
