"""From the clip objects Twitch sends to stored rows; what cannot be stored is quarantined.

One clip's failure costs that clip: an unreadable clip (no usable id, no readable
`created_at`, …) is quarantined as received; a batch the database refuses is stored again
clip by clip, each in its own savepoint, so only the clip it refuses is quarantined.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.clips.importer import KnownReferences, store_batch
from clipwatch.db.repositories import quarantine
from clipwatch.twitch.helix import CLIP_ID_MAX, REF_ID_MAX, HelixClip, explain_invalid, usable_id

log = structlog.get_logger(__name__)
REFUSED = "database refused the clip"


@dataclass
class ClipsRead:
    """Rows ready to store (by clip id, with what Twitch sent for each), and the clips that
    could not be read with why."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: dict[str, Any] = field(default_factory=dict)
    unreadable: list[tuple[Any, str]] = field(default_factory=list)


def read_clips(payloads: Iterable[Any]) -> ClipsRead:
    read = ClipsRead()
    for payload in payloads:
        try:
            clip = HelixClip.model_validate(payload)
        except ValidationError as exc:
            read.unreadable.append((payload, explain_invalid(exc)))
            continue
        read.rows[clip.id] = dict(vars(clip))
        read.received[clip.id] = payload
    return read


@dataclass
class Stored:
    inserted: int = 0
    updated: int = 0
    quarantined: int = 0
    released: int = 0  # clips that left quarantine, stored fine at last


async def store_clips(
    session: AsyncSession,
    read: ClipsRead,
    *,
    channel_id: str | None = None,
    known: KnownReferences | None = None,
    notify: bool = True,
) -> Stored:
    """Store what was read and quarantine the rest, in the caller's transaction."""
    now = datetime.now(UTC)
    stored = Stored()
    await _begin_for_writing(session)
    for payload, reason in read.unreadable:
        await _quarantine(session, payload, reason, channel_id, now)
        stored.quarantined += 1
    rows = list(read.rows.values())
    if not rows:
        return stored
    try:
        async with session.begin_nested():
            result = await store_batch(session, rows, known=known, notify=notify)
        stored.inserted, stored.updated = result.inserted, result.updated
        kept = list(read.rows)
    except Exception as exc:
        if not refused_data(exc):
            raise  # a lock, a lost connection: the database's trouble, not the clips'
        log.warning("clip_batch_refused", clips=len(rows), error=_short(exc))
        kept = []
        for row in rows:
            try:
                async with session.begin_nested():
                    result = await store_batch(session, [row], known=known, notify=notify)
            except Exception as one:
                if not refused_data(one):
                    raise
                reason = f"{REFUSED}: {_short(one)}"
                await _quarantine(session, read.received[row["id"]], reason, channel_id, now)
                stored.quarantined += 1
                continue
            stored.inserted += result.inserted
            stored.updated += result.updated
            kept.append(row["id"])
    stored.released = await quarantine.release_clips(session, kept)
    return stored


async def _begin_for_writing(session: AsyncSession) -> None:
    """On SQLite, a savepoint that opens the transaction opens it deferred: its first write
    beside another writer then fails at once ("database is locked") instead of waiting,
    and its release commits. So the transaction is begun for writing first."""
    if session.get_bind().dialect.name != "sqlite":
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    if not raw.driver_connection.in_transaction:  # type: ignore[union-attr]
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


async def _quarantine(
    session: AsyncSession, payload: Any, reason: str, channel_id: str | None, now: datetime
) -> None:
    fields = payload if isinstance(payload, dict) else {}
    clip_id = usable_id(fields.get("id"), CLIP_ID_MAX)
    broadcaster_id = channel_id or usable_id(fields.get("broadcaster_id"), REF_ID_MAX)
    log.warning(
        "twitch_clip_quarantined", clip_id=clip_id, broadcaster_id=broadcaster_id, reason=reason
    )
    await quarantine.quarantine_clip(
        session,
        key=clip_id or payload_key(payload),
        clip_id=clip_id,
        broadcaster_id=broadcaster_id,
        reason=reason,
        payload=payload,
        now=now,
    )


def refused_data(exc: BaseException) -> bool:
    """The database refused what we sent (SQLSTATE class 22 data exception or 23 integrity
    violation; a value no driver can encode), as opposed to failing itself (locks, lost
    connections, timeouts), which no clip should be blamed for."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    code = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    if isinstance(code, str):
        return code[:2] in ("22", "23")
    return isinstance(exc, ValueError | TypeError | OverflowError) and not isinstance(
        exc, SQLAlchemyError
    )


def payload_key(payload: Any) -> str:
    """The key of a clip without a usable id: the same payload is the same row."""
    text = json.dumps(payload, ensure_ascii=True, sort_keys=True, default=repr)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300]
