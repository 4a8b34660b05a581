"""Collections and their items (docs/collections.md): an owner's ordered lists of clips.

Every write of a collection first takes its version (`take_version`): one UPDATE that both
checks the version the caller saw and locks the row (PostgreSQL's row lock, SQLite's single
writer) for the rest of the transaction, so item positions are read and changed by one
writer at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import Clip, Collection, CollectionItem, Game, User
from clipwatch.db.repositories import moderation

# A collection with its owner's name and its number of items.
Listed = tuple[Collection, str, int]
# An item shown: the item, its clip, the clip's game's name.
ShownItem = tuple[CollectionItem, Clip, str | None]


def _item_count() -> Any:
    return (
        select(func.count())
        .where(CollectionItem.collection_id == Collection.id)
        .correlate(Collection)
        .scalar_subquery()
    )


async def add_collection(session: AsyncSession, collection: Collection) -> None:
    session.add(collection)
    await session.flush()


async def get_collection(session: AsyncSession, collection_id: int) -> Collection | None:
    return await session.get(Collection, collection_id)


async def owner_name(session: AsyncSession, user_id: int) -> str:
    name = await session.scalar(select(User.name).where(User.id == user_id))
    return name or ""


async def count_owned(session: AsyncSession, user_id: int) -> int:
    stmt = select(func.count()).select_from(Collection).where(Collection.user_id == user_id)
    return int(await session.scalar(stmt) or 0)


async def listed_page(
    session: AsyncSession, *, user_id: int | None, after_id: int | None, limit: int
) -> list[Listed]:
    """Up to `limit` collections, newest first (keyset by id): the owner's when `user_id` is
    given, else the public ones of everyone."""
    stmt = (
        select(Collection, User.name, _item_count())
        .join(User, User.id == Collection.user_id)
        .order_by(Collection.id.desc())
        .limit(limit)
    )
    if user_id is not None:
        stmt = stmt.where(Collection.user_id == user_id)
    else:
        stmt = stmt.where(Collection.visibility == "public")
    if after_id is not None:
        stmt = stmt.where(Collection.id < after_id)
    return [(c, name, int(n)) for c, name, n in (await session.execute(stmt)).all()]


async def take_version(
    session: AsyncSession,
    collection_id: int,
    seen: frozenset[int] | None,
    at: datetime,
    values: dict[str, Any] | None = None,
) -> Collection | None:
    """Raise the version (and apply `values`) when it is one of `seen` (any when None); the
    collection as it now stands, or None when it is gone or its version is not one seen."""
    stmt = (
        update(Collection)
        .where(Collection.id == collection_id)
        .values(version=Collection.version + 1, updated_at=at, **(values or {}))
        .returning(Collection)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    if seen is not None:
        stmt = stmt.where(Collection.version.in_(sorted(seen)))
    return (await session.scalars(stmt)).first()


async def delete_collection(session: AsyncSession, collection_id: int) -> None:
    await session.execute(
        delete(CollectionItem).where(CollectionItem.collection_id == collection_id)
    )
    await session.execute(delete(Collection).where(Collection.id == collection_id))


async def item_count(session: AsyncSession, collection_id: int) -> int:
    stmt = (
        select(func.count())
        .select_from(CollectionItem)
        .where(CollectionItem.collection_id == collection_id)
    )
    return int(await session.scalar(stmt) or 0)


async def item_position(session: AsyncSession, collection_id: int, clip_id: str) -> int | None:
    stmt = select(CollectionItem.position).where(
        CollectionItem.collection_id == collection_id, CollectionItem.clip_id == clip_id
    )
    return await session.scalar(stmt)


async def shift(
    session: AsyncSession, collection_id: int, *, start: int, end: int | None, by: int
) -> None:
    """Move the items at positions start..end (inclusive; to the last when None) by `by`."""
    stmt = (
        update(CollectionItem)
        .where(CollectionItem.collection_id == collection_id, CollectionItem.position >= start)
        .values(position=CollectionItem.position + by)
        .execution_options(synchronize_session=False)
    )
    if end is not None:
        stmt = stmt.where(CollectionItem.position <= end)
    await session.execute(stmt)


async def add_item(
    session: AsyncSession, collection_id: int, clip_id: str, position: int, at: datetime
) -> None:
    session.add(
        CollectionItem(collection_id=collection_id, clip_id=clip_id, position=position, added_at=at)
    )
    await session.flush()


async def set_position(
    session: AsyncSession, collection_id: int, clip_id: str, position: int
) -> None:
    await session.execute(
        update(CollectionItem)
        .where(CollectionItem.collection_id == collection_id, CollectionItem.clip_id == clip_id)
        .values(position=position)
        .execution_options(synchronize_session=False)
    )


async def remove_item(session: AsyncSession, collection_id: int, clip_id: str) -> None:
    await session.execute(
        delete(CollectionItem).where(
            CollectionItem.collection_id == collection_id, CollectionItem.clip_id == clip_id
        )
    )


async def shown_items(session: AsyncSession, collection_id: int) -> list[ShownItem]:
    """The items whose clip is in the archive and not hidden, in order."""
    stmt = (
        select(CollectionItem, Clip, Game.name)
        .join(Clip, Clip.id == CollectionItem.clip_id)
        .outerjoin(Game, Game.id == Clip.game_id)
        .where(CollectionItem.collection_id == collection_id, moderation.visible(Clip.seq))
        .order_by(CollectionItem.position)
    )
    return [(item, clip, name) for item, clip, name in (await session.execute(stmt)).all()]


async def postable_clips(session: AsyncSession, collection_id: int) -> Sequence[Clip]:
    """The clips a post of the collection shows: in the archive, not hidden, not deleted on
    Twitch, in order."""
    stmt = (
        select(Clip)
        .join(CollectionItem, CollectionItem.clip_id == Clip.id)
        .where(
            CollectionItem.collection_id == collection_id,
            moderation.visible(Clip.seq),
            Clip.deleted_at.is_(None),
        )
        .order_by(CollectionItem.position)
    )
    return (await session.scalars(stmt)).all()
