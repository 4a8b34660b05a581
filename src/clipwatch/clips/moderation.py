"""Moderation (issue 17; docs/moderation.md): a moderator hides a clip, with a reason, and
unhides it; each change is written to the audit log.

A hidden clip leaves every public answer (search, clip, stats, slash commands, the stream,
digests, exports, favourites) and stays in the archive; a re-sync never unhides it (it lives
in `hidden_clip`, which the sync never writes). In the same transaction as the hiding:
- the clip's pending outbox rows (its message on each route, its trending post, milestone
  edits) are cancelled and never sent;
- each route that posted it and whose policy for removed clips is `edit` or `delete` gets that
  change queued (discord/lifecycle.py), as for a clip deleted on Twitch, but the message then
  shows no word of the clip (its title may be what had to go).
Hiding a hidden clip and unhiding a visible one change nothing and write no audit entry.
Unhiding brings the clip back everywhere; what was cancelled or removed in Discord stays so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.service import Principal
from clipwatch.db.models import AuditEntry, Clip, HiddenClip, User
from clipwatch.db.repositories import clip_search
from clipwatch.db.repositories import moderation as repo
from clipwatch.discord.trending import trending_clip_id
from clipwatch.errors import InvalidInput, NotFound

REASON_MAX = 500
HIDE = "clip.hide"
UNHIDE = "clip.unhide"
ROLE = "user.role"
ACTIONS = (HIDE, UNHIDE, ROLE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Hidden:
    row: HiddenClip
    clip: Clip
    changed: bool  # False: it was hidden already
    cancelled: int = 0  # outbox rows cancelled
    changes: int = 0  # message edits or deletes queued


def clean_reason(reason: str) -> str:
    """A reason is one line of 1-500 characters (what the audit log and the page show)."""
    text = " ".join(reason.split())
    if not text:
        raise InvalidInput("a reason is required", field="reason")
    if len(text) > REASON_MAX:
        raise InvalidInput(f"must be at most {REASON_MAX} characters", field="reason")
    if _CONTROL.search(text):
        raise InvalidInput("must not contain control characters", field="reason")
    return text


async def _clip(session: AsyncSession, clip_id: str) -> Clip:
    clip = await clip_search.get_clip(session, clip_id, include_hidden=True)
    if clip is None:
        raise NotFound(f"no clip with id {clip_id}")
    return clip


async def hide(session: AsyncSession, principal: Principal, clip_id: str, reason: str) -> Hidden:
    reason = clean_reason(reason)
    clip = await _clip(session, clip_id)
    existing = await repo.find(session, clip.id)
    if existing is not None:
        return Hidden(existing, clip, changed=False)
    now = datetime.now(UTC)
    await repo.hide(session, clip, by=principal.name, reason=reason, at=now)
    await record(session, principal, HIDE, clip.id, reason, at=now)
    refs = await repo.deliveries_of(session, clip.id)
    cancelled = await repo.cancel_pending(session, [clip.id, trending_clip_id(clip.id)], refs)
    # Here, not at the top: the Discord side is ~0.2 s of imports that `clipwatch audit list`,
    # `users role` and unhiding never need.
    from clipwatch.discord import lifecycle

    changes = await lifecycle.queue_hidden(session, [clip.id], now)
    row = await repo.find(session, clip.id)
    assert row is not None
    return Hidden(row, clip, changed=True, cancelled=cancelled, changes=changes)


async def unhide(session: AsyncSession, principal: Principal, clip_id: str) -> bool:
    """Whether it was hidden."""
    clip = await _clip(session, clip_id)
    now = datetime.now(UTC)
    if not await repo.unhide(session, clip, now):
        return False
    await record(session, principal, UNHIDE, clip.id, None, at=now)
    return True


async def record_role(session: AsyncSession, principal: Principal, user: User) -> None:
    """The audit entry of a role change (the role is its reason: what it became)."""
    await record(session, principal, ROLE, f"user:{user.id}", f"{user.name} is now a {user.role}")


async def record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    target: str,
    reason: str | None,
    *,
    at: datetime | None = None,
) -> None:
    """One audit log entry: `principal` did `action` to `target` (now, or `at`)."""
    await repo.audit(
        session,
        at=at or datetime.now(UTC),
        actor_id=principal.user_id or None,
        actor=principal.name,
        action=action,
        target=target,
        reason=reason,
    )


async def audit_log(
    session: AsyncSession,
    *,
    before: int | None,
    limit: int,
    action: str | None = None,
    target: str | None = None,
) -> tuple[list[AuditEntry], int | None]:
    """A page of the audit log, newest first, and the `before` of the next page."""
    rows = await repo.audit_page(
        session, before=before, limit=limit + 1, action=action, target=target
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)
