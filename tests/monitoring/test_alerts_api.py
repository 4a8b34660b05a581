"""`/api/v1/incidents` and `/api/v1/alerts/rules` (admins), and `clipwatch incidents`."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service as accounts
from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import incidents as repo
from clipwatch.monitoring.alerts.evaluator import fingerprint
from tests.monitoring.alerts_helpers import START

Sessions = async_sessionmaker[AsyncSession]


async def bearer(sessionmaker: Sessions, name: str, *, admin: bool) -> dict[str, str]:
    async with session_scope(sessionmaker) as session:
        user = await accounts.create_user(session, name, admin=admin)
        scopes = frozenset({"read", "write", "admin"} if admin else {"read", "write"})
        _, plaintext = await accounts.create_token(session, user, name="t", scopes=scopes)
    return {"Authorization": f"Bearer {plaintext}"}


async def open_incidents(sessionmaker: Sessions, count: int) -> list[int]:
    ids = []
    async with session_scope(sessionmaker) as session:
        for n in range(count):
            labels = {"channel": f"c{n}"}
            incident = await repo.add_incident(
                session,
                fingerprint=fingerprint("channel_sync_lagging", labels),
                rule="channel_sync_lagging",
                severity="warning",
                labels=labels,
                summary=f"channel c{n} lags",
                state="firing",
                first_seen_at=START,
                fired_at=START,
                last_seen_at=START,
            )
            ids.append(incident.id)
    return ids


async def test_admins_list_ack_and_resolve(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    admin = await bearer(sessionmaker, "boss", admin=True)
    ids = await open_incidents(sessionmaker, 5)
    page = (await client.get("/api/v1/incidents", params={"limit": 2}, headers=admin)).json()
    assert [i["id"] for i in page["data"]] == [ids[4], ids[3]]
    rest = await client.get(
        "/api/v1/incidents", params={"limit": 10, "before": page["next_before"]}, headers=admin
    )
    assert [i["id"] for i in rest.json()["data"]] == [ids[2], ids[1], ids[0]]
    assert rest.json()["next_before"] is None

    acked = await client.post(
        f"/api/v1/incidents/{ids[0]}/ack", json={"note": "on it"}, headers=admin
    )
    assert acked.status_code == 200, acked.text
    assert (acked.json()["state"], acked.json()["acknowledged_by"]) == ("acknowledged", "boss")
    done = await client.post(f"/api/v1/incidents/{ids[0]}/resolve", headers=admin)
    assert done.json()["state"] == "resolved"
    assert [n["text"] for n in done.json()["notes"]] == ["on it"]

    again = await client.post(f"/api/v1/incidents/{ids[0]}/resolve", headers=admin)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    missing = await client.post("/api/v1/incidents/999999/ack", headers=admin)
    assert missing.status_code == 404
    for bad in ("1.0", "01", "+1", "0"):
        answer = await client.post(f"/api/v1/incidents/{bad}/ack", headers=admin)
        assert answer.status_code == 422, bad

    resolved = await client.get("/api/v1/incidents", params={"state": "resolved"}, headers=admin)
    assert [i["id"] for i in resolved.json()["data"]] == [ids[0]]
    open_now = await client.get("/api/v1/incidents", params={"state": "open"}, headers=admin)
    assert len(open_now.json()["data"]) == 4
    bad_state = await client.get("/api/v1/incidents", params={"state": "gone"}, headers=admin)
    assert bad_state.status_code == 422


async def test_members_and_strangers_are_refused(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    member = await bearer(sessionmaker, "member", admin=False)
    [incident_id] = await open_incidents(sessionmaker, 1)
    assert (await client.get("/api/v1/incidents")).status_code == 401
    assert (await client.get("/api/v1/incidents", headers=member)).status_code == 403
    refused = await client.post(f"/api/v1/incidents/{incident_id}/resolve", headers=member)
    assert refused.status_code == 403
    assert (await client.get("/api/v1/alerts/rules", headers=member)).status_code == 403


async def test_the_rules_in_force(client: httpx.AsyncClient, sessionmaker: Sessions) -> None:
    admin = await bearer(sessionmaker, "boss", admin=True)
    answer = await client.get("/api/v1/alerts/rules", headers=admin)
    assert answer.status_code == 200
    body = answer.json()
    assert body["source"] == "default_rules.yaml"
    rules = {r["name"]: r for r in body["data"]}
    assert rules["outbox_stuck"]["for_seconds"] == 120
    assert rules["outbox_stuck"]["receivers"] == ["log"]


async def test_open_incidents_are_status_problems(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    [incident_id] = await open_incidents(sessionmaker, 1)
    problems = (await client.get("/api/v1/status")).json()["problems"]
    assert any(p.startswith(f"incident {incident_id} (warning") for p in problems), problems


def test_the_schema_refuses_the_notes_the_service_refuses() -> None:
    """Schemathesis found a note with a control character that the schema allowed and the
    service answered 422: the schema now says what the service says."""
    import re

    from clipwatch.api.incident_schemas import IncidentAction
    from clipwatch.monitoring.alerts.service import _note_text

    pattern = re.compile(
        IncidentAction.model_json_schema()["properties"]["note"]["anyOf"][0]["pattern"]
    )
    for note in ("fine", "two\nlines\tand a tab", "bell\x07", "nul\x00", "esc\x1b[0m", "cr\r"):
        try:
            _note_text(note)
            service_takes = True
        except Exception:
            service_takes = False
        if pattern.match(note):  # what the schema allows, the service takes
            assert service_takes, repr(note)
    assert not pattern.match("bell\x07")
