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
from clipwatch.discord.forum import thread_name_for, validate_thread_name
from clipwatch.discord.identity import check_avatar_url, check_username
from clipwatch.discord.messages import (
    SAMPLE,
    ClipView,
    TemplateFailures,
    address,
    build_messages,
    escape,
    template_failure_text,
    validate_template,
    voice_of,
)
from clipwatch.discord.outbox import filters_of
from clipwatch.discord.routing import ClipFacts, route_matches
from clipwatch.discord.sender import Gone, RetryLater, Sent, WebhookFacts, WebhookSender
from clipwatch.discord.webhook_url import WebhookTarget, parse_pasted_webhook
from clipwatch.errors import Conflict, Forbidden, InvalidInput, NotFound, UpstreamUnavailable

TEST_MAX_WAIT_S = 5.0  # a test waits this long for the webhook's bucket, not a worker's 30 s
TEST_CANDIDATES = 500  # newest clips looked at for one that the route's filters accept
CHECK_MAX_WAIT_S = 5.0  # a save waits this long for the webhook's bucket, then answers 503
DEFAULT_AVATAR_HOSTS = ("cdn.discordapp.com", "media.discordapp.net", "static-cdn.jtvnw.net")


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
    avatar_hosts: Sequence[str] = DEFAULT_AVATAR_HOSTS,
) -> WebhookTarget | None:
    """Store `values` on the route (checked); the new webhook, when one was given."""
    target = None
    if values.get("webhook_url") is not None:
        pasted = parse_pasted_webhook(values.pop("webhook_url"), allowed_hosts)
        target = pasted.target
        route.webhook_id = target.webhook_id
        route.webhook_token_sealed = seal(key, target.token)
        # The pasted URL says where it posts: its thread, or (none named) the channel itself.
        if values.get("thread_id") is None:
            route.thread_id = pasted.thread_id
            values.pop("thread_id", None)  # the URL said it: a null beside it clears nothing
    values.pop("webhook_url", None)
    if values.get("username") is not None:
        values["username"] = check_username(values["username"])
    if values.get("avatar_url") is not None:
        values["avatar_url"] = check_avatar_url(values["avatar_url"], avatar_hosts)
    if values.get("thread_name") is not None:
        validate_thread_name(values["thread_name"])
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
    for name in DISCORD_OPTIONS:
        if name in values:  # None clears the option (create gives every field, unset None)
            value = values[name]
            setattr(route, name, OPTION_DEFAULTS.get(name) if value is None else value)
    if "enabled" in values:
        route.enabled = bool(values["enabled"])
        if route.enabled:
            route.disabled_reason = None
    validate_template(template_of(route))
    check_options(route)
    return target


# Issue 15's route options, stored as given (None: unset), checked together by check_options.
DISCORD_OPTIONS = (
    "kind",
    "thread_id",
    "forum_mode",
    "thread_name",
    "role_ids",
    "ping_here",
    "username",
    "avatar_url",
    "digest",
    "trending_views_per_hour",
    "on_deleted",
    "milestones",
)

# What a cleared option goes back to (the others go back to null).
OPTION_DEFAULTS: dict[str, Any] = {"kind": "clips", "ping_here": False, "on_deleted": "keep"}


def check_options(route: NotificationRoute) -> None:
    """The options that only make sense together (each feature checks its own values)."""
    route.kind = route.kind or "clips"
    route.on_deleted = route.on_deleted or "keep"
    if route.kind == "digest" and not route.digest:
        raise InvalidInput("a digest route needs its schedule", field="digest")
    if route.kind != "digest" and route.digest:
        raise InvalidInput("a schedule is for digest routes (kind: digest)", field="digest")
    if route.forum_mode and route.thread_id:
        raise InvalidInput(
            "a route posts into one thread or opens forum posts, not both", field="forum_mode"
        )
    if route.forum_mode and not route.thread_name:
        raise InvalidInput("forum posts need a name: set thread_name", field="thread_name")
    if route.ping_here and not route.here_allowed:
        raise InvalidInput(
            "@here needs an admin to allow it on this route (here_allowed)", field="ping_here"
        )
    if route.forum_mode and route.kind == "digest":
        raise InvalidInput("forum posts are for clip routes", field="forum_mode")


async def check_webhook(
    route: NotificationRoute, target: WebhookTarget, sender: WebhookSender
) -> None:
    """GET the webhook before the route is saved (through the sender: its buckets, bans and
    pauses hold). Gone (deleted, wrong token): InvalidInput on webhook_url. Discord not
    answering, or its limits holding us over CHECK_MAX_WAIT_S: UpstreamUnavailable with
    Retry-After (nothing is saved). Otherwise the route keeps what Discord said."""
    facts = await sender.fetch_webhook(target, max_wait=CHECK_MAX_WAIT_S)
    if isinstance(facts, WebhookFacts):
        route.webhook_channel_id = facts.channel_id or None
        route.webhook_guild_id = facts.guild_id or None
        route.webhook_name = facts.name or None
        route.webhook_checked_at = datetime.now(UTC)
        return
    if isinstance(facts, RetryLater):
        after = max(1, min(3600, round(facts.after or 5)))
        raise UpstreamUnavailable(
            f"Discord could not be asked about the webhook ({facts.reason}); nothing was saved: "
            f"try again in {after} s",
            retry_after=after,
        )
    why = facts.reason if isinstance(facts, Gone) else f"Discord refused: {facts.reason}"
    raise InvalidInput(
        f"Discord says the webhook does not exist or its token is wrong ({why}); "
        "copy the webhook URL again from the channel's settings",
        field="webhook_url",
    )


async def create_route(
    session: AsyncSession,
    principal: Principal,
    values: dict[str, Any],
    *,
    key: bytes,
    allowed_hosts: list[str],
    owner_id: int | None = None,
    sender: WebhookSender | None = None,
    avatar_hosts: Sequence[str] = DEFAULT_AVATAR_HOSTS,
) -> NotificationRoute:
    """A route of the caller's (or, for admins, of `owner_id`). With a `sender`, the webhook
    is checked with Discord before anything is saved (check_webhook)."""
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
    values = dict(values)
    _admin_options(route, principal, values)
    target = _apply(route, values, key=key, allowed_hosts=allowed_hosts, avatar_hosts=avatar_hosts)
    if sender is not None and target is not None:
        await check_webhook(route, target, sender)
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
    sender: WebhookSender | None = None,
    avatar_hosts: Sequence[str] = DEFAULT_AVATAR_HOSTS,
) -> NotificationRoute:
    """Change a route; a new webhook URL is checked with Discord first (as at creation)."""
    route = await visible_route(session, principal, route_id)
    _admin_options(route, principal, values)
    old_webhook = route.webhook_id, route.webhook_token_sealed
    target = _apply(
        route, dict(values), key=key, allowed_hosts=allowed_hosts, avatar_hosts=avatar_hosts
    )
    if target is not None and sender is not None:
        unchanged = old_webhook[0] == target.webhook_id and unseal(key, old_webhook[1]) == (
            target.token
        )
        if not unchanged or route.webhook_checked_at is None:
            await check_webhook(route, target, sender)
    await session.flush()
    return route


def _admin_options(route: NotificationRoute, principal: Principal, values: dict[str, Any]) -> None:
    """`here_allowed` is an admin's to set (an owner cannot allow their own @here)."""
    if values.get("here_allowed") is None:
        values.pop("here_allowed", None)
        return
    if not principal.is_admin:
        raise Forbidden("only an admin may allow @here on a route")
    route.here_allowed = bool(values.pop("here_allowed"))


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
    message = address(test_message(route.name, built), voice_of(route))
    if route.forum_mode:  # a forum takes a post: the test opens one of its own
        message["thread_name"] = thread_name_for(route.thread_name, view or SAMPLE)
    target = WebhookTarget(route.webhook_id, unseal(key, route.webhook_token_sealed))
    outcome = await sender.send(
        target,
        message,
        max_wait=TEST_MAX_WAIT_S,
        thread_id=None if route.forum_mode else route.thread_id,
    )
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
