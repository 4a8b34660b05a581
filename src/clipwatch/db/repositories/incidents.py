"""Incidents, their notes, the evaluator's state per rule and labels, and alert groups."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import AlertGroup, AlertState, Incident, IncidentNote

OPEN_STATES = ("firing", "acknowledged")
STATES = ("firing", "acknowledged", "resolved")


# --- the evaluator's state ----------------------------------------------------------------------


async def alert_states(session: AsyncSession) -> dict[str, AlertState]:
    return {s.fingerprint: s for s in (await session.scalars(select(AlertState))).all()}


async def forget_state(session: AsyncSession, fingerprint: str) -> None:
    await session.execute(delete(AlertState).where(AlertState.fingerprint == fingerprint))


# --- incidents ----------------------------------------------------------------------------------


async def open_incidents(session: AsyncSession) -> list[Incident]:
    stmt = select(Incident).where(Incident.state != "resolved").order_by(Incident.id)
    return list((await session.scalars(stmt)).all())


async def incidents_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, Incident]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = await session.scalars(select(Incident).where(Incident.id.in_(wanted)))
    return {i.id: i for i in rows.all()}


async def get_incident(session: AsyncSession, incident_id: int) -> Incident | None:
    return await session.get(Incident, incident_id)


async def add_incident(session: AsyncSession, **values: Any) -> Incident:
    incident = Incident(**values)
    session.add(incident)
    await session.flush()
    return incident


async def list_incidents(
    session: AsyncSession,
    *,
    states: Sequence[str] = (),
    before_id: int | None = None,
    limit: int = 50,
) -> list[Incident]:
    """Newest first; `before_id` continues a walk (keyset on id)."""
    stmt = select(Incident)
    if states:
        stmt = stmt.where(Incident.state.in_(list(states)))
    if before_id is not None:
        stmt = stmt.where(Incident.id < before_id)
    stmt = stmt.order_by(Incident.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def open_counts(session: AsyncSession) -> dict[str, int]:
    """Unresolved incidents per severity."""
    stmt = (
        select(Incident.severity, func.count())
        .where(Incident.state != "resolved")
        .group_by(Incident.severity)
    )
    return {severity: int(n) for severity, n in (await session.execute(stmt)).all()}


async def add_note(
    session: AsyncSession, incident_id: int, author: str, text: str, at: datetime
) -> IncidentNote:
    note = IncidentNote(incident_id=incident_id, author=author, text=text, created_at=at)
    session.add(note)
    await session.flush()
    return note


async def notes_of(
    session: AsyncSession, incident_ids: Iterable[int]
) -> dict[int, list[IncidentNote]]:
    wanted = list(set(incident_ids))
    notes: dict[int, list[IncidentNote]] = {i: [] for i in wanted}
    if wanted:
        stmt = (
            select(IncidentNote)
            .where(IncidentNote.incident_id.in_(wanted))
            .order_by(IncidentNote.id)
        )
        for note in (await session.scalars(stmt)).all():
            notes[note.incident_id].append(note)
    return notes


# --- alert groups -------------------------------------------------------------------------------


async def alert_groups(session: AsyncSession) -> dict[tuple[str, str], AlertGroup]:
    return {(g.receiver, g.group_key): g for g in (await session.scalars(select(AlertGroup))).all()}


async def group(session: AsyncSession, receiver: str, group_key: str) -> AlertGroup:
    """The group's row, created empty when new."""
    found = await session.get(AlertGroup, (receiver, group_key))
    if found is None:
        found = AlertGroup(receiver=receiver, group_key=group_key, notified=[], messages=0)
        session.add(found)
    return found
