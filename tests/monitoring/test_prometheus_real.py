"""The real parts: a Prometheus scraping a running `clipwatch serve` (with ops/prometheus's
rules loaded and evaluated), and an Alertmanager whose alerts become clipwatch incidents
through POST /api/v1/alerts/alertmanager. Both servers are Debian's packages, started here
on spare ports with their configuration and data in tmp_path."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from clipwatch.db.repositories import incidents as repo
from tests.conftest import TEST_SECRET, empty_tables
from tests.monitoring.prometheus_tools import OPS, alertmanager, prometheus, wait_for
from tests.monitoring.test_ops_rules import exposed_names
from tests.processes import serving, twitch_simulator

SCRAPE_DEADLINE_S = 60.0
ALERT_DEADLINE_S = 60.0
TOKEN = "am-real-token-9876543210"
STATES = {"open": ("firing", "acknowledged"), "resolved": ("resolved",)}


async def _empty(url: str) -> None:
    engine = create_engine(load_settings(database_url=url, secret_key=TEST_SECRET))
    try:
        await empty_tables(engine)
    finally:
        await engine.dispose()


def test_prometheus_scrapes_clipwatch_and_evaluates_the_rules(
    database_url: str, tmp_path: Path
) -> None:
    asyncio.run(_empty(database_url))
    with (
        twitch_simulator() as twitch,
        serving(tmp_path, twitch.env(database_url), "--no-worker") as (base, _server),
    ):
        # Some traffic, so the HTTP series exist.
        for path in ("/healthz", "/api/v1/clips", "/api/v1/nothing-here"):
            httpx.get(base + path, timeout=10)
        target = urlsplit(base).netloc
        config = f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {OPS / "prometheus" / "alerts.yml"}
scrape_configs:
  - job_name: clipwatch
    static_configs:
      - targets: ["{target}"]
"""
        with prometheus(tmp_path / "prometheus", config) as (prom, prom_process):

            def clipwatch_series() -> set[str]:
                answer = httpx.get(
                    f"{prom}/api/v1/query",
                    params={
                        "query": 'count by (__name__) ({job="clipwatch", __name__=~"clipwatch_.+"})'
                    },
                    timeout=5,
                ).json()
                assert answer["status"] == "success", answer
                return {r["metric"]["__name__"] for r in answer["data"]["result"]}

            names = wait_for(
                lambda: (
                    (found := clipwatch_series())
                    and "clipwatch_http_requests_total" in found
                    and found
                ),
                "Prometheus finding clipwatch_* series of the target",
                SCRAPE_DEADLINE_S,
                prom_process,
            )
            assert {
                "clipwatch_http_requests_total",
                "clipwatch_http_request_duration_seconds_bucket",
                "clipwatch_cache_hits_total",
                "clipwatch_db_pool_connections",
            } <= names, names
            # What the name test models is what Prometheus really finds.
            assert names <= exposed_names(), names - exposed_names()
            routes = httpx.get(
                f"{prom}/api/v1/query",
                params={"query": 'clipwatch_http_requests_total{job="clipwatch"}'},
                timeout=5,
            ).json()["data"]["result"]
            labels = {r["metric"]["route"] for r in routes}
            assert {"/api/v1/clips", "unmatched"} <= labels, labels
            assert not any("nothing-here" in label for label in labels)

            def rules_evaluated() -> list[dict[str, Any]] | None:
                groups = httpx.get(f"{prom}/api/v1/rules", timeout=5).json()["data"]["groups"]
                rules = [r for g in groups for r in g["rules"]]
                done = rules and not any(r["lastEvaluation"].startswith("0001") for r in rules)
                return rules if done else None

            rules = wait_for(
                rules_evaluated, "the rules evaluated", SCRAPE_DEADLINE_S, prom_process
            )
            assert len(rules) == 10
            assert [r for r in rules if r["health"] != "ok"] == []


async def _incidents(url: str, state: str) -> list[dict[str, Any]]:
    engine = create_engine(load_settings(database_url=url, secret_key=TEST_SECRET))
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            found = await repo.list_incidents(session, states=STATES[state])
            return [
                {
                    "id": i.id,
                    "rule": i.rule,
                    "severity": i.severity,
                    "summary": i.summary,
                    "labels": i.labels,
                    "state": i.state,
                }
                for i in found
            ]
    finally:
        await engine.dispose()


def incidents(url: str, state: str) -> list[dict[str, Any]]:
    """The incidents in clipwatch's database, newest first."""
    return asyncio.run(_incidents(url, state))


def test_an_alertmanager_alert_becomes_an_incident_and_resolves(
    database_url: str, tmp_path: Path
) -> None:
    asyncio.run(_empty(database_url))
    token_file = tmp_path / "alertmanager_token"
    token_file.write_text(TOKEN + "\n")
    env_extra = {"CLIPWATCH_ALERTMANAGER_TOKEN": TOKEN, "CLIPWATCH_LOG_FORMAT": "json"}
    with (
        twitch_simulator() as twitch,
        serving(tmp_path, twitch.env(database_url, **env_extra), "--no-worker") as (base, _server),
    ):
        config = f"""
route:
  receiver: clipwatch
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: clipwatch
    webhook_configs:
      - url: {base}/api/v1/alerts/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {token_file}
"""
        with alertmanager(tmp_path / "alertmanager", config) as (am, am_process):
            started = datetime.now(UTC).isoformat()
            sent = {
                "labels": {"alertname": "clipwatch_real_test", "severity": "critical"},
                "annotations": {"summary": "a real Alertmanager said so"},
                "startsAt": started,
                "generatorURL": "http://prometheus.example/graph",
            }
            posted = httpx.post(f"{am}/api/v2/alerts", json=[sent], timeout=10)
            assert posted.status_code == 200, posted.text

            def opened() -> dict[str, Any] | None:
                found = incidents(database_url, "open")
                return found[0] if found else None

            incident = wait_for(opened, "the incident opened", ALERT_DEADLINE_S, am_process)
            assert incident["rule"] == "alertmanager:clipwatch_real_test"
            assert incident["severity"] == "critical"
            assert incident["summary"] == "a real Alertmanager said so"
            assert incident["labels"] == sent["labels"]

            # Ended: Alertmanager sends it resolved (send_resolved), and the incident resolves.
            ended = {**sent, "endsAt": datetime.now(UTC).isoformat()}
            posted = httpx.post(f"{am}/api/v2/alerts", json=[ended], timeout=10)
            assert posted.status_code == 200, posted.text
            resolved = wait_for(
                lambda: incidents(database_url, "resolved"),
                "the incident resolved",
                ALERT_DEADLINE_S,
                am_process,
            )
            assert [i["id"] for i in resolved] == [incident["id"]]
            assert incidents(database_url, "open") == []
    log = (tmp_path / "alertmanager" / "alertmanager.log").read_text()
    assert "Notify for alerts failed" not in log, log[-3000:]
