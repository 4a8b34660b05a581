"""Quarantined clips: what Twitch sent that could not be stored, kept as received with why.

One row per clip (`key`: its id, or a hash of the payload when it has no usable id), however
often it comes back; a clip stored fine later leaves quarantine.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.engine import touch
from clipwatch.db.models import Channel, ClipQuarantine
from clipwatch.db.repositories._chunks import in_chunks
from clipwatch.db.repositories._dialect import insert_for

PAYLOAD_MAX = 64 * 1024  # characters of escaped JSON (ASCII: also bytes)
REASON_MAX = 500
FIELD_MAX = 2_000  # a longer string in the payload keeps its start and says how long it was


def encode_payload(payload: Any) -> str:
    """The payload as ASCII JSON (NUL and lone surrogates escaped: any column holds it),
    at most PAYLOAD_MAX characters. Long strings are shortened first, so the JSON usually
    stays whole; when even that is too long it is cut (and then no longer parses)."""
    text = _dumps(payload)
    if len(text) > PAYLOAD_MAX:
        text = _dumps(_shortened(payload))
    return text[:PAYLOAD_MAX]


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=True, default=repr, sort_keys=False)


def _shortened(value: Any) -> Any:
    if isinstance(value, str) and len(value) > FIELD_MAX:
        return f"{value[:FIELD_MAX]}…[{len(value):,} characters]"
    if isinstance(value, dict):
        return {str(k)[:FIELD_MAX]: _shortened(v) for k, v in list(value.items())[:200]}
    if isinstance(value, list | tuple):
        return [_shortened(v) for v in value[:200]]
    return value


def _one_line(reason: str) -> str:
    cleaned = "".join(c if c.isprintable() else " " for c in reason)
    return " ".join(cleaned.split())[:REASON_MAX]


async def quarantine_clip(
    session: AsyncSession,
    *,
    key: str,
    clip_id: str | None,
    broadcaster_id: str | None,
    reason: str,
    payload: Any,
    now: datetime,
) -> None:
    """Keep (or count again) one clip that could not be stored. The caller gives storable
    `key`, `clip_id` and `broadcaster_id` (bounded, printable); the payload is encoded here."""
    values = {
        "key": key,
        "clip_id": clip_id,
        "broadcaster_id": broadcaster_id,
        "reason": _one_line(reason),
        "payload": encode_payload(payload),
        "first_seen_at": now,
        "last_seen_at": now,
        "times_seen": 1,
    }
    stmt = insert_for(session, ClipQuarantine).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "clip_id": stmt.excluded.clip_id,
            "broadcaster_id": stmt.excluded.broadcaster_id,
            "reason": stmt.excluded.reason,
            "payload": stmt.excluded.payload,
            "last_seen_at": stmt.excluded.last_seen_at,
            "times_seen": ClipQuarantine.times_seen + 1,
        },
    )
    await session.execute(stmt)
    touch(session, "sync")


async def release_clips(session: AsyncSession, clip_ids: Sequence[str]) -> int:
    """Clips stored fine leave quarantine; how many did. Costs one indexed probe when the
    quarantine is empty (the usual case)."""
    if not clip_ids or not await session.scalar(select(exists().select_from(ClipQuarantine))):
        return 0
    released = 0
    for chunk in in_chunks(clip_ids):
        result = await session.execute(
            delete(ClipQuarantine).where(ClipQuarantine.key.in_(chunk)).returning(ClipQuarantine.id)
        )
        released += len(result.all())
    if released:
        touch(session, "sync")
    return released


async def count_quarantined(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(ClipQuarantine.id))) or 0)


async def list_quarantined(
    session: AsyncSession, *, limit: int = 100
) -> list[tuple[ClipQuarantine, str | None]]:
    """Quarantined clips with their channel's login (when we know it), the most recently
    seen first."""
    stmt = (
        select(ClipQuarantine, Channel.login)
        .outerjoin(Channel, Channel.id == ClipQuarantine.broadcaster_id)
        .order_by(ClipQuarantine.last_seen_at.desc(), ClipQuarantine.id.desc())
        .limit(limit)
    )
    return [(row, login) for row, login in (await session.execute(stmt)).all()]
