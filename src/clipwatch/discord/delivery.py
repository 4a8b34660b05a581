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
message each, through the same sender and outcomes. Waiting for a rate limit happens in the
sender and is not an attempt. A worker killed
mid-pass leaves its claim to expire: only the messages in flight at the kill can be sent
twice (Discord's execute-webhook has no idempotency key).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts.secrets import unseal
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Clip, Delivery, NotificationRoute
from clipwatch.db.repositories import catalog, notifications
from clipwatch.discord.alert_delivery import ALERT_KINDS, Finish, deliver_alerts
from clipwatch.discord.messages import (
    ClipView,
    CustomTemplate,
    Template,
    TemplateFailures,
    iter_messages,
    template_failure_text,
)
from clipwatch.discord.notice_delivery import NoticeFinish, deliver_notices
from clipwatch.discord.sender import Outcome, Rejected, RetryLater, Sent, WebhookSender
from clipwatch.discord.stream_notices import NOTICE_KINDS
from clipwatch.discord.webhook_url import WebhookTarget
from clipwatch.monitoring.logging import describe_error
from clipwatch.monitoring.metrics import DELIVERIES

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
log = structlog.get_logger("clipwatch.discord")


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    routes_disabled: int = 0
    messages: int = 0


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
    report = DeliveryReport()
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        claimed = list(await notifications.claim_due(session, now, now + claim, limit))
        alerts = [d for d in claimed if d.kind in ALERT_KINDS]
        notices = [d for d in claimed if d.kind in NOTICE_KINDS]
        claimed = [d for d in claimed if d.kind not in ALERT_KINDS and d.kind not in NOTICE_KINDS]
        routes = await notifications.routes_by_id(
            session, {d.route_id for d in claimed + notices if d.route_id is not None}
        )
        clips = await notifications.clips_by_id(session, {d.clip_id for d in claimed})
        names = await catalog.game_names(session, (c.game_id for c in clips.values() if c.game_id))
    if alerts:  # the alert manager's messages (alert_delivery.py), before the clips
        report.messages += await deliver_alerts(
            alerts, sender, key, _alert_finisher(sessionmaker, report)
        )
    if notices:  # stream notices (stream_notices.py): one message each, rendered now
        report.messages += await deliver_notices(
            sessionmaker, notices, routes, sender, key, _notice_finisher(sessionmaker, report)
        )
    per_route: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in claimed:
        if delivery.route_id is not None:
            per_route[delivery.route_id].append(delivery)
    for route_id, deliveries in per_route.items():
        route = routes[route_id]
        if not route.enabled:
            await _finish(sessionmaker, deliveries, "dead", report, error="route disabled")
            continue
        orphans = [d for d in deliveries if d.clip_id not in clips]
        if orphans:  # its clip row is gone: nothing can ever be sent, so not claimed forever
            await _finish(sessionmaker, orphans, "dead", report, error="clip not in the archive")
            deliveries = [d for d in deliveries if d.clip_id in clips]
        failures: TemplateFailures = []
        try:
            target = WebhookTarget(route.webhook_id, unseal(key, route.webhook_token_sealed))
            views = {
                d.id: view_of(clips[d.clip_id], names.get(clips[d.clip_id].game_id or ""))
                for d in deliveries
                if d.clip_id in clips
            }
            pending = [d for d in deliveries if d.id in views]
            # One message at a time: as many clips as it holds when batching, else one; a
            # clip the route's template fails on is sent as a card (and the route told).
            batches = iter_messages(
                template_of(route),
                [views[d.id] for d in pending],
                batching=route.batching,
                template_failures=failures,
            )
        except Exception as exc:  # odd data or a bug costs this route's pass, never the pass
            await _route_failed(sessionmaker, route, deliveries, exc, report)
            continue
        while pending:
            try:
                message, count = next(batches)
            except Exception as exc:
                await _route_failed(sessionmaker, route, pending, exc, report, target.token)
                break
            part = pending[:count]
            pending = pending[len(part) :]
            if failures:
                await _record_template_failures(sessionmaker, route, failures, target.token)
            outcome = await sender.send(target, message)
            report.messages += 1
            if isinstance(outcome, Sent):
                await _finish(sessionmaker, part, "sent", report, message_id=outcome.message_id)
            elif isinstance(outcome, Rejected):
                await _finish(sessionmaker, part, "dead", report, error=outcome.reason)
            elif isinstance(outcome, RetryLater):
                # The rest of this route waits too (sending on would only meet the same limit
                # or error); a rate-limit wait costs none of them an attempt.
                await _retry(sessionmaker, part, outcome, report, waiting=pending)
                break
            else:  # Gone: the route stops here, and nothing of it is retried
                await _disable(sessionmaker, route, outcome.reason, report)
                await _finish(sessionmaker, part + pending, "dead", report, error=outcome.reason)
                break
    return report


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
) -> None:
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        await notifications.update_deliveries(
            session,
            [d.id for d in deliveries],
            status=status,
            message_id=message_id,
            last_error=error,
            sent_at=now if status == "sent" else None,
        )
    if status == "sent":
        report.sent += len(deliveries)
    else:
        report.dead += len(deliveries)
    DELIVERIES.labels(status).inc(len(deliveries))


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
