"""Messages that stay true: a posted clip deleted on Twitch, or crossing a view milestone,
changes its message (kinds `edit`, `delete` in the outbox).

Queued in the transaction that records the change, one row per route and reason, each
naming its own route's posted delivery (`ref_delivery_id`): the outbox's unique (route,
clip_id) key, with clip_id `deleted:<clip>` or `milestone:<n>:<clip>`, keeps it to once —
a clip marked deleted, restored and deleted again is edited once. A restore changes nothing
in Discord: once a route has a `deleted:` row for a clip, its message shows the clip removed
for good (a deleted message cannot come back; Twitch restoring a clip is rare and the
deletion proof of twitch/deletions.py is there so that it is).

Rendered when sent, from the message as it is now: a batched message holds up to 10 clips,
so an edit rebuilds it from every delivery that shares its message id (in order), each
clip with the route's template and current view count, the removed ones greyed out (title
prefixed, link and picture dropped). A `delete` whose message still holds a clip that is
not removed edits instead. The sender's outcomes are recorded as a clip message's are
(retry schedule, dead, route disabled when the webhook is gone); an unknown message
(`Missing`: deleted in Discord meanwhile) is done, with a note.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts.secrets import unseal
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Clip, Delivery, NotificationRoute
from clipwatch.db.repositories import catalog, moderation, notifications
from clipwatch.discord.messages import (
    CONTENT_MAX,
    MESSAGE_EMBED_CHARS,
    TITLE_MAX,
    ClipView,
    Template,
    Voice,
    address,
    allowed_mentions_for,
    cut,
    embed_chars,
    embed_for,
    escape,
    voice_of,
)
from clipwatch.discord.notice_delivery import NoticeFinish
from clipwatch.discord.sender import Missing, Outcome, Rejected, RetryLater, Sent, WebhookSender
from clipwatch.discord.templates import TemplateProblem
from clipwatch.discord.webhook_url import WebhookTarget
from clipwatch.monitoring.metrics import MESSAGE_EDITS

CHANGE_KINDS = ("edit", "delete")
POSTED_KIND = "clip"  # the deliveries whose messages change (digests and trending posts do not)
DELETED = "deleted:"
HIDDEN = "hidden:"
HIDDEN_NOTE = "Removed by the moderators"
REMOVED_COLOR = 0x99AAB5  # Discord's own grey
REMOVED_PREFIX = "Removed on Twitch: "
KEY_MAX = 128  # delivery.clip_id
log = structlog.get_logger("clipwatch.discord")


def change_key(prefix: str, clip_id: str) -> str:
    """The outbox key of a change: `prefix` + the clip id, or its hash when too long."""
    key = prefix + clip_id
    if len(key) <= KEY_MAX:
        return key
    return prefix + "#" + hashlib.sha256(clip_id.encode()).hexdigest()


def milestones_of(route: NotificationRoute) -> list[int]:
    raw = route.milestones or []
    return sorted({m for m in raw if isinstance(m, int) and not isinstance(m, bool) and m > 0})


def crossed(milestones: Sequence[int], before: int, after: int) -> list[int]:
    """The milestones a count passed on its way from `before` to `after` (going up)."""
    return [m for m in milestones if before < m <= after]


def _row(
    route_id: int, key: str, kind: str, ref: Delivery, now: datetime, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "route_id": route_id,
        "clip_id": key,
        "kind": kind,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "ref_delivery_id": ref.id,
        "payload": payload,
    }


async def queue_deleted(session: AsyncSession, clip_ids: Sequence[str], now: datetime) -> int:
    """Changes for clips just marked deleted: one row per route whose policy is `edit` or
    `delete` and that posted the clip; how many were offered (one already there stays)."""
    return await _queue_removed(session, clip_ids, now, DELETED, "deleted")


async def queue_hidden(session: AsyncSession, clip_ids: Sequence[str], now: datetime) -> int:
    """The same for clips a moderator just hid (clips/moderation.py): their messages then
    show no word of the clip."""
    return await _queue_removed(session, clip_ids, now, HIDDEN, "hidden")


async def _queue_removed(
    session: AsyncSession, clip_ids: Sequence[str], now: datetime, prefix: str, reason: str
) -> int:
    if not clip_ids:
        return 0
    routes = {
        r.id: r for r in await notifications.enabled_routes(session) if r.on_deleted in CHANGE_KINDS
    }
    if not routes:
        return 0
    posted = await notifications.posted_deliveries(session, list(routes), clip_ids, POSTED_KIND)
    rows = [
        _row(
            ref.route_id,
            change_key(prefix, ref.clip_id),
            routes[ref.route_id].on_deleted,
            ref,
            now,
            {"clip": ref.clip_id, "reason": reason},
        )
        for ref in posted
        if ref.route_id is not None
    ]
    await notifications.add_deliveries(session, rows)
    return len(rows)


async def queue_milestones(
    session: AsyncSession, risen: Sequence[tuple[dict[str, Any], int]], now: datetime | None = None
) -> int:
    """Edits for posted clips whose views just crossed one of their route's milestones:
    one row per route, milestone and clip; how many were offered. `risen`: (clip row, views
    before)."""
    if not risen:
        return 0
    now = now or datetime.now(UTC)
    routes = {r.id: r for r in await notifications.enabled_routes(session) if r.milestones}
    marks = {i: milestones_of(r) for i, r in routes.items()}
    counts = {row["id"]: (before, int(row["view_count"])) for row, before in risen}
    top = max((m for ms in marks.values() for m in ms), default=0)
    lowest = min((m for ms in marks.values() for m in ms), default=0)
    # Most refreshes cross nothing: no query for them.
    moving = [c for c, (b, a) in counts.items() if lowest and a >= lowest and b < top]
    if moving:  # a hidden clip's message is not brought back to mind
        hidden = await moderation.hidden_ids(session, moving)
        moving = [c for c in moving if c not in hidden]
    if not moving:
        return 0
    posted = await notifications.posted_deliveries(session, list(routes), moving, POSTED_KIND)
    rows = []
    for ref in posted:
        if ref.route_id is None:
            continue
        before, after = counts[ref.clip_id]
        rows += [
            _row(
                ref.route_id,
                change_key(f"milestone:{m}:", ref.clip_id),
                "edit",
                ref,
                now,
                {"clip": ref.clip_id, "reason": "milestone", "views": m},
            )
            for m in crossed(marks[ref.route_id], before, after)
        ]
    await notifications.add_deliveries(session, rows)
    return len(rows)


# --- rendering (pure) -------------------------------------------------------------------------


def removed_embed(embed: dict[str, Any]) -> dict[str, Any]:
    """A clip's embed once it is removed on Twitch: kept, greyed out, without its link or
    picture (the clip is gone), its title saying so."""
    out = {k: v for k, v in embed.items() if k not in ("url", "image", "thumbnail")}
    title = str(embed.get("title") or "").strip()
    out["title"] = cut(REMOVED_PREFIX + title, TITLE_MAX) if title else REMOVED_PREFIX.rstrip(": ")
    out["color"] = REMOVED_COLOR
    return out


def fit_embeds(embeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Within Discord's 6,000 characters a message: the longest descriptions give way (a
    message rebuilt from today's titles may be longer than the one first sent)."""
    excess = sum(embed_chars(e) for e in embeds) - MESSAGE_EMBED_CHARS
    if excess <= 0:
        return embeds
    out = [dict(e) for e in embeds]
    for embed in sorted(out, key=lambda e: -len(str(e.get("description") or ""))):
        text = str(embed.get("description") or "").strip()
        if excess <= 0 or not text:
            break
        keep = len(text) - excess
        excess -= len(text)
        if keep > 1:
            embed["description"] = cut(text, keep)
            excess += len(embed["description"])
        else:
            embed.pop("description", None)
    return out


@dataclass(frozen=True)
class Member:
    """One clip of a posted message, as it is now."""

    view: ClipView | None  # None: the clip is no longer in the archive, or is hidden
    removed: bool
    note: str = "Removed on Twitch"  # what a message shows in place of a clip without a view


def rebuild_message(template: Template, members: Sequence[Member], voice: Voice) -> dict[str, Any]:
    """The edit that makes a posted message true: each clip as the template shows it now
    (views included), the removed ones greyed out; a custom template failing on a clip
    shows it as a card (as when it was sent). Addressed as the route's messages are, but
    for the name and avatar, which an edit cannot change: the same pings in the content (an
    edit notifies nobody anew) and `allowed_mentions` (Discord re-reads mentions on edit)."""
    if template == "link" and len(members) > 1:
        template = "card"  # the route became `link` after posting a batch: keep every clip
    if template == "link":  # one clip, the bare link: an alive clip keeps it, with its views
        member = members[0] if members else Member(None, True)
        if member.view is None or member.removed:
            title = escape(member.view.title) if member.view else ""
            content = cut(REMOVED_PREFIX + title, CONTENT_MAX) if title else member.note
        else:
            content = cut(f"{member.view.url} · {member.view.view_count:,} views", CONTENT_MAX)
        edit = address({"content": content, "embeds": []}, voice)
        return {k: v for k, v in edit.items() if k not in ("username", "avatar_url")}
    embeds = []
    for member in members:
        if member.view is None:
            embeds.append({"title": member.note, "color": REMOVED_COLOR})
            continue
        try:
            embed = embed_for(template, member.view)
        except TemplateProblem:
            embed = embed_for("card", member.view)
        embeds.append(removed_embed(embed) if member.removed else embed)
    return {"embeds": fit_embeds(embeds), "allowed_mentions": allowed_mentions_for(voice)}


# --- sending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    delete: bool
    payload: dict[str, Any]


async def plan_change(
    sessionmaker: async_sessionmaker[AsyncSession],
    route: NotificationRoute,
    message_id: str,
    rows: Sequence[Delivery],
) -> Plan:
    """What to send for these changes of one posted message of `route`."""
    # delivery.py dispatches here, so it is imported when first needed.
    from clipwatch.discord.delivery import template_of, view_of

    async with session_scope(sessionmaker) as session:
        members = await notifications.message_deliveries(session, route.id, message_id, POSTED_KIND)
        clips: dict[str, Clip] = await notifications.clips_by_id(
            session, {d.clip_id for d in members}
        )
        names = await catalog.game_names(session, (c.game_id for c in clips.values() if c.game_id))
        removed_keys = await notifications.existing_keys(
            session, route.id, [change_key(DELETED, d.clip_id) for d in members]
        )
        hidden = await moderation.hidden_ids(session, (d.clip_id for d in members))
    shown = [
        Member(None, True, HIDDEN_NOTE)
        if d.clip_id in hidden
        else Member(
            view_of(clips[d.clip_id], names.get(clips[d.clip_id].game_id or ""))
            if d.clip_id in clips
            else None,
            change_key(DELETED, d.clip_id) in removed_keys or d.clip_id not in clips,
        )
        for d in members
    ]
    wants_delete = any(r.kind == "delete" for r in rows)
    if wants_delete and all(m.removed for m in shown):
        return Plan(True, {})
    return Plan(False, rebuild_message(template_of(route), shown, voice_of(route)))


def thread_of(ref: Delivery, route: NotificationRoute) -> str | None:
    """The thread the posted message is in (none when it went to the channel itself)."""
    thread = ref.thread_id or route.thread_id
    return thread if thread and thread != route.webhook_channel_id else None


async def deliver_changes(
    sessionmaker: async_sessionmaker[AsyncSession],
    changes: Sequence[Delivery],
    routes: dict[int, NotificationRoute],
    sender: WebhookSender,
    key: bytes,
    done: NoticeFinish,
) -> int:
    """Send the due changes: one request per posted message whatever the number of its
    changes due together; how many were tried."""
    async with session_scope(sessionmaker) as session:
        refs = await notifications.deliveries_by_id(
            session, {d.ref_delivery_id for d in changes if d.ref_delivery_id is not None}
        )
    # One request per posted message: a batch's clips are separate deliveries of one message.
    groups: dict[tuple[int, str], list[Delivery]] = defaultdict(list)
    posts: dict[tuple[int, str], Delivery] = {}
    for change in changes:
        ref = refs.get(change.ref_delivery_id or 0)
        route = routes.get(change.route_id or 0)
        if route is None:
            continue  # the route was removed meanwhile: its rows went with it
        if ref is None or not ref.message_id or ref.route_id != route.id:
            # Never another route's message; a row naming none has nothing to change.
            _count([change], "rejected", "the posted message is not known", route, change.kind)
            await done.finish(route, [change], Rejected("the posted message is not known"))
            continue
        groups[(route.id, ref.message_id)].append(change)
        posts[(route.id, ref.message_id)] = ref
    tried = 0
    for (route_id, message_id), rows in groups.items():
        route, ref = routes[route_id], posts[(route_id, message_id)]
        wanted = "delete" if any(r.kind == "delete" for r in rows) else "edit"
        if not route.enabled:  # its reason is on the route already: counted, not logged
            _count(rows, "rejected", None, route, wanted)
            await done.finish(route, rows, Rejected("route disabled"))
            continue
        try:
            plan = await plan_change(sessionmaker, route, message_id, rows)
            target = WebhookTarget(route.webhook_id, unseal(key, route.webhook_token_sealed))
        except Exception as exc:  # odd data or a bug costs this message, never the pass
            why = f"building the change failed ({type(exc).__name__})"
            _count(rows, "failed", why, route, wanted)
            await done.failed(route, rows, exc)
            continue
        tried += 1
        kind = "delete" if plan.delete else "edit"
        thread = thread_of(ref, route)
        outcome: Outcome
        if plan.delete:
            outcome = await sender.delete(target, message_id, thread_id=thread)
        else:
            outcome = await sender.edit(target, message_id, plan.payload, thread_id=thread)
        await _record(sessionmaker, route, rows, kind, message_id, outcome, done)
    return tried


async def _record(
    sessionmaker: async_sessionmaker[AsyncSession],
    route: NotificationRoute,
    rows: list[Delivery],
    kind: str,
    message_id: str,
    outcome: Outcome,
    done: NoticeFinish,
) -> None:
    if isinstance(outcome, Missing):  # deleted in Discord already: nothing left to change
        _count(rows, "missing", None, route, kind)
        await done.finish(route, rows, Sent(message_id))
        async with session_scope(sessionmaker) as session:
            await notifications.update_deliveries(
                session, [r.id for r in rows], last_error=f"message already gone: {outcome.reason}"
            )
        return
    if isinstance(outcome, Sent):
        _count(rows, "sent", None, route, kind)
    elif isinstance(outcome, RetryLater):
        label = "rate_limited" if outcome.rate_limited else "retried"
        _count(rows, label, None if outcome.rate_limited else outcome.reason, route, kind)
    elif isinstance(outcome, Rejected):
        _count(rows, "rejected", outcome.reason, route, kind)
        async with session_scope(sessionmaker) as session:
            await notifications.record_route_error(
                session, route.id, f"message {kind} refused: {outcome.reason}", datetime.now(UTC)
            )
    else:  # Gone: the route is disabled with the reason (done.finish)
        _count(rows, "gone", outcome.reason, route, kind)
    await done.finish(route, rows, outcome)


def _count(
    rows: list[Delivery],
    outcome: str,
    failure: str | None,
    route: NotificationRoute,
    kind: str,
) -> None:
    MESSAGE_EDITS.labels(kind, outcome).inc(len(rows))
    if failure is not None:
        log.warning(
            "message_change_failed",
            route_id=route.id,
            kind=kind,
            outcome=outcome,
            changes=len(rows),
            reason=failure,
        )
