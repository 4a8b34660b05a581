"""Stream notices in the outbox (kinds `live`, `stream_end`: stream_notices.py), sent by the
delivery pass beside clips: one message each, rendered when sent (a stream end counts the
stream's clips stored by then, after the final pass), through the same sender, its outcome
recorded by the delivery pass as a clip message's is (`NoticeFinish`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts.secrets import unseal
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Delivery, NotificationRoute
from clipwatch.db.repositories import catalog, live_state
from clipwatch.discord.messages import (
    StreamNoticeView,
    address,
    stream_notice_message,
    voice_of,
)
from clipwatch.discord.sender import Outcome, Rejected, WebhookSender
from clipwatch.discord.webhook_url import WebhookTarget


@dataclass(frozen=True)
class NoticeFinish:
    """Where outcomes go: `finish` (sent, retried, dead, the route gone) and `failed` (building
    the message raised: retried on the schedule, the route told)."""

    finish: Callable[[NotificationRoute, list[Delivery], Outcome], Awaitable[None]]
    failed: Callable[[NotificationRoute, list[Delivery], Exception], Awaitable[None]]


async def notice_view(
    sessionmaker: async_sessionmaker[AsyncSession], delivery: Delivery
) -> StreamNoticeView | None:
    """The notice as it reads now; None when its stream or channel is gone."""
    payload = delivery.payload or {}
    stream_id = payload.get("stream")
    if not isinstance(stream_id, int) or isinstance(stream_id, bool):
        return None
    async with session_scope(sessionmaker) as session:
        stream = await live_state.get_stream(session, stream_id)
        if stream is None:
            return None
        channel = await catalog.get_channel(session, stream.channel_id)
        if channel is None:
            return None
        clips = 0
        if delivery.kind == "stream_end":
            until = stream.ended_at or datetime.now(UTC)
            clips = await live_state.count_stream_clips(
                session, stream.channel_id, stream.started_at, until
            )
        return StreamNoticeView(
            kind=delivery.kind,
            channel_name=channel.display_name or channel.login or channel.id,
            channel_login=channel.login,
            title=stream.title or "",
            game_name=stream.game_name or "",
            started_at=stream.started_at,
            ended_at=stream.ended_at,
            peak_viewers=stream.peak_viewers,
            clips=clips,
        )


Build = Callable[[NotificationRoute, Delivery], Awaitable[dict[str, Any] | None]]
Settle = Callable[[NotificationRoute, Delivery], Awaitable[None]]
AfterSend = Callable[[NotificationRoute, Delivery, Outcome], Awaitable[None]]


async def send_one_each(
    rows: Sequence[Delivery],
    routes: dict[int, NotificationRoute],
    sender: WebhookSender,
    key: bytes,
    done: NoticeFinish,
    *,
    build: Build,
    nothing: Settle,
    after: AfterSend | None = None,
    failed: Callable[[Delivery], None] | None = None,
) -> int:
    """One message per row through its route (notices, digests, trending posts): `build`
    makes it (None: nothing to send, `nothing` settles the row); building raises → that row
    fails, never the pass; `after` sees each outcome before it is recorded. How many
    messages were tried."""
    tried = 0
    for row in rows:
        route = routes.get(row.route_id or 0)
        if route is None:
            continue  # the route was removed meanwhile: its rows went with it
        if not route.enabled:
            await done.finish(route, [row], Rejected("route disabled"))
            continue
        try:
            message = await build(route, row)
            target = WebhookTarget(route.webhook_id, unseal(key, route.webhook_token_sealed))
        except Exception as exc:  # odd data or a bug costs this row, never the pass
            if failed is not None:
                failed(row)
            await done.failed(route, [row], exc)
            continue
        if message is None:
            await nothing(route, row)
            continue
        tried += 1
        thread_id = None if route.forum_mode else route.thread_id
        outcome = await sender.send(target, message, thread_id=thread_id)
        if after is not None:
            await after(route, row, outcome)
        await done.finish(route, [row], outcome)
    return tried


async def deliver_notices(
    sessionmaker: async_sessionmaker[AsyncSession],
    notices: Sequence[Delivery],
    routes: dict[int, NotificationRoute],
    sender: WebhookSender,
    key: bytes,
    done: NoticeFinish,
) -> int:
    """Send each notice through its route; how many messages were tried."""

    async def build(route: NotificationRoute, delivery: Delivery) -> dict[str, Any] | None:
        view = await notice_view(sessionmaker, delivery)
        if view is None:
            return None
        message = address(stream_notice_message(view), voice_of(route))
        if route.forum_mode:  # a forum takes posts: the notice opens one, named by it
            message["thread_name"] = message["embeds"][0]["title"][:100]
        return message

    async def not_archived(route: NotificationRoute, delivery: Delivery) -> None:
        await done.finish(route, [delivery], Rejected("stream not in the archive"))

    return await send_one_each(
        notices, routes, sender, key, done, build=build, nothing=not_archived
    )
