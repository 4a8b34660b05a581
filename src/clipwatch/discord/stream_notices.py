"""Stream notices in the outbox: "went live" (kind `live`) and "stream ended: N clips"
(kind `stream_end`) for the routes that asked (`notify_live`, `notify_stream_end`) and
whose channel filter lets the channel through (their other filters are about clips).

Written in the transaction that stores the live change (twitch/live.py), one row per route
and stream: the outbox's unique (route, clip_id) key, with clip_id `live:<stream>` or
`end:<stream>`, keeps a repeated online or offline of one stream to one notice. The message
is rendered when it is sent (delivery.py): a stream-end notice counts the stream's clips
stored by then, so it is due after the final pass (`final_pass_after` + `END_MARGIN`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import Channel, NotificationRoute, Stream
from clipwatch.db.repositories import notifications
from clipwatch.discord.outbox import filters_of

NOTICE_KINDS = ("live", "stream_end")
END_MARGIN = timedelta(seconds=60)  # the final pass's own time


def stream_key(stream: Stream) -> str:
    return stream.twitch_stream_id or stream.started_at.isoformat()


def wants_channel(route: NotificationRoute, channel: Channel) -> bool:
    channels = filters_of(route).channels
    return not channels or channel.id in channels or (channel.login or "") in channels


async def _queue(
    session: AsyncSession,
    kind: str,
    channel: Channel,
    stream: Stream,
    due: datetime,
    now: datetime,
) -> int:
    flag = "notify_live" if kind == "live" else "notify_stream_end"
    prefix = "live:" if kind == "live" else "end:"
    payload: dict[str, Any] = {"stream": stream.id, "channel_id": channel.id}
    rows = [
        {
            "route_id": route.id,
            "clip_id": prefix + stream_key(stream),
            "kind": kind,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": due,
            "created_at": now,
            "payload": payload,
        }
        for route in await notifications.enabled_routes(session)
        if getattr(route, flag) and wants_channel(route, channel)
    ]
    await notifications.add_deliveries(session, rows)
    return len(rows)


async def queue_live(session: AsyncSession, channel: Channel, stream: Stream, at: datetime) -> int:
    """ "Went live" notices for this stream, due at once; how many."""
    return await _queue(session, "live", channel, stream, at, at)


async def queue_stream_end(
    session: AsyncSession,
    channel: Channel,
    stream: Stream,
    at: datetime,
    final_pass_after: timedelta,
) -> int:
    """ "Stream ended" notices, due once the final pass has stored the last clips; how many."""
    return await _queue(
        session, "stream_end", channel, stream, at + final_pass_after + END_MARGIN, at
    )
