"""Tags and the tags on clips (docs/tags.md).

A tag's `scope` is 0 for the community vocabulary and the owner's id for a private tag;
whoever asks sees the community's tags and their own (`seen_by`), never another member's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, literal_column, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import Clip, ClipTag, Tag
from clipwatch.db.repositories._chunks import IN_CHUNK, in_chunks
from clipwatch.db.repositories._dialect import dialect_name
from clipwatch.db.repositories.moderation import visible

COMMUNITY = 0


def scope_of(owner_id: int | None) -> int:
    return COMMUNITY if owner_id is None else owner_id


def seen_by(viewer_id: int | None) -> ColumnElement[bool]:
    """The tags `viewer_id` may see: the community's, and their own (None: anonymous)."""
    if viewer_id is None:
        return Tag.scope == COMMUNITY
    return Tag.scope.in_([COMMUNITY, viewer_id])


async def get(session: AsyncSession, tag_id: int, viewer_id: int | None) -> Tag | None:
    return await session.scalar(select(Tag).where(Tag.id == tag_id, seen_by(viewer_id)))


async def by_name(session: AsyncSession, scope: int, name: str) -> Tag | None:
    return await session.scalar(select(Tag).where(Tag.scope == scope, Tag.name == name))


async def count_in_scope(session: AsyncSession, scope: int) -> int:
    return int(await session.scalar(select(func.count()).where(Tag.scope == scope)) or 0)


async def create(
    session: AsyncSession,
    *,
    owner_id: int | None,
    name: str,
    description: str,
    at: datetime,
    by: str,
) -> Tag:
    tag = Tag(
        scope=scope_of(owner_id),
        owner_id=owner_id,
        name=name,
        description=description,
        created_at=at,
        created_by=by,
    )
    session.add(tag)
    await session.flush()
    return tag


async def listed(session: AsyncSession, viewer_id: int | None) -> list[tuple[Tag, int]]:
    """The tags `viewer_id` sees, the community's first, by name, each with its clip count."""
    counts = (
        select(ClipTag.tag_id, func.count().label("n"))
        .where(visible(ClipTag.clip_seq))  # a hidden clip is nobody's to see (moderation)
        .group_by(ClipTag.tag_id)
        .subquery("n")
    )
    stmt = (
        select(Tag, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.tag_id == Tag.id)
        .where(seen_by(viewer_id))
        .order_by(Tag.scope != COMMUNITY, Tag.name)
    )
    return [(tag, int(n)) for tag, n in (await session.execute(stmt)).all()]


async def clip_count(session: AsyncSession, tag_id: int) -> int:
    stmt = (
        select(func.count())
        .select_from(ClipTag)
        .where(ClipTag.tag_id == tag_id, visible(ClipTag.clip_seq))
    )
    return int(await session.scalar(stmt) or 0)


async def update_tag(
    session: AsyncSession, tag: Tag, *, name: str | None, description: str | None
) -> None:
    values: dict[str, str] = {}
    if name is not None:
        values["name"] = name
    if description is not None:
        values["description"] = description
    if values:
        await session.execute(update(Tag).where(Tag.id == tag.id).values(**values))
        await session.refresh(tag)


async def delete_tag(session: AsyncSession, tag: Tag) -> None:
    # The clip_tag rows go first: SQLite enforces the cascade only with foreign keys on.
    await session.execute(delete(ClipTag).where(ClipTag.tag_id == tag.id))
    await session.execute(delete(Tag).where(Tag.id == tag.id))


async def channels_of_tag(session: AsyncSession, tag_id: int) -> set[str]:
    """The channels whose clips carry the tag (their cached answers show it)."""
    stmt = (
        select(Clip.broadcaster_id)
        .join(ClipTag, ClipTag.clip_seq == Clip.seq)
        .where(ClipTag.tag_id == tag_id)
        .distinct()
    )
    return set(await session.scalars(stmt))


# --- tags on clips --------------------------------------------------------------------------


async def attach(
    session: AsyncSession,
    tag: Tag,
    clips: Sequence[Clip],
    *,
    at: datetime,
    by_id: int | None,
    by: str,
) -> int:
    """Put the tag on these clips (idempotent); how many did not have it."""
    if not clips:
        return 0
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    added = 0
    for start in range(0, len(clips), IN_CHUNK):
        chunk = clips[start : start + IN_CHUNK]
        stmt = (
            insert(ClipTag)
            .values(
                [
                    {
                        "tag_id": tag.id,
                        "clip_seq": c.seq,
                        "clip_id": c.id,
                        "added_at": at,
                        "added_by_id": by_id,
                        "added_by": by,
                    }
                    for c in chunk
                ]
            )
            .on_conflict_do_nothing(index_elements=["tag_id", "clip_seq"])
        )
        result = await session.execute(stmt)
        added += int(getattr(result, "rowcount", 0) or 0)
    return added


async def on_clip(session: AsyncSession, tag_id: int, clip_seq: int) -> ClipTag | None:
    stmt = select(ClipTag).where(ClipTag.tag_id == tag_id, ClipTag.clip_seq == clip_seq)
    return await session.scalar(stmt)


async def detach(session: AsyncSession, tag_id: int, clip_seq: int) -> bool:
    result = await session.execute(
        delete(ClipTag).where(ClipTag.tag_id == tag_id, ClipTag.clip_seq == clip_seq)
    )
    return bool(getattr(result, "rowcount", 0))


async def count_on_clip(session: AsyncSession, clip_seq: int, scope: int) -> int:
    stmt = (
        select(func.count())
        .select_from(ClipTag)
        .join(Tag, Tag.id == ClipTag.tag_id)
        .where(ClipTag.clip_seq == clip_seq, Tag.scope == scope)
    )
    return int(await session.scalar(stmt) or 0)


async def counts_on_clips(session: AsyncSession, seqs: Sequence[int], scope: int) -> dict[int, int]:
    """How many tags of `scope` each of these clips carries."""
    counts: dict[int, int] = {}
    for chunk in in_chunks(seqs):
        stmt = (
            select(ClipTag.clip_seq, func.count())
            .join(Tag, Tag.id == ClipTag.tag_id)
            .where(ClipTag.clip_seq.in_(chunk), Tag.scope == scope)
            .group_by(ClipTag.clip_seq)
        )
        counts.update({seq: int(n) for seq, n in (await session.execute(stmt)).all()})
    return counts


async def carrying(session: AsyncSession, tag_id: int, seqs: Sequence[int]) -> set[int]:
    """Which of these clips carry the tag."""
    found: set[int] = set()
    for chunk in in_chunks(seqs):
        stmt = select(ClipTag.clip_seq).where(ClipTag.tag_id == tag_id, ClipTag.clip_seq.in_(chunk))
        found |= set(await session.scalars(stmt))
    return found


async def tags_of(
    session: AsyncSession, clip_seq: int, viewer_id: int | None
) -> list[tuple[Tag, ClipTag]]:
    """The tags on a clip that `viewer_id` sees, the community's first, by name."""
    stmt = (
        select(Tag, ClipTag)
        .join(ClipTag, ClipTag.tag_id == Tag.id)
        .where(ClipTag.clip_seq == clip_seq, seen_by(viewer_id))
        .order_by(Tag.scope != COMMUNITY, Tag.name)
    )
    return [(tag, link) for tag, link in (await session.execute(stmt)).all()]


async def community_names(session: AsyncSession, seqs: Iterable[int]) -> dict[int, list[str]]:
    """The community tags' names on each of these clips (by seq), sorted."""
    names: dict[int, list[str]] = {}
    for chunk in in_chunks(seqs):
        stmt = (
            select(ClipTag.clip_seq, Tag.name)
            .join(Tag, Tag.id == ClipTag.tag_id)
            .where(ClipTag.clip_seq.in_(chunk), Tag.scope == COMMUNITY)
            .order_by(ClipTag.clip_seq, Tag.name)
        )
        for seq, name in (await session.execute(stmt)).all():
            names.setdefault(seq, []).append(name)
    return names


async def community_vocabulary(session: AsyncSession) -> list[tuple[int, str]]:
    """Every community tag's id and name (what `q` words are matched against)."""
    stmt = select(Tag.id, Tag.name).where(Tag.scope == COMMUNITY)
    return [(tag_id, name) for tag_id, name in (await session.execute(stmt)).all()]


async def ids_named(
    session: AsyncSession, names: Sequence[str], viewer_id: int | None
) -> dict[str, tuple[int, ...]]:
    """For each name, the ids of the tags `viewer_id` sees with it (the community's and their
    own may share a name)."""
    stmt = select(Tag.name, Tag.id).where(Tag.name.in_(list(names)), seen_by(viewer_id))
    found: dict[str, list[int]] = {}
    for name, tag_id in (await session.execute(stmt)).all():
        found.setdefault(name, []).append(tag_id)
    return {name: tuple(sorted(ids)) for name, ids in found.items()}


def tagged_with(seq_column: object, tag_ids: Sequence[int]) -> ColumnElement[bool]:
    """The clip whose seq is `seq_column` carries one of these tags."""
    inner = select(ClipTag.clip_seq).where(ClipTag.tag_id.in_(list(tag_ids)))
    return seq_column.in_(inner)  # type: ignore[attr-defined, no-any-return]


async def any_community_tag_on_clips(session: AsyncSession) -> bool:
    stmt = (
        select(ClipTag.clip_seq).join(Tag, Tag.id == ClipTag.tag_id).where(Tag.scope == COMMUNITY)
    )
    return (await session.scalar(stmt.limit(1))) is not None


def names_column(dialect: str, seq_column: object) -> Any:
    """The community tags' names on the clip, space-separated, in no order (NULL: none)."""
    names = (
        func.string_agg(Tag.name, literal_column("' '"))
        if dialect == "postgresql"
        else func.group_concat(Tag.name, " ")
    )
    return (
        select(names)
        .select_from(ClipTag)
        .join(Tag, Tag.id == ClipTag.tag_id)
        .where(ClipTag.clip_seq == seq_column, Tag.scope == COMMUNITY)
        .scalar_subquery()
    )


def names_cell(seq_column: object) -> Any:
    """PostgreSQL: the community tags' names on the clip, sorted, space-separated (an export's
    `tags` cell; an empty one for none)."""
    names = (
        select(
            func.coalesce(
                func.string_agg(Tag.name, aggregate_order_by(literal_column("' '"), Tag.name)),
                "",
            )
        )
        .select_from(ClipTag)
        .join(Tag, Tag.id == ClipTag.tag_id)
        .where(ClipTag.clip_seq == seq_column, Tag.scope == COMMUNITY)
        .scalar_subquery()
    )
    return names
