"""Digest, trending and collection rows of the outbox (kinds `digest`, `trending`,
`collection`), sent by the delivery pass beside clips: one message each, built when sent (a
digest from its period's top clips then, a trending post from the clip as it is then, a
collection from its shown clips then: docs/collections.md), addressed as the route sends
(pings, name, avatar, its thread or a new forum post), through the same sender; outcomes
recorded as a stream notice's are (`NoticeFinish`), counted in `clipwatch_route_posts_total`,
and a refusal shown on the route."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.models import Clip, Delivery, NotificationRoute
from clipwatch.db.repositories import catalog, moderation, notifications
from clipwatch.db.repositories import collections as collection_repo
from clipwatch.discord import forum
from clipwatch.discord.digests import TOP_MAX, digest_message, list_message, top_clips
from clipwatch.discord.messages import (
    CONTENT_MAX,
    EMBEDS_PER_MESSAGE,
    LINK_TEMPLATE,
    NO_PINGS,
    TITLE_MAX,
    ClipView,
    Template,
    TemplateFailures,
    address,
    cut,
    escape,
    iter_messages,
    template_failure_text,
    voice_of,
)
from clipwatch.discord.notice_delivery import NoticeFinish, send_one_each
from clipwatch.discord.outbox import filters_of
from clipwatch.discord.sender import Outcome, Rejected, RetryLater, Sent, WebhookSender
from clipwatch.discord.trending import trending_reason
from clipwatch.monitoring.metrics import ROUTE_POSTS

POST_KINDS = ("digest", "trending", "collection")
log = structlog.get_logger("clipwatch.discord")


async def build_post(
    sessionmaker: async_sessionmaker[AsyncSession], route: NotificationRoute, row: Delivery
) -> dict[str, Any] | None:
    """The row's message as it reads now, addressed as the route sends (None: nothing to
    post: a digest period without clips, a trending clip gone from the archive)."""
    # delivery.py imports this module; these two are its own helpers.
    from clipwatch.discord.delivery import template_of, view_of

    payload = row.payload or {}
    failures: TemplateFailures = []
    title = ""
    async with session_scope(sessionmaker) as session:
        clips: Sequence[Clip]
        if row.kind == "collection":
            collection_id = int(payload.get("collection", 0))
            collection = await collection_repo.get_collection(session, collection_id)
            title = collection.title if collection else ""
            clips = await collection_repo.postable_clips(session, collection_id)
        elif row.kind == "digest":
            start = datetime.fromisoformat(str(payload["start"]))
            end = datetime.fromisoformat(str(payload["end"]))
            top = min(max(int(payload.get("top", 10)), 1), TOP_MAX)
            clips = await top_clips(session, filters_of(route), start, end, top)
        else:
            found = await notifications.clips_by_id(session, {str(payload.get("clip"))})
            hidden = await moderation.hidden_ids(session, found)
            clips = [c for c in found.values() if c.deleted_at is None and c.id not in hidden]
        names = await catalog.game_names(session, (c.game_id for c in clips if c.game_id))
    views = [view_of(c, names.get(c.game_id or "")) for c in clips]
    if not views:
        return None
    template = template_of(route)
    if row.kind == "digest":
        label = str(payload.get("label") or payload.get("key") or "")
        message = digest_message(template, label, views, template_failures=failures)
        name = f"Top clips of {label}"
    elif row.kind == "collection":
        message = collection_message(template, title, views, template_failures=failures)
        name = title
    else:
        message, _ = next(iter_messages(template, views, template_failures=failures))
        reason = trending_reason(payload)
        message = {**message, "content": f"{reason}\n{message.get('content') or ''}".strip()}
        name = forum.thread_name_for(route.thread_name, views[0])
    if message is None:
        return None
    if failures:  # the clip went out as a card; the route is told, as for clip messages
        async with session_scope(sessionmaker) as session:
            await notifications.record_route_error(
                session, route.id, template_failure_text(failures), datetime.now(UTC)
            )
    out = address(message, voice_of(route))
    if route.forum_mode:  # a forum channel: the post opens its own thread
        out["thread_name"] = cut(name, forum.THREAD_NAME_MAX) or "clipwatch"
    return out


def collection_message(
    template: Template,
    title: str,
    clips: Sequence[ClipView],
    *,
    template_failures: TemplateFailures | None = None,
) -> dict[str, Any] | None:
    """A collection's clips in order under its title (None: no clips), as a digest reads:
    one embed a clip when they fit one message, else a numbered list; the first TOP_MAX."""
    if not clips:
        return None
    shown = clips[:TOP_MAX]
    more = f" (the first {len(shown)} of {len(clips)})" if len(shown) < len(clips) else ""
    heading = cut(escape(" ".join(title.split())), TITLE_MAX - len(more)) + more
    if template == LINK_TEMPLATE:  # bare links, so Discord unfurls them
        lines = [f"**{heading}**"] + [f"{i}. {c.url}" for i, c in enumerate(shown, 1)]
        content = "\n".join(lines)
        if len(content) <= CONTENT_MAX:
            return {"content": content, "allowed_mentions": NO_PINGS}
    if len(shown) <= EMBEDS_PER_MESSAGE:
        message, count = next(iter_messages(template, shown, template_failures=template_failures))
        if count == len(shown):
            return {**message, "content": f"**{heading}**"}
    return list_message(heading, shown)


async def deliver_posts(
    sessionmaker: async_sessionmaker[AsyncSession],
    rows: Sequence[Delivery],
    routes: dict[int, NotificationRoute],
    sender: WebhookSender,
    key: bytes,
    done: NoticeFinish,
) -> int:
    """Send each digest or trending row through its route, one message each; how many
    messages were tried."""

    async def build(route: NotificationRoute, row: Delivery) -> dict[str, Any] | None:
        return await build_post(sessionmaker, route, row)

    async def nothing(_route: NotificationRoute, row: Delivery) -> None:
        await _nothing_to_post(sessionmaker, row)

    async def after(route: NotificationRoute, row: Delivery, outcome: Outcome) -> None:
        ROUTE_POSTS.labels(row.kind, _outcome_label(outcome)).inc()
        if isinstance(outcome, Rejected):  # the route's own doing (its template, its forum)
            log.warning("route_post_rejected", route_id=route.id, kind=row.kind)
            async with session_scope(sessionmaker) as session:
                text = f"{row.kind} not posted: {outcome.reason}"[:500]
                await notifications.record_route_error(session, route.id, text, datetime.now(UTC))

    def failed(row: Delivery) -> None:
        ROUTE_POSTS.labels(row.kind, "failed").inc()

    return await send_one_each(
        rows, routes, sender, key, done, build=build, nothing=nothing, after=after, failed=failed
    )


def _outcome_label(outcome: Outcome) -> str:
    if isinstance(outcome, Sent):
        return "sent"
    if isinstance(outcome, RetryLater):
        return "retried"
    if isinstance(outcome, Rejected):
        return "rejected"
    return "gone"


async def _nothing_to_post(sessionmaker: async_sessionmaker[AsyncSession], row: Delivery) -> None:
    """A digest period without clips (a trending clip deleted meanwhile, a collection with
    no clip to show, or deleted): done, with no message (an empty digest every quiet day
    would only be noise)."""
    why = {
        "digest": "no clips in this period: nothing posted",
        "collection": "no clips to show in the collection: nothing posted",
    }.get(row.kind, "clip gone")
    ROUTE_POSTS.labels(row.kind, "empty").inc()
    async with session_scope(sessionmaker) as session:
        await notifications.update_deliveries(
            session, [row.id], status="sent", sent_at=datetime.now(UTC), last_error=why
        )
