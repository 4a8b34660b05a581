"""Incidents (admins): list, acknowledge, resolve; and the alert rules in force."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from clipwatch.api.auth import Admin
from clipwatch.api.deps import Session, State
from clipwatch.api.errors import problem_responses
from clipwatch.api.incident_schemas import (
    AlertRuleRead,
    AlertRules,
    IncidentAction,
    IncidentPage,
    IncidentRead,
)
from clipwatch.api.routers.me import Id
from clipwatch.db.repositories import incidents as repo
from clipwatch.monitoring.alerts import service
from clipwatch.monitoring.alerts.setup import cached_config

router = APIRouter(tags=["incidents"])
ADMIN = problem_responses(
    {401: "No valid credentials", 403: "Admins only", 422: "Invalid input", 429: "Rate limited"}
)
ACTION = problem_responses(
    {
        401: "No valid credentials",
        403: "Admins only (and the CSRF proof with a session)",
        404: "No such incident",
        409: "Already resolved",
        422: "Invalid input",
        429: "Rate limited",
    }
)


@router.get(
    "/incidents", response_model=IncidentPage, responses=ADMIN, summary="Incidents, newest first"
)
async def list_incidents(
    session: Session,
    _principal: Admin,
    state: Annotated[
        list[Literal["firing", "acknowledged", "resolved", "open"]] | None, Query()
    ] = None,
    before: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> IncidentPage:
    """`state` is repeatable; `open` means firing or acknowledged. `before` (an id) walks
    to older incidents: pass the page's `next_before`."""
    states: list[str] = []
    for name in state or []:
        states += list(repo.OPEN_STATES) if name == "open" else [name]
    found, notes = await service.list_incidents(
        session, states=sorted(set(states)), before_id=before, limit=limit + 1
    )
    page = found[:limit]
    return IncidentPage(
        data=[IncidentRead.from_incident(i, notes.get(i.id, [])) for i in page],
        next_before=page[-1].id if len(found) > limit else None,
    )


@router.post(
    "/incidents/{incident_id}/ack",
    response_model=IncidentRead,
    responses=ACTION,
    summary="Acknowledge: someone is on it (no more repeats)",
)
async def acknowledge_incident(
    session: Session, principal: Admin, incident_id: Id, body: IncidentAction | None = None
) -> IncidentRead:
    incident = await service.acknowledge(
        session, incident_id, principal.name, body.note if body else None
    )
    notes = await repo.notes_of(session, [incident.id])
    return IncidentRead.from_incident(incident, notes[incident.id])


@router.post(
    "/incidents/{incident_id}/resolve",
    response_model=IncidentRead,
    responses=ACTION,
    summary="Resolve by hand (a condition still true opens a new incident after its `for`)",
)
async def resolve_incident(
    session: Session, principal: Admin, incident_id: Id, body: IncidentAction | None = None
) -> IncidentRead:
    incident = await service.resolve(
        session, incident_id, principal.name, body.note if body else None
    )
    notes = await repo.notes_of(session, [incident.id])
    return IncidentRead.from_incident(incident, notes[incident.id])


@router.get(
    "/alerts/rules", response_model=AlertRules, responses=ADMIN, summary="The alert rules in force"
)
async def list_alert_rules(state: State, _principal: Admin) -> AlertRules:
    config = cached_config(state.settings)
    return AlertRules(
        source=config.source,
        group_interval_seconds=config.grouping.group_interval.total_seconds(),
        repeat_interval_seconds=config.grouping.repeat_interval.total_seconds(),
        data=[
            AlertRuleRead.from_rule(r, config.receivers_for(r.severity, dict(r.labels)))
            for r in config.rules
        ],
    )
