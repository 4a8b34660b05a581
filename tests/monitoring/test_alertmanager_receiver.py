"""POST /api/v1/alerts/alertmanager: Alertmanager's webhook payload (version 4) becomes
incidents, behind CLIPWATCH_ALERTMANAGER_TOKEN, strictly validated, on both databases."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.api.routers.alertmanager import (
    AlertmanagerWebhook,
    _apply,
    _instant,
    external_alerts,
)
from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Incident
from clipwatch.monitoring.alerts.alertmanager import (
    Applied,
    alert_fingerprint,
    apply_alerts,
    severity_of,
)
from clipwatch.monitoring.alerts.evaluator import EvaluationReport, apply_signals
from clipwatch.monitoring.alerts.notify import plan_notices
from clipwatch.monitoring.alerts.rules import load_rules
from tests.conftest import app_client
from tests.monitoring.test_alerts_api import bearer

PATH = "/api/v1/alerts/alertmanager"
TOKEN = "am-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Sessions = async_sessionmaker[AsyncSession]


def alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    labels = {"alertname": "outbox_stuck", "severity": "critical", **labels}
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{labels['alertname']} on {labels.get('instance', 'x')}"},
        "startsAt": "2026-11-26T17:00:00.123456789Z",
        "endsAt": "2026-11-26T17:10:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
        "fingerprint": "6b7c8a9d0e1f2a3b",
    }


def webhook(*alerts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="outbox_stuck"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "clipwatch",
        "groupLabels": {"alertname": "outbox_stuck"},
        "commonLabels": {"alertname": "outbox_stuck"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
        **extra,
    }


@pytest.fixture
def am_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"alertmanager_token": TOKEN})


@pytest.fixture
async def am_client(
    am_settings: Settings, engine: AsyncEngine, cache: CacheManager
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(am_settings, cache=cache) as http:
        yield http


async def incidents(sessionmaker: Sessions) -> list[Incident]:
    async with session_scope(sessionmaker) as session:
        return list((await session.scalars(select(Incident).order_by(Incident.id))).all())


async def test_firing_opens_repeats_count_and_resolved_resolves(
    am_client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    first = await am_client.post(PATH, json=webhook(alert(instance="w1")), headers=AUTH)
    assert first.status_code == 200, first.text
    opened = first.json()["opened"]
    assert len(opened) == 1
    assert first.json()["updated"] == []

    # Alertmanager repeats the group (and sends a second alert of it): no duplicate.
    again = await am_client.post(
        PATH, json=webhook(alert(instance="w1"), alert(instance="w2")), headers=AUTH
    )
    assert again.json()["updated"] == opened
    assert len(again.json()["opened"]) == 1
    found = await incidents(sessionmaker)
    assert [(i.state, i.count) for i in found] == [("firing", 2), ("firing", 1)]
    one = found[0]
    assert one.rule == "alertmanager:outbox_stuck"
    assert one.severity == "critical"
    assert one.labels == {"alertname": "outbox_stuck", "severity": "critical", "instance": "w1"}
    assert one.fingerprint == alert_fingerprint(one.labels)
    assert one.summary == "outbox_stuck on w1"
    assert one.first_seen_at == datetime(2026, 11, 26, 17, 0, 0, 123456, tzinfo=UTC)

    # Admins see it with the others.
    admin = await bearer(sessionmaker, "amadmin", admin=True)
    listed = await am_client.get("/api/v1/incidents", params={"state": "open"}, headers=admin)
    assert listed.status_code == 200, listed.text
    assert {i["rule"] for i in listed.json()["data"]} == {"alertmanager:outbox_stuck"}

    done = await am_client.post(PATH, json=webhook(alert("resolved", instance="w1")), headers=AUTH)
    assert done.json() == {"opened": [], "updated": [], "resolved": opened, "ignored": 0}
    resolved = (await incidents(sessionmaker))[0]
    assert resolved.state == "resolved"
    assert resolved.resolved_at == datetime(2026, 11, 26, 17, 10, tzinfo=UTC)
    assert resolved.resolved_by is None
    # Told twice (a retry): nothing more to do.
    twice = await am_client.post(PATH, json=webhook(alert("resolved", instance="w1")), headers=AUTH)
    assert twice.json()["ignored"] == 1
    # Firing again after its resolution: a new incident.
    back = await am_client.post(PATH, json=webhook(alert(instance="w1")), headers=AUTH)
    assert len(back.json()["opened"]) == 1
    assert back.json()["opened"] != opened


async def test_severity_summary_and_times_are_read_sensibly(
    am_client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    odd = alert(alertname="Disk", severity="page")
    odd["annotations"] = {"description": "line one\nline two\tand\x01more"}
    odd["startsAt"] = "2999-01-01T00:00:00+02:00"  # a clock ahead: never after now
    plain = alert(alertname="Other", severity="whatever")
    plain["annotations"] = {}
    answer = await am_client.post(PATH, json=webhook(odd, plain), headers=AUTH)
    assert answer.status_code == 200, answer.text
    disk, other = await incidents(sessionmaker)
    assert (disk.severity, other.severity) == ("critical", "warning")
    assert disk.summary == "line one line two and more"
    assert other.summary == "Other (from Alertmanager)"
    assert disk.first_seen_at <= datetime.now(UTC)


async def test_built_in_evaluation_leaves_alertmanager_incidents_alone(
    am_client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    """Named like a built-in rule, an Alertmanager incident is still not the evaluator's:
    a clear signal does not resolve it and no built-in receiver is told of it."""
    posted = await am_client.post(
        PATH, json=webhook(alert(alertname="twitch_auth_failing")), headers=AUTH
    )
    assert posted.status_code == 200
    config = load_rules()
    clear = {rule.signal: [] for rule in config.rules}
    now = datetime.now(UTC) + timedelta(hours=1)
    async with session_scope(sessionmaker) as session:
        await apply_signals(session, config, clear, now, EvaluationReport(leader=True))
        assert await plan_notices(session, config, now) == []
    (incident,) = await incidents(sessionmaker)
    assert incident.state == "firing"


async def test_the_token_guards_the_endpoint(
    client: httpx.AsyncClient, am_client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    body = webhook(alert())
    off = await client.post(PATH, json=body, headers=AUTH)
    assert off.status_code == 404, off.text
    assert off.headers["content-type"] == "application/problem+json"
    assert "CLIPWATCH_ALERTMANAGER_TOKEN" in off.json()["detail"]

    admin = await bearer(sessionmaker, "notam", admin=True)
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}x"}, admin, {"Authorization": TOKEN}):
        refused = await am_client.post(PATH, json=body, headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
    assert await incidents(sessionmaker) == []


def _set(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (("version",), "3", "version", "must be '4'"),
        (("version",), 4, "version", "must be '4'"),
        (("status",), "pending", "status", "must be"),
        (("alerts",), [], "alerts", "at least 1"),
        (("alerts", 0, "startsAt"), "2026-11-26T17:00:00", "alerts.0.startsAt", "time zone"),
        (("alerts", 0, "startsAt"), 1764176400, "alerts.0.startsAt", "time zone"),
        (("alerts", 0, "labels", "bad-name"), "x", "alerts.0.labels", "label names"),
        (("alerts", 0, "labels", "instance"), 5, "alerts.0.labels.instance", "must be text"),
        (("alerts", 0, "labels", "instance"), "a\x00b", "alerts.0.labels", "NUL"),
        (("alerts", 0, "annotations", "summary"), "x" * 9000, "alerts.0.annotations", "longer"),
        (("alerts", 0, "labels"), ["alertname"], "alerts.0.labels", "must be an object"),
        (("alerts", 0, "labels", "instance"), "a\ud800", "", "lone surrogate"),
    ],
)
async def test_payloads_are_validated_strictly(
    am_client: httpx.AsyncClient,
    sessionmaker: Sessions,
    path: tuple[Any, ...],
    value: Any,
    field: str,
    words: str,
) -> None:
    # json.dumps escapes what httpx's own encoding cannot write (a lone surrogate).
    body = json.dumps(_set(webhook(alert()), path, value)).encode()
    headers = {**AUTH, "Content-Type": "application/json"}
    answer = await am_client.post(PATH, content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["errors"][0]["field"] == field, problem
    assert words in problem["detail"], problem
    assert await incidents(sessionmaker) == []


async def test_fields_alertmanager_may_add_are_ignored(am_client: httpx.AsyncClient) -> None:
    body = webhook(alert(), someFutureField={"x": 1})
    body["alerts"][0]["anotherOne"] = True
    answer = await am_client.post(PATH, json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text


async def test_the_document_describes_it(am_client: httpx.AsyncClient) -> None:
    document = (await am_client.get("/openapi.json")).json()
    operation = document["paths"][PATH]["post"]
    assert {"200", "401", "404", "422", "429", "413"} <= set(operation["responses"])
    assert operation["security"] == [{"alertmanager": []}]
    assert document["components"]["securitySchemes"]["alertmanager"]["scheme"] == "bearer"
    schemas = document["components"]["schemas"]
    labels = schemas["AlertmanagerAlert"]["properties"]["labels"]
    assert labels["propertyNames"]["pattern"] == "^[a-zA-Z_][a-zA-Z0-9_]*$"
    assert labels["additionalProperties"]["type"] == "string"


async def test_concurrent_posts_of_one_alert_open_one_incident(
    am_client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    """Two Alertmanagers of a pair (or a retry) posting the same new alert at once."""
    body = webhook(alert(instance="race"))
    answers = await asyncio.gather(
        *(am_client.post(PATH, json=body, headers=AUTH) for _ in range(8))
    )
    # SQLite takes one writer at a time: a post that found the others' writes in its way
    # is told to come back (503 + Retry-After, as Alertmanager does on a 5xx), never a 500.
    for answer in answers:
        assert answer.status_code in (200, 503), answer.text
        if answer.status_code == 503:
            assert answer.headers["retry-after"] == "1"
    for answer in answers:
        if answer.status_code == 503:
            again = await am_client.post(PATH, json=body, headers=AUTH)
            assert again.status_code == 200, again.text
    found = await incidents(sessionmaker)
    assert len(found) == 1
    assert found[0].count == 8


def test_instants_are_read_as_alertmanager_writes_them() -> None:
    assert _instant("2026-11-26T17:00:00.123456789Z") == datetime(
        2026, 11, 26, 17, 0, 0, 123456, tzinfo=UTC
    )
    assert _instant("2026-11-26T18:00:00+01:00") == datetime(2026, 11, 26, 17, tzinfo=UTC)
    assert _instant("2016-12-31t23:59:60z") == datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert _instant("0001-01-01T00:00:00Z").year == 1  # Go's zero time: no end yet
    assert _instant("0001-01-01T00:00:00+05:00").year == 1  # not before year 1 in UTC
    for wrong in ("2026-11-26T17:00:00", "2026-11-26 17:00:00Z", "2026-02-30T00:00:00Z", 5):
        with pytest.raises(ValueError, match="time zone"):
            _instant(wrong)


def test_severities_are_read_into_ours() -> None:
    assert [severity_of({"severity": s}) for s in ("Critical", "page", "info", "low", "P3")] == [
        "critical",
        "critical",
        "info",
        "info",
        "warning",
    ]
    assert severity_of({}) == "warning"


async def test_a_post_that_loses_the_race_goes_on_over_the_winners_incident(
    engine: AsyncEngine, sessionmaker: Sessions
) -> None:
    """PostgreSQL: a post whose insert waits on another's uncommitted incident of the same
    fingerprint is refused by the unique index once that commits, and applies again."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: no such race")
    payload = AlertmanagerWebhook.model_validate(webhook(alert(instance="race")))
    alerts = external_alerts(payload)
    now = datetime.now(UTC)

    async def second() -> Applied:
        async with session_scope(sessionmaker) as session:
            return await _apply(session, alerts, now)

    async def waiting_on_a_lock() -> int:
        async with engine.connect() as conn:
            sql = (
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return int((await conn.execute(text(sql))).scalar_one())

    async with sessionmaker() as first, first.begin():
        won = await apply_alerts(first, alerts, now)  # inserted, not committed yet
        racing = asyncio.create_task(second())
        deadline = asyncio.get_running_loop().time() + 10
        while not await waiting_on_a_lock():
            assert not racing.done(), racing
            assert asyncio.get_running_loop().time() < deadline, "the second post never waited"
            await asyncio.sleep(0.02)  # polling interval while waiting on the condition above
    lost = await racing
    assert lost.opened == []
    assert lost.updated == won.opened
    (incident,) = await incidents(sessionmaker)
    assert incident.count == 2
