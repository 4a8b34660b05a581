"""Channels' live state (`channel_live`) and their stream history (`stream`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.engine import touch
from clipwatch.db.models import Channel, ChannelLive, ChannelSync, Clip, Stream
from clipwatch.db.repositories._dialect import dialect_name, insert_for
from clipwatch.db.types import UTCDateTime


async def lock_live(
    session: AsyncSession, channel_id: str, *, source: str, at: datetime
) -> tuple[Channel, ChannelLive] | None:
    """The tracked channel and its live row (created offline on first use), locked for this
    transaction; None when the channel is unknown or not tracked.

    The first statement writes, so SQLite takes its write lock before anything is read (a
    read-then-write transaction could not wait for another writer) and PostgreSQL's
    `FOR UPDATE` orders two sources changing one channel at once."""
    created = select(
        Channel.id,
        literal(False),
        literal(source),
        literal(at, UTCDateTime()),
        literal(at, UTCDateTime()),
    ).where(Channel.id == channel_id, Channel.tracked.is_(True))
    await session.execute(
        insert_for(session, ChannelLive)
        .from_select(["channel_id", "live", "source", "changed_at", "checked_at"], created)
        .on_conflict_do_nothing()
    )
    stmt = (
        select(Channel, ChannelLive)
        .join(ChannelLive, ChannelLive.channel_id == Channel.id)
        .where(Channel.id == channel_id, Channel.tracked.is_(True))
        .execution_options(populate_existing=True)
    )
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update(of=ChannelLive)
    row = (await session.execute(stmt)).first()
    return None if row is None else (row[0], row[1])


def touch_live(session: AsyncSession, channel_id: str) -> None:
    """Cached answers showing this channel, and the live feed (SSE), are outdated."""
    touch(session, f"ch:{channel_id}", "live")


async def find_stream(
    session: AsyncSession, channel_id: str, *, twitch_stream_id: str | None, started_at: datetime
) -> Stream | None:
    """The stream row of this Twitch stream id, else of this start."""
    if twitch_stream_id:
        by_id = select(Stream).where(
            Stream.channel_id == channel_id, Stream.twitch_stream_id == twitch_stream_id
        )
        found = (await session.scalars(by_id.order_by(Stream.id.desc()).limit(1))).first()
        if found is not None:
            return found
    by_start = select(Stream).where(
        Stream.channel_id == channel_id, Stream.started_at == started_at
    )
    return (await session.scalars(by_start)).first()


async def open_stream(session: AsyncSession, values: dict[str, Any]) -> Stream:
    """A stream row for `values` (channel_id, started_at, ...); the existing row of that
    channel and start when there is one (reopened)."""
    await session.execute(insert_for(session, Stream).values(**values).on_conflict_do_nothing())
    stmt = select(Stream).where(
        Stream.channel_id == values["channel_id"], Stream.started_at == values["started_at"]
    )
    stream = (await session.scalars(stmt.execution_options(populate_existing=True))).one()
    if stream.ended_at is not None:
        stream.ended_at = None
    return stream


async def close_streams(
    session: AsyncSession, channel_id: str, at: datetime, *, keep: int | None = None
) -> list[Stream]:
    """End the channel's open streams (but `keep`); the streams ended."""
    stmt = select(Stream).where(Stream.channel_id == channel_id, Stream.ended_at.is_(None))
    if keep is not None:
        stmt = stmt.where(Stream.id != keep)
    closed = list((await session.scalars(stmt.order_by(Stream.started_at))).all())
    for stream in closed:
        stream.ended_at = max(at, stream.started_at)
    return closed


async def open_stream_of(session: AsyncSession, channel_id: str) -> Stream | None:
    stmt = select(Stream).where(Stream.channel_id == channel_id, Stream.ended_at.is_(None))
    return (await session.scalars(stmt.order_by(Stream.started_at.desc()).limit(1))).first()


async def mark_sync_due(
    session: AsyncSession, channel_id: str, now: datetime, *, final_pass_at: datetime | None = None
) -> None:
    """The channel's recent clips are due at once (and a final pass at `final_pass_at`)."""
    touch(session, "sync")
    await session.execute(
        insert_for(session, ChannelSync).values(channel_id=channel_id).on_conflict_do_nothing()
    )
    values: dict[str, Any] = {"next_sync_at": now}
    if final_pass_at is not None:
        values["final_pass_at"] = final_pass_at
    await session.execute(
        update(ChannelSync).where(ChannelSync.channel_id == channel_id).values(**values)
    )


async def live_of(session: AsyncSession, channel_ids: Sequence[str]) -> dict[str, ChannelLive]:
    """Live rows of these channels (those that are live)."""
    if not channel_ids:
        return {}
    stmt = select(ChannelLive).where(
        ChannelLive.channel_id.in_(list(channel_ids)), ChannelLive.live.is_(True)
    )
    return {row.channel_id: row for row in (await session.scalars(stmt)).all()}


async def states_of(session: AsyncSession, channel_ids: Sequence[str]) -> dict[str, ChannelLive]:
    """Live rows (live or not) of these channels."""
    if not channel_ids:
        return {}
    stmt = select(ChannelLive).where(ChannelLive.channel_id.in_(list(channel_ids)))
    return {row.channel_id: row for row in (await session.scalars(stmt)).all()}


async def mark_checked(
    session: AsyncSession, channel_ids: Sequence[str], at: datetime, *, source: str
) -> None:
    """A source confirmed these channels' state (nothing else changed); a channel never
    checked before gets its (offline) row."""
    if not channel_ids:
        return
    await session.execute(
        insert_for(session, ChannelLive)
        .values(
            [
                {
                    "channel_id": c,
                    "live": False,
                    "source": source,
                    "changed_at": at,
                    "checked_at": at,
                }
                for c in channel_ids
            ]
        )
        .on_conflict_do_nothing()
    )
    await session.execute(
        update(ChannelLive)
        .where(ChannelLive.channel_id.in_(list(channel_ids)), ChannelLive.checked_at < at)
        .values(checked_at=at)
        .execution_options(synchronize_session=False)
    )


async def live_channel_ids(session: AsyncSession) -> list[str]:
    """Tracked channels that are live now."""
    stmt = (
        select(ChannelLive.channel_id)
        .join(Channel, Channel.id == ChannelLive.channel_id)
        .where(ChannelLive.live.is_(True), Channel.tracked.is_(True))
        .order_by(ChannelLive.channel_id)
    )
    return list((await session.scalars(stmt)).all())


async def count_live(session: AsyncSession) -> int:
    stmt = (
        select(func.count())
        .select_from(ChannelLive)
        .join(Channel, Channel.id == ChannelLive.channel_id)
        .where(ChannelLive.live.is_(True), Channel.tracked.is_(True))
    )
    return int((await session.execute(stmt)).scalar_one())


async def list_streams(
    session: AsyncSession,
    channel_id: str,
    *,
    limit: int,
    before: tuple[datetime, int] | None = None,
) -> list[Stream]:
    """The channel's streams, newest start first; keyset `before` (started_at, id)."""
    stmt = select(Stream).where(Stream.channel_id == channel_id)
    if before is not None:
        stmt = stmt.where(tuple_(Stream.started_at, Stream.id) < tuple_(*before))
    stmt = stmt.order_by(Stream.started_at.desc(), Stream.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def get_stream(session: AsyncSession, stream_id: int) -> Stream | None:
    return await session.get(Stream, stream_id)


async def count_stream_clips(
    session: AsyncSession, channel_id: str, started_at: datetime, ended_at: datetime
) -> int:
    """Stored clips (not deleted) the channel made between the stream's start and end."""
    stmt = (
        select(func.count())
        .select_from(Clip)
        .where(
            Clip.broadcaster_id == channel_id,
            Clip.created_at >= started_at,
            Clip.created_at <= ended_at,
            Clip.deleted_at.is_(None),
        )
    )
    return int((await session.execute(stmt)).scalar_one())
