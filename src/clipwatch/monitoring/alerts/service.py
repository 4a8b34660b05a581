"""Incidents as operators handle them: list, acknowledge, resolve (API and CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import Incident, IncidentNote
from clipwatch.db.repositories import incidents as repo
from clipwatch.errors import Conflict, InvalidInput, NotFound

NOTE_CHARS = 2000
STATES = repo.STATES


async def list_incidents(
    session: AsyncSession,
    *,
    states: Sequence[str] = (),
    before_id: int | None = None,
    limit: int = 50,
) -> tuple[list[Incident], dict[int, list[IncidentNote]]]:
    for state in states:
        if state not in STATES:
            raise InvalidInput(f"state must be one of {', '.join(STATES)}", field="state")
    found = await repo.list_incidents(session, states=states, before_id=before_id, limit=limit)
    return found, await repo.notes_of(session, (i.id for i in found))


async def _incident(session: AsyncSession, incident_id: int) -> Incident:
    incident = await repo.get_incident(session, incident_id)
    if incident is None:
        raise NotFound(f"incident {incident_id} does not exist")
    return incident


def _note_text(note: str | None) -> str | None:
    if note is None:
        return None
    text = note.strip()
    if len(text) > NOTE_CHARS:
        raise InvalidInput(f"a note holds at most {NOTE_CHARS} characters", field="note")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise InvalidInput("a note must not hold control characters", field="note")
    return text or None


async def acknowledge(
    session: AsyncSession,
    incident_id: int,
    by: str,
    note: str | None = None,
    now: datetime | None = None,
) -> Incident:
    """Someone is on it: no more repeats. Resolved incidents cannot be acknowledged."""
    now = now or datetime.now(UTC)
    text = _note_text(note)
    incident = await _incident(session, incident_id)
    if incident.state == "resolved":
        raise Conflict(f"incident {incident_id} is already resolved")
    if incident.state == "firing":
        incident.state = "acknowledged"
        incident.acknowledged_at = now
        incident.acknowledged_by = by
    if text:
        await repo.add_note(session, incident.id, by, text, now)
    return incident


async def resolve(
    session: AsyncSession,
    incident_id: int,
    by: str,
    note: str | None = None,
    now: datetime | None = None,
) -> Incident:
    """Closed by hand. Its rule's condition starts over: should it still hold, a new
    incident opens after the rule's `for`."""
    now = now or datetime.now(UTC)
    text = _note_text(note)
    incident = await _incident(session, incident_id)
    if incident.state == "resolved":
        raise Conflict(f"incident {incident_id} is already resolved")
    incident.state = "resolved"
    incident.resolved_at = now
    incident.resolved_by = by
    await repo.forget_state(session, incident.fingerprint)
    if text:
        await repo.add_note(session, incident.id, by, text, now)
    return incident


async def open_incident_problems(session: AsyncSession, shown: int = 10) -> list[str]:
    """Status's lines for unresolved incidents, the most severe first."""
    found = await repo.open_incidents(session)
    order = {"critical": 0, "warning": 1, "info": 2}
    found.sort(key=lambda i: (order.get(i.severity, 3), i.id))
    lines = [
        f"incident {i.id} ({i.severity}{', acknowledged' if i.state == 'acknowledged' else ''}"
        f", since {i.fired_at:%H:%M:%S} UTC): {i.summary}"
        for i in found[:shown]
    ]
    if len(found) > shown:
        lines.append(f"{len(found) - shown} more open incidents (clipwatch incidents list)")
    return lines
