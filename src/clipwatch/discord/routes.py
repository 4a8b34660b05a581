"""Notification routes: owner-scoped (admins see all; another's route is NotFound)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.secrets import seal, unseal
from clipwatch.accounts.service import Principal
from clipwatch.db.models import Clip, Delivery, NotificationRoute
from clipwatch.db.repositories import catalog
from clipwatch.db.repositories import notifications as repo
from clipwatch.discord.delivery import template_of, view_of
from clipwatch.discord.messages import (
    SAMPLE,
    ClipView,
    TemplateFailures,
    build_messages,
    escape,
    template_failure_text,
    validate_template,
)
from clipwatch.discord.outbox import filters_of
from clipwatch.discord.routing import ClipFacts, route_matches
from clipwatch.discord.sender import Gone, Sent, WebhookSender
from clipwatch.discord.webhook_url import WebhookTarget, parse_webhook_url
from clipwatch.errors import Conflict, NotFound

TEST_MAX_WAIT_S = 5.0  # a test waits this long for the webhook's bucket, not a worker's 30 s
TEST_CANDIDATES = 500  # newest clips looked at for one that the route's filters accept


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
    if "template" in values and values["template"] != route.template:
        # The errors were the old template's: the route's answer speaks of the new one.
        route.last_error, route.last_error_at, route.error_count = None, None, 0
    for name in (
        "name",
        "filters",
        "template",
        "delay_seconds",
        "batching",
        "notify_live",
        "notify_stream_end",
    ):
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
        notify_live=False,
        notify_stream_end=False,
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
    if delivery is None or delivery.route_id is None:  # an alert message is no one's route
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


@dataclass(frozen=True)
class TestSend:
    sent: bool
    detail: str
    message_id: str | None = None
    clip_id: str | None = None  # the stored clip shown; None: the built-in sample
    route_enabled: bool = True


def test_message(route_name: str, message: dict[str, Any]) -> dict[str, Any]:
    """`message` marked as a test of the route (the clip stays as a post would show it)."""
    marker = f"Test message from clipwatch for route “{escape(route_name)}”"
    content = message.get("content")
    return {**message, "content": f"{marker}\n{content}" if content else marker}


def _facts(clip: Clip) -> ClipFacts:
    return ClipFacts(
        broadcaster_id=clip.broadcaster_id,
        broadcaster_login=clip.broadcaster_name.lower() or None,
        game_id=clip.game_id,
        language=clip.language,
        view_count=clip.view_count,
        title=clip.title,
        creator_id=clip.creator_id,
        creator_name=clip.creator_name,
        is_featured=clip.is_featured,
    )


async def example_clip(session: AsyncSession, route: NotificationRoute) -> ClipView | None:
    """The newest stored clip the route would post, or None when none of the newest does."""
    filters = filters_of(route)
    candidates = await repo.newest_clips(
        session,
        channels=sorted(filters.channels),
        min_views=filters.min_views,
        limit=TEST_CANDIDATES,
    )
    clip = next((c for c in candidates if route_matches(filters, _facts(c))), None)
    if clip is None:
        return None
    names = await catalog.game_names(session, [clip.game_id] if clip.game_id else [])
    return view_of(clip, names.get(clip.game_id or ""))


async def send_test_message(
    session: AsyncSession,
    principal: Principal,
    route_id: int,
    sender: WebhookSender,
    *,
    key: bytes,
) -> TestSend:
    """A message marked as a test, through the route's webhook, showing the newest stored clip
    the route would post (the sample when there is none). It goes through the delivery's
    sender: its buckets, bans and pauses hold; a gone webhook disables the route as a
    delivery would, and a disabled route sends nothing (Conflict)."""
    route = await visible_route(session, principal, route_id)
    if not route.enabled:
        raise Conflict(
            f"route {route.id} is disabled ({route.disabled_reason or 'by its owner'}): "
            "nothing was sent; enable it (after fixing its webhook) to test it"
        )
    view = await example_clip(session, route)
    failures: TemplateFailures = []
    try:
        built = build_messages(template_of(route), [view or SAMPLE], template_failures=failures)[0]
    except Exception:  # odd route data: the test still shows what a card looks like
        built = build_messages("card", [view or SAMPLE])[0]
    if failures:  # the template failed on this clip (a card was built): as a delivery records
        await repo.record_route_error(
            session, route.id, template_failure_text(failures), datetime.now(UTC)
        )
    message = test_message(route.name, built)
    target = WebhookTarget(route.webhook_id, unseal(key, route.webhook_token_sealed))
    outcome = await sender.send(target, message, max_wait=TEST_MAX_WAIT_S)
    clip_id = view.id if view else None
    if isinstance(outcome, Sent):
        return TestSend(True, "sent", outcome.message_id, clip_id)
    if isinstance(outcome, Gone):
        # As a delivery does: the route stops at once, so nothing asks the gone webhook again.
        route.enabled = False
        route.disabled_reason = outcome.reason
        await session.flush()
        return TestSend(False, f"{outcome.reason}; the route is now disabled", None, clip_id, False)
    return TestSend(False, outcome.reason, None, clip_id)
