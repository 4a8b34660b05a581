"""Incidents and alert rules as the API shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from clipwatch.api.schemas import StrictBody
from clipwatch.db.models import Incident, IncidentNote
from clipwatch.monitoring.alerts.rules import Rule


class IncidentNoteRead(BaseModel):
    author: str
    text: str
    created_at: datetime


class IncidentRead(BaseModel):
    id: int
    rule: str
    severity: str
    state: str = Field(description="firing, acknowledged or resolved")
    labels: dict[str, str]
    summary: str
    value: float | None
    first_seen_at: datetime = Field(description="when the rule's condition first held")
    fired_at: datetime = Field(description="when it had held for the rule's `for`")
    last_seen_at: datetime
    count: int = Field(description="evaluations that found the condition true")
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None = Field(description="who resolved it; null when it cleared")
    notes: list[IncidentNoteRead]

    @classmethod
    def from_incident(cls, incident: Incident, notes: list[IncidentNote]) -> IncidentRead:
        return cls(
            id=incident.id,
            rule=incident.rule,
            severity=incident.severity,
            state=incident.state,
            labels=dict(incident.labels or {}),
            summary=incident.summary,
            value=incident.value,
            first_seen_at=incident.first_seen_at,
            fired_at=incident.fired_at,
            last_seen_at=incident.last_seen_at,
            count=incident.count,
            acknowledged_at=incident.acknowledged_at,
            acknowledged_by=incident.acknowledged_by,
            resolved_at=incident.resolved_at,
            resolved_by=incident.resolved_by,
            notes=[
                IncidentNoteRead(author=n.author, text=n.text, created_at=n.created_at)
                for n in notes
            ],
        )


class IncidentPage(BaseModel):
    data: list[IncidentRead]
    next_before: int | None = Field(
        description="pass as `before` for the next (older) page; null at the end"
    )


class IncidentAction(StrictBody):
    # The pattern says what the service refuses: control characters other than tab and
    # newline (schemathesis found a note the schema allowed answered 422).
    note: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^[^\x00-\x08\x0b-\x1f]*$",
        description="kept with the incident; text, tabs and new lines",
    )


class AlertRuleRead(BaseModel):
    name: str
    signal: str
    op: str
    threshold: float
    for_seconds: float
    severity: str
    labels: dict[str, str]
    summary: str
    receivers: list[str] = Field(description="active receivers its incidents go to")

    @classmethod
    def from_rule(cls, rule: Rule, receivers: list[str]) -> AlertRuleRead:
        return cls(
            name=rule.name,
            signal=rule.signal,
            op=rule.op,
            threshold=rule.threshold,
            for_seconds=rule.for_.total_seconds(),
            severity=rule.severity,
            labels=dict(rule.labels),
            summary=rule.summary,
            receivers=receivers,
        )


class AlertRules(BaseModel):
    source: str = Field(description="the shipped set, or CLIPWATCH_ALERT_RULES_FILE")
    group_interval_seconds: float
    repeat_interval_seconds: float
    data: list[AlertRuleRead]
