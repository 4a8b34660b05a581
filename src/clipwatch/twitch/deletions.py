"""Deletions need proof: a clip is marked deleted only after lookups of it alone answered
empty `CONFIRMATIONS` times, at least the wait apart; a clip Twitch lists again comes back.

- A stored clip missing from a batch lookup (100 ids a call) becomes a *suspect*
  (`clip_absence`): a partial answer (a proxy, a glitch, a server honouring some ids) is no
  proof, so nothing is deleted from it.
- `confirm_deletions`, after the channel's refresh in each pass, looks up each suspect whose
  last check is at least the wait old, alone. `200 {"data": []}` counts a confirmation; the
  clip listed clears the suspicion; anything else (an error, a timeout, 5xx, 429 given up on,
  a malformed answer, other clips) changes nothing. At most `MAX_LOOKUPS` a channel a pass:
  a mass disappearance cannot spend the whole budget; the rest wait for the next pass.
- Any clip a Twitch answer lists (batch refresh, Get Clips pages, a single lookup) loses its
  `deleted_at` and any suspicion (`note_listed`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import absence, sync_state
from clipwatch.discord import lifecycle
from clipwatch.twitch.client import HelixClient, TwitchAuthError, TwitchError

if TYPE_CHECKING:
    from clipwatch.twitch.sync import SyncReport

log = structlog.get_logger(__name__)

CONFIRMATIONS = 2  # empty single lookups before a clip is marked deleted
CONFIRM_WAIT = timedelta(minutes=5)  # the default of CLIPWATCH_DELETION_CONFIRM_MINUTES
MAX_LOOKUPS = 100  # single lookups per channel per pass


class Lookup(enum.Enum):
    LISTED = "listed"  # the answer lists the clip: it exists
    ABSENT = "absent"  # 200 with an empty list: what Twitch says of a deleted clip
    UNKNOWN = "unknown"  # anything else proves nothing


class Step(enum.Enum):
    CLEAR = "clear"  # forget the suspicion (and restore the clip if it was marked)
    CONFIRM = "confirm"  # count one more confirmation, check again after the wait
    DELETE = "delete"  # the last confirmation: mark the clip deleted
    KEEP = "keep"  # change nothing


@dataclass(frozen=True)
class BatchAnswer:
    listed: list[dict[str, Any]]  # the clips asked for that the answer lists
    missing: list[str]  # the ids asked for that it leaves out


def _entries(body: Any) -> list[Any] | None:
    """The answer's `data` list, or None when the answer is not a Get Clips answer."""
    if not isinstance(body, dict) or "error" in body:
        return None
    data = body.get("data")
    return data if isinstance(data, list) else None


def read_batch_lookup(asked: Sequence[str], body: Any) -> BatchAnswer | None:
    """What a lookup of `asked` by id says; None when the answer is unreadable (then it
    neither updates nor suspects anything). Entries that are not clips asked for are ignored."""
    data = _entries(body)
    if data is None:
        return None
    wanted = set(asked)
    listed: dict[str, dict[str, Any]] = {}
    for entry in data:
        if isinstance(entry, dict) and entry.get("id") in wanted:
            listed.setdefault(entry["id"], entry)
    missing = [i for i in dict.fromkeys(asked) if i not in listed]
    return BatchAnswer(list(listed.values()), missing)


def read_single_lookup(clip_id: str, body: Any) -> Lookup:
    """What a lookup of `clip_id` alone says of it."""
    data = _entries(body)
    if data is None:
        return Lookup.UNKNOWN
    if any(isinstance(e, dict) and e.get("id") == clip_id for e in data):
        return Lookup.LISTED
    return Lookup.ABSENT if not data else Lookup.UNKNOWN  # other clips: not an answer to us


def next_step(lookup: Lookup, confirmations: int, required: int = CONFIRMATIONS) -> Step:
    """What to do with a suspect that has `confirmations` after this lookup's answer."""
    if lookup is Lookup.LISTED:
        return Step.CLEAR
    if lookup is Lookup.ABSENT:
        return Step.DELETE if confirmations + 1 >= required else Step.CONFIRM
    return Step.KEEP


async def note_listed(
    session: AsyncSession, clip_ids: Sequence[str], report: SyncReport, now: datetime
) -> None:
    """Twitch listed these clips: none is deleted or suspected any more."""
    if not clip_ids:
        return
    restored = await absence.restore_clips(session, clip_ids, now)
    await absence.clear_suspects(session, clip_ids)
    if restored:
        report.restored += len(restored)
        log.info("twitch_clips_restored", count=len(restored), clip_ids=restored[:20])


async def note_missing(
    session: AsyncSession, channel_id: str, clip_ids: Sequence[str], now: datetime
) -> None:
    """Live clips a batch answer left out become suspects, never deletions."""
    added = await absence.add_suspects(session, channel_id, clip_ids, now)
    if added:
        log.info("twitch_clips_suspected", channel_id=channel_id, count=added)


async def confirm_deletions(
    client: HelixClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    channel_id: str,
    report: SyncReport,
    *,
    wait: timedelta = CONFIRM_WAIT,
    now: datetime | None = None,
    limit: int = MAX_LOOKUPS,
) -> None:
    """Look the channel's due suspects up one by one and act on each answer.

    `now` (tests) stands for the clock throughout; otherwise each lookup is stamped when made.
    A failure that is not about one clip (Twitch down, budget exhausted) ends the step:
    the remaining suspects wait for the next pass, unchanged."""
    start = now or datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        due = [
            (s.clip_id, s.confirmations)
            for s in await absence.due_suspects(
                session, channel_id, checked_before=start - wait, limit=limit
            )
        ]
    counts = dict.fromkeys(Step, 0)
    for clip_id, confirmations in due:
        try:
            body = await client.get("/clips", [("id", clip_id)])
        except TwitchAuthError:
            raise
        except TwitchError as exc:
            log.warning("twitch_deletion_check_failed", clip_id=clip_id, error=str(exc))
            if 400 <= exc.status < 500:
                continue  # about this id only: the others may still be checked
            break
        step = next_step(read_single_lookup(clip_id, body), confirmations)
        counts[step] += 1
        checked_at = now or datetime.now(UTC)
        async with session_scope(sessionmaker) as session:
            if step is Step.CLEAR:
                await note_listed(session, [clip_id], report, checked_at)
            elif step in (Step.CONFIRM, Step.DELETE):
                count = await absence.add_confirmation(
                    session,
                    clip_id,
                    seen=confirmations,
                    checked_before=checked_at - wait,
                    now=checked_at,
                )
                if count is not None and count >= CONFIRMATIONS:
                    marked = await sync_state.mark_deleted(session, [clip_id], checked_at)
                    report.deleted += marked
                    if marked:  # its posted messages change (the routes' policy) with the mark
                        await lifecycle.queue_deleted(session, [clip_id], checked_at)
                    await absence.clear_suspects(session, [clip_id])
                    log.info("twitch_clip_deleted", clip_id=clip_id, confirmations=count)
    if due:
        log.info(
            "twitch_deletions_checked",
            channel_id=channel_id,
            due=len(due),
            **{step.value: n for step, n in counts.items()},
        )
