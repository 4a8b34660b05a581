"""The alert configuration a process runs with, from its settings."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from clipwatch.config import Settings
from clipwatch.monitoring.alerts.rules import AlertConfig, load_rules

PREFIX = "CLIPWATCH_"


def _hosts(value: str) -> list[str]:
    return [h.strip() for h in value.split(",") if h.strip()]


def config_from_settings(settings: Settings) -> AlertConfig:
    """The rules of CLIPWATCH_ALERT_RULES_FILE (else the shipped set), their receivers'
    URLs looked up in the settings (then the environment); RulesError in one line."""

    def lookup(name: str) -> str:
        if name.startswith(PREFIX):
            value = getattr(settings, name.removeprefix(PREFIX).lower(), None)
            if isinstance(value, str):
                return value
        return os.environ.get(name, "")

    path = Path(settings.alert_rules_file) if settings.alert_rules_file else None
    return load_rules(
        path,
        lookup=lookup,
        discord_hosts=_hosts(settings.webhook_allowed_hosts),
        webhook_hosts=_hosts(settings.alert_webhook_hosts),
    )


@lru_cache(maxsize=4)
def cached_config(settings: Settings) -> AlertConfig:
    """The same, read once per settings (the API's rules endpoint)."""
    return config_from_settings(settings)
