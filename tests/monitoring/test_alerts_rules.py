"""Rule files: the shipped set loads, and a bad file stops start-up with one line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from clipwatch.monitoring.alerts.rules import RulesError, load_rules, parse_duration
from clipwatch.monitoring.alerts.signals import SIGNALS

DISCORD_URL = (
    "https://discord.com/api/webhooks/1234567890123456789/"
    "Xk3vQ9bZ7mN2pL5tR8wY1cF4hJ6gD0sA-eU_iO3nB7qK2xV9zM5rT8yW1lP4jH6f"
)
REQUIRED = {
    "twitch_auth_failing",
    "twitch_budget_exhausted",
    "channel_sync_lagging",
    "worker_task_down",
    "outbox_stuck",
    "dead_letters_rising",
    "route_disabled",
    "redis_down",
    "db_pool_saturated",
    "api_error_rate",
}
RULE = """
rules:
  - name: r
    signal: outbox_oldest_pending_seconds
    threshold: 600
    for: 2m
    summary: "{value} s"
"""


def test_the_shipped_rules_load_and_watch_known_signals() -> None:
    config = load_rules()
    assert {r.name for r in config.rules} >= REQUIRED
    assert {r.signal for r in config.rules} <= set(SIGNALS)
    outbox = config.rule("outbox_stuck")
    assert outbox is not None
    assert outbox.threshold == 600
    assert outbox.for_ == timedelta(minutes=2)
    # Without URLs the Discord and webhook receivers are off; the log always is on.
    assert config.receivers_for("critical", {}) == ["log"]


def test_receivers_come_from_settings_and_routes_filter_by_severity() -> None:
    urls = {"CLIPWATCH_ALERT_DISCORD_WEBHOOK_URL": DISCORD_URL}
    config = load_rules(lookup=lambda name: urls.get(name, ""), discord_hosts=["discord.com"])
    assert config.receivers_for("critical", {}) == ["log", "discord"]
    assert config.receivers_for("info", {}) == ["log"]
    assert "Xk3vQ9" not in repr(config.targets["discord"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [", "line"),
        ("- 1", "mapping"),
        (RULE.replace("2m", "soon"), "rules(r).for: 'soon' is not a duration"),
        (RULE.replace("threshold: 600", "threshold: lots"), "rules(r).threshold"),
        (RULE.replace('"{value} s"', '"{value.__class__}"'), "only plain names"),
        (RULE + "    severity: page\n", "rules(r).severity"),
        (RULE + "    labls: {}\n", "rules(r).labls: Extra inputs"),
        (RULE.replace("name: r", "name: R!"), "rules(R!).name"),
        (RULE + RULE.replace("rules:\n", ""), "rule 'r' is defined twice"),
        (RULE + "routes:\n  - receiver: pager\n", "receiver 'pager', which is not defined"),
        (
            RULE + "receivers:\n  - {name: hook, type: webhook, url: 'https://10.0.0.1/x'}\n",
            "receiver hook: CLIPWATCH_ALERT_WEBHOOK_HOSTS is empty",
        ),
        (
            RULE + f"receivers:\n  - {{name: d, type: discord, url: '{DISCORD_URL}'}}\n",
            "receiver d: not a Discord webhook URL: the host must be one of",
        ),
    ],
)
def test_a_bad_rules_file_is_one_line_naming_the_place(text: str, expected: str) -> None:
    with pytest.raises(RulesError) as caught:
        load_rules(text=text, discord_hosts=["discordapp.com"])
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert "Xk3vQ9" not in message  # a webhook's token never appears


def test_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="CLIPWATCH_ALERT_RULES_FILE: cannot read"):
        load_rules(tmp_path / "nope.yaml")


def test_a_webhook_receiver_must_name_an_allowed_host() -> None:
    text = RULE + (
        "receivers:\n  - {name: hook, type: webhook, url: 'https://hooks.example.org/in'}\n"
        "routes:\n  - receiver: hook\n"
    )
    config = load_rules(text=text, webhook_hosts=["hooks.example.org"])
    assert config.receivers_for("warning", {}) == ["hook"]
    with pytest.raises(RulesError, match="host must be one of"):
        load_rules(text=text, webhook_hosts=["other.example.org"])
    with pytest.raises(RulesError, match="user name or password"):
        load_rules(
            text=text.replace("https://", "https://u:p@"), webhook_hosts=["hooks.example.org"]
        )


def test_summaries_fill_what_they_know_and_keep_the_rest() -> None:
    rule = load_rules(
        text=RULE.replace('"{value} s"', '"{channel}: {value} > {threshold} {x}"')
    ).rules[0]
    assert rule.render_summary({"channel": "abc", "value": 700.0}) == "abc: 700 > 600 {x}"


def test_durations() -> None:
    assert parse_duration("90") == timedelta(seconds=90)
    assert parse_duration("1.5m") == timedelta(seconds=90)
    assert parse_duration(0) == timedelta(0)
    with pytest.raises(ValueError, match="30 days"):
        parse_duration("400d")
