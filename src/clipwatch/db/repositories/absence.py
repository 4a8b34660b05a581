"""Deletion proofs: clips a Twitch answer left out (suspects), and clips listed again.

A suspect is not a deletion: twitch/deletions.py decides, this module only reads and writes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.engine import touch
from clipwatch.db.models import Clip, ClipAbsence
from clipwatch.db.repositories._chunks import in_chunks
from clipwatch.db.repositories._dialect import insert_for


async def stored_clip_ids(
    session: AsyncSession,
    channel_id: str,
    *,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[tuple[str, bool]]:
    """The channel's stored clips (id, marked deleted), newest first: deleted ones too, so
    that a clip Twitch lists again comes back."""
    stmt = select(Clip.id, Clip.deleted_at.is_not(None)).where(Clip.broadcaster_id == channel_id)
    if created_after is not None:
        stmt = stmt.where(Clip.created_at >= created_after)
    if created_before is not None:
        stmt = stmt.where(Clip.created_at < created_before)
    rows = await session.execute(stmt.order_by(Clip.created_at.desc(), Clip.id))
    return [(clip_id, bool(deleted)) for clip_id, deleted in rows.all()]


async def add_suspects(
    session: AsyncSession, channel_id: str, clip_ids: Sequence[str], now: datetime
) -> int:
    """Note clips missing from an answer; a clip already suspected keeps its last check (a
    suspect missing from every pass's batch must still come due). How many are new."""
    added = 0
    for chunk in in_chunks(clip_ids):
        stmt = (
            insert_for(session, ClipAbsence)
            .values(
                [
                    {
                        "clip_id": clip_id,
                        "broadcaster_id": channel_id,
                        "first_missing_at": now,
                        "last_checked_at": now,
                        "confirmations": 0,
                    }
                    for clip_id in chunk
                ]
            )
            .on_conflict_do_nothing()
            .returning(ClipAbsence.clip_id)
        )
        added += len((await session.scalars(stmt)).all())
    return added


async def clear_suspects(session: AsyncSession, clip_ids: Sequence[str]) -> int:
    """Forget suspicions about these clips (listed again, or deleted for good)."""
    # Every stored sync batch lands here and suspects are rare: one probe of the (mostly
    # empty) table saves a statement with hundreds of ids per batch.
    if not clip_ids or await session.scalar(select(ClipAbsence.clip_id).limit(1)) is None:
        return 0
    cleared = 0
    for chunk in in_chunks(clip_ids):
        result = await session.execute(
            delete(ClipAbsence).where(ClipAbsence.clip_id.in_(chunk)).returning(ClipAbsence.clip_id)
        )
        cleared += len(result.all())
    return cleared


async def due_suspects(
    session: AsyncSession, channel_id: str, *, checked_before: datetime, limit: int
) -> list[ClipAbsence]:
    """The channel's suspects last checked at or before `checked_before`, longest waiting
    first (so none starves behind a crowd)."""
    stmt = (
        select(ClipAbsence)
        .where(
            ClipAbsence.broadcaster_id == channel_id,
            ClipAbsence.last_checked_at <= checked_before,
        )
        .order_by(ClipAbsence.last_checked_at, ClipAbsence.clip_id)
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def add_confirmation(
    session: AsyncSession,
    clip_id: str,
    *,
    seen: int,
    checked_before: datetime,
    now: datetime,
) -> int | None:
    """Count one more empty lookup of the clip alone; its new count, or None when the
    suspect changed since it was read (another worker checked it, or it was cleared).

    The guard makes two confirmations at least the wait apart even when two workers race."""
    result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        update(ClipAbsence)
        .where(
            ClipAbsence.clip_id == clip_id,
            ClipAbsence.confirmations == seen,
            ClipAbsence.last_checked_at <= checked_before,
        )
        .values(confirmations=ClipAbsence.confirmations + 1, last_checked_at=now)
        .returning(ClipAbsence.confirmations)
    )
    row = result.first()
    return None if row is None else int(row[0])


async def restore_clips(session: AsyncSession, clip_ids: Sequence[str], now: datetime) -> list[str]:
    """Clear `deleted_at` of these clips where set (Twitch listed them); the restored ids."""
    restored: list[str] = []
    channels: set[str] = set()
    for chunk in in_chunks(clip_ids):
        result = await session.execute(
            update(Clip)
            .where(Clip.id.in_(chunk), Clip.deleted_at.is_not(None))
            .values(deleted_at=None, updated_at=now)
            .returning(Clip.id, Clip.broadcaster_id)
        )
        for clip_id, channel_id in result.all():
            restored.append(clip_id)
            channels.add(channel_id)
    if restored:
        touch(session, "clips", *{f"ch:{c}" for c in channels})
    return restored
