"""Channels' live state from two sources that agree: Get Streams polling and EventSub.

`went_online`, `went_offline` and `channel_updated` are the only writers of `channel_live`
and `stream`; each is one transaction and only ever changes a tracked channel. How the two
sources agree (docs/live.md, "Live state"):
- EventSub is news, a poll is a sample: a poll that contradicts an EventSub change younger
  than `eventsub_grace` (two poll intervals: Get Streams lags the events) is ignored; a
  poll that agrees only refreshes (viewer count, title, game, checked_at).
- A live channel seen with another stream id closes the old stream and opens the new one,
  unless the other stream started before the stored one: a stale answer, ignored.
- One stream row per stream: found by Twitch's stream id, else by its start; the start the
  first source stored is kept. `peak_viewers` is the most any source reported.
Every change queues the stream notices (discord/stream_notices.py) in the same
transaction, makes the channel's recent clips due at once (and the final pass after an
end), and outdates cached answers showing the channel (`ch:<id>`, `live`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.models import Channel, ChannelLive, Stream
from clipwatch.db.repositories import live_state
from clipwatch.discord import stream_notices
from clipwatch.monitoring.metrics import LIVE_CHANGES
from clipwatch.twitch.helix import (
    LANGUAGE_MAX,
    REF_ID_MAX,
    TITLE_MAX,
    clean_text,
    usable_id,
)

SOURCES = ("poll", "eventsub")
EVENTSUB_GRACE = timedelta(seconds=120)  # 2 x the default poll interval
FINAL_PASS_AFTER = timedelta(seconds=180)
GAME_NAME_MAX = 256  # the column
TYPE_MAX = 16
VIEWERS_MAX = 2**31 - 1
log = structlog.get_logger("clipwatch.twitch")


@dataclass(frozen=True)
class _Facts:
    """What a source said of the stream, cleaned; None: not said."""

    title: str | None = None
    game_id: str | None = None
    game_name: str | None = None
    viewer_count: int | None = None
    language: str | None = None
    stream_type: str | None = None


def _clean(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    return clean_text(value, limit).strip()


def _facts(
    title: Any = None,
    game_id: Any = None,
    game_name: Any = None,
    viewer_count: Any = None,
    language: Any = None,
    stream_type: Any = None,
) -> _Facts:
    viewers = None
    if isinstance(viewer_count, int) and not isinstance(viewer_count, bool):
        viewers = min(max(viewer_count, 0), VIEWERS_MAX)
    game = usable_id(game_id, REF_ID_MAX)
    name = _clean(game_name, GAME_NAME_MAX)
    if game_id == "":  # Twitch's "no category": cleared with its name
        game, name = "", ""
    return _Facts(
        title=_clean(title, TITLE_MAX),
        game_id=game,
        game_name=name,
        viewer_count=viewers,
        language=_clean(language, LANGUAGE_MAX),
        stream_type=_clean(stream_type, TYPE_MAX) or None,
    )


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown live-state source {source!r}")


def _aware(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _young_eventsub(live: ChannelLive, at: datetime, grace: timedelta) -> bool:
    return live.source == "eventsub" and live.changed_at > at - grace


def _apply(target: Any, facts: _Facts, names: tuple[str, ...]) -> bool:
    """Set the facts said (not None) on `target`; whether any differed. A game id or name
    "" is no category (NULL)."""
    changed = False
    for name in names:
        value = getattr(facts, name)
        if value is None:
            continue
        if name in ("game_id", "game_name") and value == "":
            value = None
        if getattr(target, name) != value:
            setattr(target, name, value)
            changed = True
    return changed


_LIVE_FIELDS = ("title", "game_id", "game_name", "viewer_count", "language", "stream_type")
_STREAM_FIELDS = ("title", "game_id", "game_name")


def _peak(stream: Stream, viewers: int | None) -> bool:
    if viewers is not None and (stream.peak_viewers is None or viewers > stream.peak_viewers):
        stream.peak_viewers = viewers
        return True
    return False


async def went_online(
    sessionmaker: async_sessionmaker[AsyncSession],
    channel_id: str,
    *,
    stream_id: str | None,
    started_at: datetime | None,
    stream_type: str | None,
    source: str,
    title: str | None = None,
    game_id: str | None = None,
    game_name: str | None = None,
    viewer_count: int | None = None,
    language: str | None = None,
    at: datetime | None = None,
    eventsub_grace: timedelta = EVENTSUB_GRACE,
    final_pass_after: timedelta = FINAL_PASS_AFTER,
) -> bool:
    """The channel is live (a poll saw it, or stream.online); True when something changed."""
    _check_source(source)
    at = _aware(at)
    facts = _facts(title, game_id, game_name, viewer_count, language, stream_type)
    twitch_id = usable_id(stream_id, REF_ID_MAX)
    start = _aware(started_at) if started_at is not None else None
    async with session_scope(sessionmaker) as session:
        found = await live_state.lock_live(session, channel_id, source=source, at=at)
        if found is None:
            return False
        channel, live = found
        change = await _online(
            session,
            channel,
            live,
            twitch_id,
            start,
            facts,
            source,
            at,
            eventsub_grace,
            final_pass_after,
        )
    if change:
        LIVE_CHANGES.labels(change=change, source=source).inc()
    return change is not None


async def _online(
    session: AsyncSession,
    channel: Channel,
    live: ChannelLive,
    twitch_id: str | None,
    start: datetime | None,
    facts: _Facts,
    source: str,
    at: datetime,
    grace: timedelta,
    final_pass_after: timedelta,
) -> str | None:
    """What changed (`online`, `update`) or None."""
    if live.live and _same_stream(live, twitch_id, start):
        if source == "poll" and live.stream_type:
            # Get Streams says "live" of every stream; stream.online's type (rerun, premiere)
            # is the one to keep.
            facts = replace(facts, stream_type=None)
        changed = _apply(live, facts, _LIVE_FIELDS)
        if twitch_id and not live.stream_id:
            live.stream_id, changed = twitch_id, True
        stream = await live_state.open_stream_of(session, channel.id)
        if stream is not None:
            changed = _apply(stream, facts, _STREAM_FIELDS) or changed
            changed = _peak(stream, facts.viewer_count) or changed
            if twitch_id and not stream.twitch_stream_id:
                stream.twitch_stream_id = twitch_id
        if at > live.checked_at:
            live.checked_at = at
        if changed:
            live_state.touch_live(session, channel.id)
        return "update" if changed else None
    if live.live and start is not None and live.started_at is not None and start < live.started_at:
        return None  # an older stream than the one stored: a stale answer
    if (
        not live.live
        and live.ended_at is not None  # a stream ended (not a row channel.update created)
        and source == "poll"
        and _young_eventsub(live, at, grace)
        and (twitch_id is None or twitch_id == live.stream_id)
    ):
        return None  # stream.offline is newer than what Get Streams still shows
    if live.live:  # another stream replaced the stored one without an offline between
        await _end(session, channel, live, start or at, at, final_pass_after)
    start = start or at
    stream = await live_state.find_stream(
        session, channel.id, twitch_stream_id=twitch_id, started_at=start
    )
    if stream is None:
        stream = await live_state.open_stream(
            session,
            {
                "channel_id": channel.id,
                "twitch_stream_id": twitch_id,
                "started_at": start,
                # stream.online names no title or game: the channel's last known ones
                "title": live.title if facts.title is None else facts.title,
                "game_id": live.game_id if facts.game_id is None else facts.game_id or None,
                "game_name": live.game_name if facts.game_name is None else facts.game_name or None,
                "peak_viewers": facts.viewer_count,
            },
        )
    else:  # a stream seen before (an offline that was not): one row, reopened
        stream.ended_at = None
        _apply(stream, facts, _STREAM_FIELDS)
        _peak(stream, facts.viewer_count)
    live.live = True
    live.stream_id = twitch_id or stream.twitch_stream_id
    live.started_at = stream.started_at
    live.viewer_count = live.stream_type = None  # of the last stream; title and game stay
    _apply(live, facts, _LIVE_FIELDS)
    live.source = source
    live.changed_at = at
    live.checked_at = max(at, live.checked_at)
    await live_state.mark_sync_due(session, channel.id, datetime.now(UTC))
    await stream_notices.queue_live(session, channel, stream, at)
    live_state.touch_live(session, channel.id)
    log.info("channel_online", channel_id=channel.id, source=source, stream_id=live.stream_id)
    return "online"


def _same_stream(live: ChannelLive, twitch_id: str | None, start: datetime | None) -> bool:
    if twitch_id and live.stream_id:
        return twitch_id == live.stream_id
    # One side does not name the stream: the same unless it plainly started later.
    return start is None or live.started_at is None or start <= live.started_at + EVENTSUB_GRACE


async def _end(
    session: AsyncSession,
    channel: Channel,
    live: ChannelLive,
    ended_at: datetime,
    at: datetime,
    final_pass_after: timedelta,
) -> None:
    closed = await live_state.close_streams(session, channel.id, ended_at)
    live.live = False
    live.ended_at = ended_at
    live.viewer_count = None
    await live_state.mark_sync_due(
        session, channel.id, datetime.now(UTC), final_pass_at=ended_at + final_pass_after
    )
    for stream in closed:
        await stream_notices.queue_stream_end(session, channel, stream, at, final_pass_after)
    live_state.touch_live(session, channel.id)


async def went_offline(
    sessionmaker: async_sessionmaker[AsyncSession],
    channel_id: str,
    *,
    source: str,
    at: datetime | None = None,
    final_pass_after: timedelta = FINAL_PASS_AFTER,
    eventsub_grace: timedelta = EVENTSUB_GRACE,
) -> bool:
    """The channel is offline (a poll did not see it, or stream.offline); True when it was live."""
    _check_source(source)
    at = _aware(at)
    async with session_scope(sessionmaker) as session:
        found = await live_state.lock_live(session, channel_id, source=source, at=at)
        if found is None:
            return False
        channel, live = found
        if at > live.checked_at:
            live.checked_at = at
        if not live.live:
            return False
        if source == "poll" and _young_eventsub(live, at, eventsub_grace):
            return False  # stream.online is newer than what Get Streams shows yet
        await _end(session, channel, live, max(at, live.started_at or at), at, final_pass_after)
        live.source = source
        live.changed_at = at
        log.info("channel_offline", channel_id=channel.id, source=source)
    LIVE_CHANGES.labels(change="offline", source=source).inc()
    return True


async def channel_updated(
    sessionmaker: async_sessionmaker[AsyncSession],
    channel_id: str,
    *,
    source: str,
    title: str | None = None,
    game_id: str | None = None,
    game_name: str | None = None,
    language: str | None = None,
    at: datetime | None = None,
) -> bool:
    """The channel's title, category or language changed (channel.update); live or not, it
    is kept (the next stream starts with it). True when something changed."""
    _check_source(source)
    at = _aware(at)
    facts = _facts(title, game_id, game_name, None, language)
    async with session_scope(sessionmaker) as session:
        found = await live_state.lock_live(session, channel_id, source=source, at=at)
        if found is None:
            return False
        channel, live = found
        changed = _apply(live, facts, ("title", "game_id", "game_name", "language"))
        if live.live:
            stream = await live_state.open_stream_of(session, channel.id)
            if stream is not None:
                changed = _apply(stream, facts, _STREAM_FIELDS) or changed
        if changed:
            live_state.touch_live(session, channel.id)
    if changed:
        LIVE_CHANGES.labels(change="update", source=source).inc()
    return changed
