"""The delivery worker: due outbox rows become Discord messages.

A pass claims due deliveries (hidden from other workers for `CLAIM`; `FOR UPDATE SKIP
LOCKED` on PostgreSQL), groups them per route, packs them into as few messages as
Discord's limits allow (one clip a message when the route does not batch), sends, and
records each outcome:
- sent: done, with Discord's message id;
- retry later (5xx, connection errors, timeouts): the next attempt on `SCHEDULE` — quick
  at first, as a chat post wants (2 s, 10 s, 30 s, 1 min, 5 min), then the long tail (30 min,
  2 h, 5 h, 10 h, 10 h) — plus up to 20% jitter; after the last (about 28 h), dead. The
  route's deliveries that failed and those that waited behind them get one due time (the
  jitter is drawn once per group), so the next pass packs them into messages as it packs
  fresh ones;
- gone (webhook deleted, token wrong): the route is disabled with the reason, its
  deliveries dead, and nothing retries;
- rejected (Discord refused the payload): dead, with Discord's reason.
Stream notices (kinds `live`, `stream_end`: stream_notices.py) are rendered when sent, one
message each, through the same sender and outcomes; so are the edits and deletes of posted
messages (kinds `edit`, `delete`: lifecycle.py), one request per message. Waiting for a
rate limit happens in the sender and is not an attempt. A worker killed mid-pass leaves its
claim to expire: only the messages in flight at the kill can be sent twice (Discord's
execute-webhook has no idempotency key).
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts.secrets import unseal
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Clip, Delivery, NotificationRoute
from clipwatch.db.repositories import catalog, moderation, notifications
from clipwatch.discord import forum
from clipwatch.discord.alert_delivery import ALERT_KINDS, Finish, deliver_alerts
from clipwatch.discord.lifecycle import CHANGE_KINDS, deliver_changes
from clipwatch.discord.messages import (
    ClipView,
    CustomTemplate,
    Template,
    TemplateFailures,
    address,
    iter_messages,
    template_failure_text,
    voice_of,
)
from clipwatch.discord.notice_delivery import NoticeFinish, deliver_notices
from clipwatch.discord.post_delivery import POST_KINDS, deliver_posts
from clipwatch.discord.sender import Outcome, Rejected, RetryLater, Sent, WebhookSender
from clipwatch.discord.stream_notices import NOTICE_KINDS
from clipwatch.discord.webhook_url import WebhookTarget
from clipwatch.monitoring.logging import describe_error
from clipwatch.monitoring.metrics import DELIVERIES, DELIVERY_RECORDS
from clipwatch.waiting import cancel_and_wait

# SCHEDULE[n]: the wait before attempt n + 1 (the first is at once).
SCHEDULE = (
    timedelta(0),
    timedelta(seconds=2),
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
JITTER = 0.2  # up to this share of the wait is added, so routes do not all retry at once
CLAIM = timedelta(minutes=5)
# A settled outcome (sent, dead) is written however long the database is away, up to this:
# the message is in Discord, and a row left pending would be posted again once its claim lapses
# (other workers wait runtime/worker.py RECOVERY_GRACE_S after an outage before claiming).
RECORD_PATIENCE_S = 3600.0
# This process's settled outcomes whose write waited (`delayed`) or was given up (`lost`), as
# counted in clipwatch_delivery_records_total: the worker shows them in its status detail.
RECORD_WAITS: dict[str, int] = {"delayed": 0, "lost": 0}
RECORD_PAUSE_S = 0.1  # the first wait between attempts at the write, doubled up to the next:
RECORD_PAUSE_MAX_S = 0.25  # short, so the record lands first when the database is back
ROUTES_AT_ONCE = 16  # routes a pass sends to side by side
# A pass claims at most limit / PER_ROUTE_SHARE of one route's deliveries: a burst on one route
# (its channel paced at one message per 2 s) leaves room in the pass for the others.
PER_ROUTE_SHARE = 4
# Another worker is opening a forum post these clips reply into: a wait, not an attempt.
FORUM_BUSY = RetryLater("another worker is opening the forum post", forum.BUSY_WAIT_S, True)
log = structlog.get_logger("clipwatch.discord")


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    routes_disabled: int = 0
    messages: int = 0
    cancelled: int = 0  # their clip was hidden by a moderator meanwhile


def next_attempt(attempts: int, now: datetime, jitter: float | None = None) -> datetime | None:
    """When attempt number `attempts + 1` is due, or None when there is none left.
    `jitter` (0 to 1) is drawn here unless given: one draw serves a whole group."""
    if attempts >= len(SCHEDULE):
        return None
    delay = SCHEDULE[attempts]
    share = random.random() if jitter is None else jitter
    return now + delay + delay * JITTER * share


def retry_due(
    attempts: list[int], outcome: RetryLater, now: datetime, jitter: float | None = None
) -> tuple[datetime, list[bool]]:
    """One due time for a route's deliveries met by one outcome, and which of them are dead.

    `attempts`: each delivery's attempts after this outcome. A rate-limit wait is due when
    the wait ends; a failure is due on the schedule of the most-tried delivery still alive
    (the others join it, so the group stays together), or of the second attempt when every
    tried one is dead."""
    dead = [not outcome.rate_limited and next_attempt(n, now, 0) is None for n in attempts]
    if outcome.rate_limited:
        return now + timedelta(seconds=outcome.after), dead
    alive = [n for n, gone in zip(attempts, dead, strict=True) if not gone]
    due = next_attempt(max(alive, default=1), now, jitter)
    assert due is not None  # alive means a wait is left; 1 is always in the schedule
    return max(due, now + timedelta(seconds=outcome.after)), dead


def template_of(route: NotificationRoute) -> Template:
    t = route.template or {}
    if t.get("custom"):
        return CustomTemplate(
            title=str(t.get("title", "")), description=str(t.get("description", ""))
        )
    return str(t.get("name") or "card")


def view_of(clip: Clip, game_name: str | None) -> ClipView:
    return ClipView(
        id=clip.id,
        url=clip.url,
        title=clip.title,
        broadcaster_name=clip.broadcaster_name,
        creator_name=clip.creator_name,
        game_name=game_name or "",
        view_count=clip.view_count,
        duration=clip.duration,
        created_at=clip.created_at,
        thumbnail_url=clip.thumbnail_url,
        language=clip.language,
    )


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    sender: WebhookSender,
    key: bytes,
    *,
    limit: int = 200,
    claim: timedelta = CLAIM,
) -> DeliveryReport:
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        claimed = list(
            await notifications.claim_due(
                session, now, now + claim, limit, per_route=max(10, limit // PER_ROUTE_SHARE)
            )
        )
    if not claimed:
        return DeliveryReport()
    # The claim is kept while this pass runs, however long its sends wait on Discord's limits:
    # only a worker that stopped (killed, frozen) lets it lapse for another to take.
    keeper = asyncio.create_task(
        _keep_claimed(sessionmaker, [d.id for d in claimed], now + claim, claim)
    )
    try:
        return await _deliver_claimed(sessionmaker, sender, key, claimed)
    finally:
        await cancel_and_wait(keeper)


async def _keep_claimed(
    sessionmaker: async_sessionmaker[AsyncSession],
    ids: list[int],
    until: datetime,
    claim: timedelta,
) -> None:
    """Every third of the claim, push it on for the rows still pending under this pass's
    claim (a row sent, retried or taken over has another `next_attempt_at`: left alone)."""
    beat = max(claim.total_seconds() / 3, 0.2)
    while True:
        await asyncio.sleep(beat)  # the heartbeat's period: nothing to wait on but time
        later = datetime.now(UTC) + claim
        try:
            async with session_scope(sessionmaker) as session:
                await notifications.extend_claim(session, ids, until, later)
        except (SQLAlchemyError, OSError) as exc:  # the next beat tries again
            log.warning("delivery_claim_keep_failed", error=f"{type(exc).__name__}: {exc}")
            continue
        until = later


async def _deliver_claimed(
    sessionmaker: async_sessionmaker[AsyncSession],
    sender: WebhookSender,
    key: bytes,
    claimed: list[Delivery],
) -> DeliveryReport:
    report = DeliveryReport()
    async with session_scope(sessionmaker) as session:
        alerts = [d for d in claimed if d.kind in ALERT_KINDS]
        notices = [d for d in claimed if d.kind in NOTICE_KINDS]
        changes = [d for d in claimed if d.kind in CHANGE_KINDS]
        posts = [d for d in claimed if d.kind in POST_KINDS]
        others = (*ALERT_KINDS, *NOTICE_KINDS, *CHANGE_KINDS, *POST_KINDS)
        claimed = [d for d in claimed if d.kind not in others]
        routes = await notifications.routes_by_id(
            session,
            {d.route_id for d in claimed + notices + changes + posts if d.route_id is not None},
        )
        clips = await notifications.clips_by_id(session, {d.clip_id for d in claimed})
        hidden = await moderation.hidden_ids(session, clips)
        names = await catalog.game_names(session, (c.game_id for c in clips.values() if c.game_id))
    if alerts:  # the alert manager's messages (alert_delivery.py), before the clips
        report.messages += await deliver_alerts(
            alerts, sender, key, _alert_finisher(sessionmaker, report)
        )
    if notices:  # stream notices (stream_notices.py): one message each, rendered now
        report.messages += await deliver_notices(
            sessionmaker, notices, routes, sender, key, _notice_finisher(sessionmaker, report)
        )
    if changes:  # edits and deletes of posted messages (lifecycle.py), rendered now
        report.messages += await deliver_changes(
            sessionmaker, changes, routes, sender, key, _notice_finisher(sessionmaker, report)
        )
    if posts:  # digests and trending alerts (post_delivery.py): one message each, built now
        report.messages += await deliver_posts(
            sessionmaker, posts, routes, sender, key, _notice_finisher(sessionmaker, report)
        )
    per_route: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in claimed:
        if delivery.route_id is not None:
            per_route[delivery.route_id].append(delivery)

    async def one_route(route_id: int, deliveries: list[Delivery]) -> None:
        route = routes[route_id]
        if not route.enabled:
            await _finish(sessionmaker, deliveries, "dead", report, error="route disabled")
            return
        withdrawn = [d for d in deliveries if d.clip_id in hidden]
        if withdrawn:  # hidden after it was claimed: never sent (clips/moderation.py)
            error = moderation.HIDDEN_ERROR
            await _finish(sessionmaker, withdrawn, "cancelled", report, error=error)
            deliveries = [d for d in deliveries if d.clip_id not in hidden]
            if not deliveries:
                return
        orphans = [d for d in deliveries if d.clip_id not in clips]
        if orphans:  # its clip row is gone: nothing can ever be sent, so not claimed forever
            await _finish(sessionmaker, orphans, "dead", report, error="clip not in the archive")
            deliveries = [d for d in deliveries if d.clip_id in clips]
        try:
            target = WebhookTarget(route.webhook_id, unseal(key, route.webhook_token_sealed))
            views = {
                d.id: view_of(clips[d.clip_id], names.get(clips[d.clip_id].game_id or ""))
                for d in deliveries
                if d.clip_id in clips
            }
            pending = [d for d in deliveries if d.id in views]
            groups = await _forum_groups(sessionmaker, route, pending, clips)
        except Exception as exc:  # odd data or a bug costs this route's pass, never the pass
            await _route_failed(sessionmaker, route, deliveries, exc, report)
            return
        send = _RouteSend(sessionmaker, sender, route, target, views, report)
        for n, (forum_key, group) in enumerate(groups):
            later = [d for _, rest in groups[n + 1 :] for d in rest]
            if not await send.group(forum_key, group, later):
                break

    # Routes are sent side by side (each webhook's own bucket and channel limit pace it; the
    # sender keeps one request in flight per webhook): one route waiting out its channel's
    # limit does not hold the others back.
    gate = asyncio.Semaphore(ROUTES_AT_ONCE)

    async def gated(route_id: int, deliveries: list[Delivery]) -> None:
        async with gate:
            await one_route(route_id, deliveries)

    results = await asyncio.gather(
        *(gated(r, d) for r, d in per_route.items()), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return report


def _now() -> datetime:
    return datetime.now(UTC)


async def _forum_groups(
    sessionmaker: async_sessionmaker[AsyncSession],
    route: NotificationRoute,
    pending: list[Delivery],
    clips: dict[str, Clip],
) -> list[tuple[str, list[Delivery]]]:
    """The route's deliveries per forum post they reply into (`day`/`stream` routes: one
    group per key, in order); one group without a key otherwise."""
    if route.forum_mode not in ("day", "stream") or not pending:
        return [("", pending)]
    async with session_scope(sessionmaker) as session:
        keys = await forum.forum_keys(session, route, [clips[d.clip_id] for d in pending])
    groups: dict[str, list[Delivery]] = {}
    for delivery in pending:
        groups.setdefault(keys[delivery.clip_id], []).append(delivery)
    return list(groups.items())


@dataclass
class _RouteSend:
    """One route's clip messages in one pass: built one at a time, addressed with the route's
    voice (pings, name, avatar), sent where the route posts (a thread, a forum post)."""

    sessionmaker: async_sessionmaker[AsyncSession]
    sender: WebhookSender
    route: NotificationRoute
    target: WebhookTarget
    views: dict[int, ClipView]
    report: DeliveryReport

    async def group(self, forum_key: str, group: list[Delivery], later: list[Delivery]) -> bool:
        """Send `group` (one forum key's, or all); False when the route stops for this pass
        (`later`, the route's other groups, then wait or die with it)."""
        sm, route, report = self.sessionmaker, self.route, self.report
        join = forum.Join(thread_id=route.thread_id)
        if forum_key:
            join = await forum.join_thread(sm, route.id, forum_key)
            if join.busy:  # another worker opens this post: reply into it a moment later
                wait = RetryLater(
                    "another worker is opening the forum post", forum.BUSY_WAIT_S, True
                )
                await _retry(sm, [], wait, report, waiting=group)
                return True
        failures: TemplateFailures = []
        pending = list(group)
        try:
            voice = voice_of(route)
            # One message at a time: as many clips as it holds when batching, else one; a
            # clip the route's template fails on is sent as a card (and the route told). A
            # forum route in `post` mode opens one post per clip.
            batches = iter_messages(
                template_of(route),
                [self.views[d.id] for d in pending],
                batching=route.batching and route.forum_mode != "post",
                template_failures=failures,
            )
        except Exception as exc:
            await self._give_up_claim(forum_key, join)
            await _route_failed(sm, route, pending + later, exc, report)
            return False
        while pending:
            try:
                message, count = next(batches)
                payload = address(message, voice)
                thread_id = join.thread_id
                if route.forum_mode == "post" or join.opener:
                    name = forum.thread_name_for(route.thread_name, self.views[pending[0].id])
                    payload["thread_name"] = name
                    thread_id = None
            except Exception as exc:
                await self._give_up_claim(forum_key, join)
                await _route_failed(sm, route, pending + later, exc, report, self.target.token)
                return False
            part = pending[:count]
            pending = pending[len(part) :]
            if failures:
                await _record_template_failures(sm, route, failures, self.target.token)
            outcome = await self.sender.send(self.target, payload, thread_id=thread_id)
            outcome = forum.explain_forum_refusal(outcome, route)
            report.messages += 1
            if isinstance(outcome, Sent):
                posted_in = thread_id or (outcome.channel_id if route.forum_mode else None)
                if join.opener:
                    if outcome.channel_id:
                        await forum.opened(sm, route.id, forum_key, outcome.channel_id)
                        join = forum.Join(thread_id=outcome.channel_id)
                    else:  # no thread named in the answer: the next clip opens a new post
                        await self._give_up_claim(forum_key, join)
                        join = forum.Join()
                await _finish(
                    sm, part, "sent", report, message_id=outcome.message_id, thread_id=posted_in
                )
                continue
            await self._give_up_claim(forum_key, join)
            if forum_key and join.thread_id and forum.thread_vanished(outcome):
                # The day's or stream's post was deleted: forgotten, and opened anew by the
                # next pass (the forum itself is still there: the route stays on).
                await forum.forget(sm, route.id, forum_key, join.thread_id)
                gone = RetryLater(f"{getattr(outcome, 'reason', '')}: a new forum post opens")
                log.warning("forum_thread_vanished", route_id=route.id, key=forum_key)
                async with session_scope(sm) as session:  # the owner sees why a post reopened
                    await notifications.record_route_error(
                        session, route.id, f"forum post {forum_key}: {gone.reason}", _now()
                    )
                await _retry(sm, part, gone, report, waiting=pending)
                return True
            if isinstance(outcome, Rejected):
                await _finish(sm, part, "dead", report, error=outcome.reason)
                join = forum.Join(thread_id=join.thread_id)  # a failed opener opens again
                if forum_key and not join.thread_id:
                    join = await forum.join_thread(sm, route.id, forum_key)
                    if join.busy:
                        await _retry(sm, [], FORUM_BUSY, report, waiting=pending)
                        return True
            elif isinstance(outcome, RetryLater):
                # The rest of this route waits too (sending on would only meet the same limit
                # or error); a rate-limit wait costs none of them an attempt.
                await _retry(sm, part, outcome, report, waiting=pending + later)
                return False
            else:  # Gone: the route stops here, and nothing of it is retried
                reason = getattr(outcome, "reason", "gone")
                await _disable(sm, route, reason, report)
                await _finish(sm, part + pending + later, "dead", report, error=reason)
                return False
        return True

    async def _give_up_claim(self, forum_key: str, join: forum.Join) -> None:
        if forum_key and join.opener:
            await forum.forget(self.sessionmaker, self.route.id, forum_key, "")


def _notice_finisher(
    sessionmaker: async_sessionmaker[AsyncSession], report: DeliveryReport
) -> NoticeFinish:
    """A stream notice's outcome, recorded as a clip delivery's is."""

    async def finish(route: NotificationRoute, rows: list[Delivery], outcome: Outcome) -> None:
        if isinstance(outcome, Sent):
            await _finish(sessionmaker, rows, "sent", report, message_id=outcome.message_id)
        elif isinstance(outcome, Rejected):
            await _finish(sessionmaker, rows, "dead", report, error=outcome.reason)
        elif isinstance(outcome, RetryLater):
            await _retry(sessionmaker, rows, outcome, report)
        else:  # Gone: the route is disabled; its clips and other notices die with it
            await _disable(sessionmaker, route, outcome.reason, report)
            await _finish(sessionmaker, rows, "dead", report, error=outcome.reason)

    async def failed(route: NotificationRoute, rows: list[Delivery], exc: Exception) -> None:
        await _route_failed(sessionmaker, route, rows, exc, report)

    return NoticeFinish(finish, failed)


def _alert_finisher(
    sessionmaker: async_sessionmaker[AsyncSession], report: DeliveryReport
) -> Finish:
    """An alert message's outcome, recorded as a clip delivery's is (no route to disable)."""

    async def finish(rows: list[Delivery], outcome: Outcome) -> None:
        if isinstance(outcome, Sent):
            message_id = outcome.message_id or None
            await _finish(sessionmaker, rows, "sent", report, message_id=message_id)
        elif isinstance(outcome, RetryLater):
            await _retry(sessionmaker, rows, outcome, report)
        else:  # Rejected or Gone: retrying cannot help
            await _finish(sessionmaker, rows, "dead", report, error=outcome.reason)

    return finish


def _route_error(error: BaseException | str, *secrets: str) -> str:
    """An error as the route's owner sees it: one bounded line, never holding a secret
    (the route's own token too, in whatever form an exception carries it)."""
    text = describe_error(error)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[hidden]")
    return text


async def _record_template_failures(
    sessionmaker: async_sessionmaker[AsyncSession],
    route: NotificationRoute,
    failures: TemplateFailures,
    token: str,
) -> None:
    text = template_failure_text(failures)
    async with session_scope(sessionmaker) as session:
        await notifications.record_route_error(
            session, route.id, _route_error(text, token), datetime.now(UTC), len(failures)
        )
    failures.clear()


async def _route_failed(
    sessionmaker: async_sessionmaker[AsyncSession],
    route: NotificationRoute,
    deliveries: list[Delivery],
    exc: Exception,
    report: DeliveryReport,
    token: str = "",
) -> None:
    """Building this route's messages failed unexpectedly: its deliveries are retried on the
    schedule (then dead), the error is recorded on the route, other routes go on."""
    log.error("route_messages_failed", route_id=route.id, error=type(exc).__name__)
    text = _route_error(exc, token, route.webhook_token_sealed)
    async with session_scope(sessionmaker) as session:
        await notifications.record_route_error(session, route.id, text, datetime.now(UTC))
    await _retry(sessionmaker, deliveries, RetryLater(text), report)


async def _finish(
    sessionmaker: async_sessionmaker[AsyncSession],
    deliveries: list[Delivery],
    status: str,
    report: DeliveryReport,
    *,
    message_id: str | None = None,
    error: str | None = None,
    thread_id: str | None = None,
) -> None:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "status": status,
        "message_id": message_id,
        "last_error": error,
        "sent_at": now if status == "sent" else None,
    }
    if thread_id:
        values["thread_id"] = thread_id
    await _record_outcome(sessionmaker, [d.id for d in deliveries], values, status)
    if status == "sent":
        report.sent += len(deliveries)
    elif status == "cancelled":
        report.cancelled += len(deliveries)
    else:
        report.dead += len(deliveries)
    DELIVERIES.labels(status).inc(len(deliveries))


async def _record_outcome(
    sessionmaker: async_sessionmaker[AsyncSession],
    ids: list[int],
    values: dict[str, object],
    status: str,
) -> None:
    """Write the final outcome of deliveries already settled with Discord (sent, or refused
    for good). The write is idempotent, so a database away (down, restarting, just back) is
    waited out for up to RECORD_PATIENCE_S: given up at once, a sent message's row would stay
    pending, its claim would lapse and another worker would post it again."""
    deadline = asyncio.get_running_loop().time() + RECORD_PATIENCE_S
    pause = RECORD_PAUSE_S
    waited = 0
    while True:
        try:
            async with session_scope(sessionmaker) as session:
                await notifications.update_deliveries(session, ids, **values)
        except (SQLAlchemyError, OSError) as exc:
            if asyncio.get_running_loop().time() + pause > deadline:
                DELIVERY_RECORDS.labels("lost").inc(len(ids))
                RECORD_WAITS["lost"] += len(ids)
                log.error("delivery_outcome_lost", status=status, deliveries=len(ids))
                raise
            if not waited:
                log.warning(
                    "delivery_outcome_waiting",
                    status=status,
                    deliveries=len(ids),
                    error=describe_error(exc),
                )
            waited += 1
            await asyncio.sleep(pause)  # a backoff between attempts at the database
            pause = min(pause * 2, RECORD_PAUSE_MAX_S)
            continue
        if waited:
            DELIVERY_RECORDS.labels("delayed").inc(len(ids))
            RECORD_WAITS["delayed"] += len(ids)
            log.info("delivery_outcome_recorded", status=status, attempts=waited + 1)
        return


async def _retry(
    sessionmaker: async_sessionmaker[AsyncSession],
    deliveries: list[Delivery],
    outcome: RetryLater,
    report: DeliveryReport,
    *,
    waiting: list[Delivery] | None = None,
) -> None:
    """`deliveries` met `outcome` (an attempt spent unless it is a rate-limit wait); the
    route's `waiting` ones were not tried and spend none. All become due together."""
    now = datetime.now(UTC)
    group = deliveries + (waiting or [])
    tried = {d.id for d in deliveries}
    spent = 0 if outcome.rate_limited else 1
    attempts = [d.attempts + (spent if d.id in tried else 0) for d in group]
    # Only the tried ones can run out of attempts; the waiting ones keep theirs.
    due, dead = retry_due(attempts[: len(deliveries)], outcome, now)
    dead += [False] * (len(group) - len(deliveries))
    async with session_scope(sessionmaker) as session:
        for n in sorted(set(attempts)):
            for is_dead in (False, True):
                ids = [
                    d.id
                    for d, a, gone in zip(group, attempts, dead, strict=True)
                    if a == n and gone is is_dead
                ]
                if not ids:
                    continue
                values: dict[str, object] = {"attempts": n, "last_error": outcome.reason}
                values |= {"status": "dead"} if is_dead else {"next_attempt_at": due}
                await notifications.update_deliveries(session, ids, **values)
    report.dead += sum(dead)
    report.retried += len(group) - sum(dead)
    DELIVERIES.labels("dead").inc(sum(dead))
    DELIVERIES.labels("rate_limited" if outcome.rate_limited else "retried").inc(
        len(group) - sum(dead)
    )


async def _disable(
    sessionmaker: async_sessionmaker[AsyncSession],
    route: NotificationRoute,
    reason: str,
    report: DeliveryReport,
) -> None:
    async with session_scope(sessionmaker) as session:
        stored = await session.get(NotificationRoute, route.id)
        if stored is not None and stored.enabled:
            stored.enabled = False
            stored.disabled_reason = reason
            report.routes_disabled += 1
    route.enabled = False


async def pending_count(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with session_scope(sessionmaker) as session:
        return await notifications.count_pending(session)
