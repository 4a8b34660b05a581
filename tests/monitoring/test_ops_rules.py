"""ops/: the PromQL rules, their unit tests and the Grafana dashboard hold to the app.

Every clipwatch_* name the rules and the dashboard use is a series the app exposes (read
from prometheus_client's registry, suffixes included), `promtool check rules` and `promtool
test rules` pass, the unit tests pin each rule's `for` (a rule whose `for` changes fails
them), and the example configurations are accepted by promtool and amtool.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import clipwatch.monitoring.metrics  # noqa: F401  (registers every metric)
from clipwatch.monitoring.alerts.rules import load_rules
from tests.monitoring.prometheus_tools import OPS, binary

RULES = OPS / "prometheus" / "alerts.yml"
RULES_TEST = OPS / "prometheus" / "alerts_test.yml"
PROMETHEUS_CONFIG = OPS / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = OPS / "alertmanager" / "alertmanager.yml"
DASHBOARD = OPS / "grafana" / "clipwatch.json"
METRIC_NAME = re.compile(r"\bclipwatch_[a-z0-9_]+\b")
# The suffixes each family's samples take in the text format.
# (prometheus_client adds `_created`, the child's creation time, to counters and histograms.)
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def exposed_names() -> set[str]:
    """Every sample name the app's registry can expose (a family without samples yet, such
    as a labelled counter nobody has counted, counts by its family's name and type)."""
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def rule_documents() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def dashboard_queries() -> list[str]:
    """The panels' queries, and the selectors of the variables' label_values(...)."""
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            queries.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", query["query"]))
    return queries


def used_names(text: str) -> set[str]:
    return set(METRIC_NAME.findall(text))


def test_every_metric_the_rules_and_dashboard_use_exists() -> None:
    exposed = exposed_names()
    rules = {n for r in rule_documents() for n in used_names(r["expr"])}
    board = {n for q in dashboard_queries() for n in used_names(q)}
    assert len(rules) >= 10, rules
    assert len(board) >= 25, board
    assert rules - exposed == set(), "alerts.yml names metrics the app does not expose"
    assert board - exposed == set(), "the dashboard names metrics the app does not expose"


def test_the_registry_reading_knows_suffixes() -> None:
    exposed = exposed_names()
    assert {"clipwatch_http_requests_total", "clipwatch_cache_hits_total"} <= exposed
    assert "clipwatch_http_request_duration_seconds_bucket" in exposed
    assert "clipwatch_twitch_budget_remaining" in exposed
    assert "clipwatch_http_requests" not in exposed  # a counter is *_total (and *_created)
    assert "clipwatch_twitch_budget_remaining_total" not in exposed


def test_rules_mirror_the_built_in_ones() -> None:
    built_in = {r.name: r for r in load_rules().rules}
    ours = {r["alert"]: r for r in rule_documents()}
    assert set(ours) == set(built_in)
    for name, rule in ours.items():
        assert rule["labels"]["severity"] == built_in[name].severity, name
        assert "summary" in rule["annotations"], name


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promtool_checks_and_tests_the_rules() -> None:
    checked = promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "10 rules found" in checked.stdout
    tested = promtool("test", "rules", RULES_TEST)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def mutated(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule with its `for` gone, or one minute of it when it had none."""
    changed = dict(rule)
    if changed.pop("for", None) is None:
        changed["for"] = "1m"
    return changed


@pytest.mark.parametrize("alert", [r["alert"] for r in rule_documents()])
def test_the_unit_tests_pin_each_rules_for(alert: str, tmp_path: Path) -> None:
    document = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        group["rules"] = [mutated(r) if r["alert"] == alert else r for r in group["rules"]]
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(document))
    (tmp_path / "alerts_test.yml").write_text(RULES_TEST.read_text())
    tested = promtool("test", "rules", tmp_path / "alerts_test.yml")
    assert tested.returncode != 0, f"alerts_test.yml passes with {alert}'s `for` changed"
    assert f"alertname: {alert}," in tested.stdout + tested.stderr


def test_dashboard_queries_are_promql(tmp_path: Path) -> None:
    """Each panel's query, with Grafana's variables filled in, as a recording rule that
    promtool parses."""
    rules = [
        {
            "record": f"dashboard:query_{n}",
            "expr": q.replace("$__rate_interval", "1m").replace("$job", "clipwatch.*"),
        }
        for n, q in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = promtool("check", "rules", path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    board = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for topic in ("latency", "sync lag", "outbox", "deliveries", "discord 429", "twitch budget",
                  "cache hit", "worker task", "open incidents"):  # fmt: skip
        assert topic in titles, topic


def test_example_configurations_are_accepted(tmp_path: Path) -> None:
    checked = promtool("check", "config", PROMETHEUS_CONFIG)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # amtool reads the token file only when sending; the file's absence is no error here.
    amtool = subprocess.run(
        [binary("amtool"), "check-config", str(ALERTMANAGER_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert amtool.returncode == 0, amtool.stdout + amtool.stderr
