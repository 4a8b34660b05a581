"""A channel's numbers over a period: totals, clips per day, top clips, creators and games."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, cast, desc, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from clipwatch.db.models import Clip, Game
from clipwatch.db.repositories import moderation
from clipwatch.db.repositories._dialect import dialect_name

TOP = 10
DAYS_SHOWN = 90  # clips per day: the most recent days of the period at most


def _day(session: AsyncSession) -> ColumnElement[Any]:
    if dialect_name(session) == "postgresql":
        return cast(func.timezone("UTC", Clip.created_at), Date)
    return func.date(Clip.created_at)  # SQLite keeps UTC as sortable ISO text


async def channel_stats(
    session: AsyncSession, channel_id: str, since: datetime | None, *, days: int = DAYS_SHOWN
) -> dict[str, Any]:
    where = [
        Clip.broadcaster_id == channel_id,
        Clip.deleted_at.is_(None),
        moderation.visible(Clip.seq),
    ]
    if since is not None:
        where.append(Clip.created_at >= since)
    views = func.coalesce(func.sum(Clip.view_count), 0)

    clips, total_views = (
        await session.execute(select(func.count(), views).select_from(Clip).where(*where))
    ).one()
    day = _day(session).label("day")
    per_day = (
        await session.execute(
            select(day, func.count(), views)
            .where(*where)
            .group_by(day)
            .order_by(desc(day))
            .limit(days)
        )
    ).all()
    top_clips = (
        await session.scalars(
            select(Clip.id).where(*where).order_by(desc(Clip.view_count), desc(Clip.seq)).limit(TOP)
        )
    ).all()
    creators = (
        await session.execute(
            select(Clip.creator_id, func.max(Clip.creator_name), func.count(), views)
            .where(*where)
            .group_by(Clip.creator_id)
            .order_by(desc(views), Clip.creator_id)
            .limit(TOP)
        )
    ).all()
    games = (
        await session.execute(
            select(Clip.game_id, func.count(), views)
            .where(*where, Clip.game_id.is_not(None))
            .group_by(Clip.game_id)
            .order_by(desc(views), Clip.game_id)
            .limit(TOP)
        )
    ).all()
    names = dict(
        (
            await session.execute(
                select(Game.id, Game.name).where(Game.id.in_([g[0] for g in games]))
            )
        ).all()
    )
    return {
        "clips": int(clips),
        "views": int(total_views),
        "per_day": [{"day": _iso_day(d), "clips": int(n), "views": int(v)} for d, n, v in per_day],
        "top_clip_ids": list(top_clips),
        "top_creators": [
            {"creator_id": cid, "creator_name": name, "clips": int(n), "views": int(v)}
            for cid, name, n, v in creators
        ],
        "top_games": [
            {"game_id": gid, "name": names.get(gid or ""), "clips": int(n), "views": int(v)}
            for gid, n, v in games
        ],
    }


def _iso_day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)
