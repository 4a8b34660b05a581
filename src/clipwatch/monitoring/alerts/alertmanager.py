"""Alertmanager's alerts as incidents (POST /api/v1/alerts/alertmanager; docs/monitoring.md,
"Prometheus, Alertmanager and Grafana").

An alert's labels make its incident's fingerprint, as a built-in rule's labels do, so one
alert is one incident however often Alertmanager repeats it: `firing` opens the incident
(or counts it seen again), `resolved` resolves it. Their rule is `alertmanager:<alertname>`,
a name no rules file can take (rule names have no colon), so the built-in evaluator never
steps or notifies them: Alertmanager routes its own notifications.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import Incident
from clipwatch.db.repositories import incidents as repo
from clipwatch.monitoring.alerts.evaluator import fingerprint

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RULE_PREFIX = "alertmanager:"
RULE_CHARS = 64
SUMMARY_CHARS = 500
# Alertmanager's severities are whatever the rules' authors wrote; ours are three.
SEVERITY_WORDS = {
    "critical": "critical",
    "page": "critical",
    "error": "critical",
    "high": "critical",
    "fatal": "critical",
    "warning": "warning",
    "warn": "warning",
    "info": "info",
    "notice": "info",
    "low": "info",
    "none": "info",
}


@dataclass(frozen=True)
class ExternalAlert:
    status: Literal["firing", "resolved"]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None  # Alertmanager's zero time (year 1) reads as None


@dataclass
class Applied:
    opened: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    ignored: int = 0  # resolved alerts with no open incident (already resolved, or unknown)


def alert_fingerprint(labels: Mapping[str, str]) -> str:
    return fingerprint(RULE_PREFIX, labels)


def rule_name(labels: Mapping[str, str]) -> str:
    return (RULE_PREFIX + (labels.get("alertname") or "unnamed"))[:RULE_CHARS]


def severity_of(labels: Mapping[str, str]) -> str:
    return SEVERITY_WORDS.get((labels.get("severity") or "").strip().lower(), "warning")


def summary_of(alert: ExternalAlert) -> str:
    """The annotations' summary (else description, else the alert's name), on one line."""
    notes = alert.annotations
    text = notes.get("summary") or notes.get("description") or ""
    if not text.strip():
        text = f"{alert.labels.get('alertname') or 'unnamed'} (from Alertmanager)"
    # Control characters (a NUL above all: PostgreSQL's text refuses it) become spaces.
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:SUMMARY_CHARS]


def _clamp(moment: datetime, now: datetime) -> datetime:
    """Within the Unix epoch and now: a clock ahead, or a made-up year 1, stays storable."""
    return min(max(moment, EPOCH), now)


async def apply_alerts(
    session: AsyncSession, alerts: Sequence[ExternalAlert], now: datetime
) -> Applied:
    """Open, touch and resolve the alerts' incidents (flushed; the caller commits). The same
    labels twice in one post are one incident."""
    applied = Applied()
    open_by_fp: dict[str, Incident] = {
        i.fingerprint: i
        for i in await repo.open_incidents(session)
        if i.rule.startswith(RULE_PREFIX)
    }
    for alert in alerts:
        labels = dict(alert.labels)
        fp = alert_fingerprint(labels)
        incident = open_by_fp.get(fp)
        if alert.status == "resolved":
            if incident is None:
                applied.ignored += 1
                continue
            incident.state = "resolved"
            ended = alert.ends_at or now
            incident.resolved_at = max(_clamp(ended, now), incident.first_seen_at)
            incident.resolved_by = None  # cleared at its source, not by a person
            open_by_fp.pop(fp)
            applied.resolved.append(incident.id)
        elif incident is not None:
            incident.last_seen_at = now
            # In SQL (count + 1): concurrent posts of one alert each count.
            incident.count = Incident.count + 1
            incident.summary = summary_of(alert)
            incident.severity = severity_of(labels)
            if incident.id not in applied.updated:
                applied.updated.append(incident.id)
        else:
            started = _clamp(alert.starts_at, now)
            incident = await repo.add_incident(
                session,
                fingerprint=fp,
                rule=rule_name(labels),
                severity=severity_of(labels),
                labels=labels,
                summary=summary_of(alert),
                state="firing",
                value=None,
                first_seen_at=started,
                fired_at=started,
                last_seen_at=now,
                count=1,
            )
            open_by_fp[fp] = incident
            applied.opened.append(incident.id)
    await session.flush()
    return applied
