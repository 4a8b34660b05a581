"""Hidden clips and the audit log (docs/moderation.md).

`visible(seq_column)` is the one condition every public read adds: the clip's seq is not
among the hidden ones. Hidden clips are few, so PostgreSQL checks it against a hashed
sub-plan and SQLite against an index it builds once per statement; the sort indexes (and
SQLite's covering index, which holds `seq`) serve the searches as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from clipwatch.db.engine import touch
from clipwatch.db.models import AuditEntry, Clip, Delivery, Game, HiddenClip
from clipwatch.db.repositories._chunks import in_chunks

HIDDEN_ERROR = "the clip was hidden by a moderator"  # a cancelled outbox row's last_error


def visible(seq_column: Any) -> ColumnElement[bool]:
    """The clip whose seq is `seq_column` is not hidden."""
    return seq_column.not_in(select(HiddenClip.clip_seq).scalar_subquery())  # type: ignore[no-any-return]


async def find(session: AsyncSession, clip_id: str) -> HiddenClip | None:
    return await session.scalar(select(HiddenClip).where(HiddenClip.clip_id == clip_id))


async def hidden_ids(session: AsyncSession, clip_ids: Iterable[str]) -> set[str]:
    """Which of these clips are hidden."""
    found: set[str] = set()
    for chunk in in_chunks(clip_ids):
        stmt = select(HiddenClip.clip_id).where(HiddenClip.clip_id.in_(chunk))
        found |= set(await session.scalars(stmt))
    return found


async def hidden_seqs(session: AsyncSession, seqs: Sequence[int]) -> set[int]:
    found: set[int] = set()
    for chunk in in_chunks(seqs):
        stmt = select(HiddenClip.clip_seq).where(HiddenClip.clip_seq.in_(chunk))
        found |= set(await session.scalars(stmt))
    return found


async def hide(session: AsyncSession, clip: Clip, *, by: str, reason: str, at: datetime) -> None:
    session.add(
        HiddenClip(clip_seq=clip.seq, clip_id=clip.id, hidden_at=at, hidden_by=by, reason=reason)
    )
    await _changed(session, clip, at)


async def unhide(session: AsyncSession, clip: Clip, at: datetime) -> bool:
    """Whether it was hidden."""
    result = await session.execute(delete(HiddenClip).where(HiddenClip.clip_seq == clip.seq))
    if not getattr(result, "rowcount", 0):
        return False
    await _changed(session, clip, at)
    return True


async def _changed(session: AsyncSession, clip: Clip, at: datetime) -> None:
    """Every cached answer that could hold the clip is outdated, and the clip stream sees it
    change (its `updated_at`: the stream's scan for changed clips)."""
    await session.execute(update(Clip).where(Clip.seq == clip.seq).values(updated_at=at))
    await session.flush()
    touch(session, "clips", f"ch:{clip.broadcaster_id}")


HiddenRow = tuple[HiddenClip, Clip, str | None]


async def hidden_page(
    session: AsyncSession, after: tuple[datetime, int] | None, limit: int
) -> list[HiddenRow]:
    """Hidden clips, most recently hidden first (keyset: hidden_at, seq)."""
    stmt = (
        select(HiddenClip, Clip, Game.name)
        .join(Clip, Clip.seq == HiddenClip.clip_seq)
        .outerjoin(Game, Game.id == Clip.game_id)
        .order_by(HiddenClip.hidden_at.desc(), HiddenClip.clip_seq.desc())
        .limit(limit)
    )
    if after is not None:
        at, seq = after
        stmt = stmt.where(
            or_(
                HiddenClip.hidden_at < at,
                and_(HiddenClip.hidden_at == at, HiddenClip.clip_seq < seq),
            )
        )
    return [(h, c, name) for h, c, name in (await session.execute(stmt)).all()]


async def cancel_pending(session: AsyncSession, keys: Sequence[str], refs: Sequence[int]) -> int:
    """Pending outbox rows of these keys (a clip's message, its trending post), or changing a
    message of these deliveries (milestone edits): cancelled, never sent. How many."""
    conds: list[ColumnElement[bool]] = [Delivery.clip_id.in_(list(keys))]
    if refs:
        conds.append(
            and_(Delivery.ref_delivery_id.in_(list(refs)), Delivery.clip_id.like("milestone:%"))
        )
    result = await session.execute(
        update(Delivery)
        .where(Delivery.status == "pending", or_(*conds))
        .values(status="cancelled", last_error=HIDDEN_ERROR)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def deliveries_of(session: AsyncSession, clip_id: str) -> list[int]:
    """The ids of the outbox rows that post this clip (every route)."""
    return list(await session.scalars(select(Delivery.id).where(Delivery.clip_id == clip_id)))


# --- the audit log ----------------------------------------------------------------------------


async def audit(
    session: AsyncSession,
    *,
    at: datetime,
    actor_id: int | None,
    actor: str,
    action: str,
    target: str,
    reason: str | None,
) -> AuditEntry:
    entry = AuditEntry(
        at=at, actor_id=actor_id, actor=actor, action=action, target=target, reason=reason
    )
    session.add(entry)
    await session.flush()
    return entry


async def audit_page(
    session: AsyncSession,
    *,
    before: int | None,
    limit: int,
    action: str | None = None,
    target: str | None = None,
) -> list[AuditEntry]:
    """Audit entries, newest first (keyset: id)."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before is not None:
        stmt = stmt.where(AuditEntry.id < before)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if target is not None:
        stmt = stmt.where(AuditEntry.target == target)
    return list(await session.scalars(stmt))
