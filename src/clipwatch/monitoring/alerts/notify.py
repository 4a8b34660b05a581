"""Routing and grouping: what each receiver is told, and when.

Incidents are grouped by rule. For each receiver and group the database keeps when the
receiver was last told and which incidents it knows to be open (`alert_group`). An
evaluation that finds news — incidents it does not know of yet, incidents it knows of that
are resolved now, or unacknowledged ones still firing after the repeat interval — sends one
message listing them, unless the receiver was told about this group less than the group
interval ago: then the news waits and joins the next message. A storm of a hundred failing
channels is one message per receiver and interval, not a hundred.

Messages are written in the evaluation's own transaction: Discord messages and webhook
posts as outbox rows (`delivery`, kinds `alert` and `alert_webhook`, each with an
idempotency key), so they get the outbox's guarantees (sent once, retried, rate limits
honoured); log lines are written after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.secrets import seal
from clipwatch.db.models import Incident
from clipwatch.db.repositories import incidents as repo
from clipwatch.db.repositories import notifications
from clipwatch.monitoring.alerts.rules import AlertConfig, Target, webhook_target

log = structlog.get_logger("clipwatch.alerts")

SHOWN = 20  # incidents listed by name in one message; the rest are counted
LINE_CHARS = 180
COLORS = {"critical": 0xE74C3C, "warning": 0xE67E22, "info": 0x3498DB, "resolved": 0x2ECC71}


@dataclass
class Notice:
    """One message to one receiver about one group (a rule's incidents)."""

    receiver: Target
    group: str
    severity: str
    firing: list[Incident] = field(default_factory=list)  # open, the new ones first
    new: set[int] = field(default_factory=set)
    resolved: list[Incident] = field(default_factory=list)
    repeat: bool = False
    sequence: int = 0  # the group's message number for this receiver: the idempotency key

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"

    @property
    def title(self) -> str:
        if not self.firing:
            return f"RESOLVED · {self.group}"
        tail = f", {len(self.resolved)} resolved" if self.resolved else ""
        again = " (still)" if self.repeat and not self.new else ""
        return f"FIRING{again} · {self.group} · {len(self.firing)} open{tail}"

    def lines(self) -> list[str]:
        rows = [("new" if i.id in self.new else i.state, i) for i in self.firing]
        rows += [("resolved", i) for i in self.resolved]
        out = [_line(kind, incident) for kind, incident in rows[:SHOWN]]
        if len(rows) > SHOWN:
            out.append(f"… and {len(rows) - SHOWN} more (clipwatch incidents list)")
        return out


def _line(kind: str, incident: Incident) -> str:
    text = " ".join(incident.summary.split())
    if len(text) > LINE_CHARS:
        text = text[: LINE_CHARS - 1] + "…"
    return f"#{incident.id} [{kind}] {text}"


def discord_message(notice: Notice) -> dict[str, Any]:
    color = COLORS["resolved"] if not notice.firing else COLORS.get(notice.severity, 0)
    return {
        "embeds": [
            {
                "title": notice.title[:256],
                "description": "\n".join(notice.lines())[:4000],
                "color": color,
                "footer": {"text": f"clipwatch alert · {notice.severity}"},
            }
        ],
        "allowed_mentions": {"parse": []},
    }


def webhook_body(notice: Notice, now: datetime) -> dict[str, Any]:
    return {
        "version": 1,
        "receiver": notice.receiver.name,
        "group": notice.group,
        "status": notice.status,
        "title": notice.title,
        "new": sorted(notice.new),
        "incidents": [incident_view(i) for i in notice.firing],
        "resolved": [incident_view(i) for i in notice.resolved],
        "sent_at": now.isoformat(),
    }


def incident_view(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "rule": incident.rule,
        "severity": incident.severity,
        "state": incident.state,
        "labels": dict(incident.labels or {}),
        "summary": incident.summary,
        "first_seen_at": incident.first_seen_at.isoformat(),
        "last_seen_at": incident.last_seen_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "count": incident.count,
    }


async def plan_notices(session: AsyncSession, config: AlertConfig, now: datetime) -> list[Notice]:
    """The messages due now, with each group's row updated as if they were sent (the
    caller writes them in the same transaction)."""
    await session.flush()  # the evaluation's changes, for the queries below
    open_now = [i for i in await repo.open_incidents(session) if i.state != "resolved"]
    groups = await repo.alert_groups(session)
    known = {i for g in groups.values() for i in (g.notified or [])}
    gone = await repo.incidents_by_id(session, known - {i.id for i in open_now})
    notices = []
    for target in config.targets.values():
        if not target.active:
            continue
        for rule in config.rules:
            mine = [
                i
                for i in open_now
                if i.rule == rule.name
                and target.name in config.receivers_for(i.severity, i.labels or {})
            ]
            row = groups.get((target.name, rule.name))
            notified = set(row.notified or []) if row is not None else set()
            if not mine and not notified:
                continue
            new = {i.id for i in mine} - notified
            resolved = [gone[i] for i in sorted(notified) if i in gone]
            last = row.last_sent_at if row is not None else None
            grouping = config.grouping
            repeat = (
                last is not None
                and any(i.state == "firing" for i in mine)
                and now - last >= grouping.repeat_interval
            )
            # Incidents notified but neither open nor found (deleted) are forgotten silently.
            stale = notified - {i.id for i in mine} - set(gone)
            if not (new or resolved or repeat):
                if stale and row is not None:
                    row.notified = sorted(notified - stale)
                continue
            if last is not None and now - last < grouping.group_interval:
                continue  # the news waits for the group's next message
            mine.sort(key=lambda i: (i.id not in new, i.id))
            row = await repo.group(session, target.name, rule.name)
            row.last_sent_at = now
            row.notified = sorted(i.id for i in mine)
            row.messages = (row.messages or 0) + 1
            notices.append(
                Notice(target, rule.name, rule.severity, mine, new, resolved, repeat, row.messages)
            )
    return notices


async def enqueue_notices(
    session: AsyncSession, notices: list[Notice], key: bytes, due: datetime, now: datetime
) -> int:
    """Outbox rows for the Discord and webhook notices (log notices are written after the
    commit by `log_notices`); how many."""
    rows = []
    for notice in notices:
        idempotency = f"alert:{notice.receiver.name}:{notice.group}:{notice.sequence}"
        if notice.receiver.type == "discord":
            target = webhook_target(notice.receiver)
            payload: dict[str, Any] = {
                "webhook_id": target.webhook_id,
                "token_sealed": seal(key, target.token),
                "message": discord_message(notice),
            }
            kind = "alert"
        elif notice.receiver.type == "webhook":
            payload = {
                "url_sealed": seal(key, notice.receiver.url),
                "body": webhook_body(notice, now),
            }
            kind = "alert_webhook"
        else:
            continue
        rows.append(
            {
                "route_id": None,
                "clip_id": "",
                "kind": kind,
                "idempotency_key": idempotency,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": due,
                "created_at": due,
            }
        )
    await notifications.add_deliveries(session, rows)
    return len(rows)


def log_notices(notices: list[Notice]) -> None:
    for notice in notices:
        if notice.receiver.type != "log":
            continue
        method = log.warning if notice.firing else log.info
        method(
            "alert_" + notice.status,
            receiver=notice.receiver.name,
            group=notice.group,
            severity=notice.severity,
            title=notice.title,
            incidents=notice.lines(),
        )
