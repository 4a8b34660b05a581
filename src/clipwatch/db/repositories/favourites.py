"""Favourites: the clips a member keeps, newest kept first (keyset by kept-at, clip id)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import Clip, Favourite, Game
from clipwatch.db.repositories import moderation
from clipwatch.db.repositories._dialect import dialect_name

KeptClip = tuple[Favourite, Clip, str | None]  # the favourite, its clip, the game's name


async def keep(session: AsyncSession, user_id: int, clip_id: str, at: datetime) -> bool:
    """Keep a clip (idempotent: a second keep changes nothing); whether it was new."""
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    stmt = (
        insert(Favourite)
        .values(user_id=user_id, clip_id=clip_id, created_at=at)
        .on_conflict_do_nothing(index_elements=["user_id", "clip_id"])
    )
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))


async def is_kept(session: AsyncSession, user_id: int, clip_id: str) -> bool:
    stmt = select(Favourite.clip_id).where(
        Favourite.user_id == user_id, Favourite.clip_id == clip_id
    )
    return (await session.scalar(stmt)) is not None


async def drop(session: AsyncSession, user_id: int, clip_id: str) -> bool:
    """Let a clip go; whether it was kept."""
    result = await session.execute(
        delete(Favourite).where(Favourite.user_id == user_id, Favourite.clip_id == clip_id)
    )
    return bool(getattr(result, "rowcount", 0))


async def kept_page(
    session: AsyncSession, user_id: int, after: tuple[datetime, str] | None, limit: int
) -> list[KeptClip]:
    """Up to `limit` favourites of `user_id`, newest kept first, after the keyset `after`."""
    stmt = (
        select(Favourite, Clip, Game.name)
        .join(Clip, Clip.id == Favourite.clip_id)
        .outerjoin(Game, Game.id == Clip.game_id)
        .where(Favourite.user_id == user_id, moderation.visible(Clip.seq))
        .order_by(Favourite.created_at.desc(), Favourite.clip_id.desc())
        .limit(limit)
    )
    if after is not None:
        at, clip_id = after
        stmt = stmt.where(
            or_(
                Favourite.created_at < at,
                and_(Favourite.created_at == at, Favourite.clip_id < clip_id),
            )
        )
    return [(f, c, name) for f, c, name in (await session.execute(stmt)).all()]
