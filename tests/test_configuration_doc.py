"""docs/configuration.md is what `clipwatch config reference` prints from `Settings`, and every
setting says what it does."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipwatch.cli.config import GROUP_STARTS, REGENERATE, field_groups, reference_markdown
from clipwatch.config import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_setting_has_a_description() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert missing == [], f"settings without Field(description=...): {missing}"


def test_every_setting_is_in_one_group_of_the_reference() -> None:
    grouped = [name for _group, fields in field_groups() for name, _field in fields]
    assert grouped == list(Settings.model_fields)
    assert [group for group, _fields in field_groups()] == list(GROUP_STARTS.values())


def test_the_configuration_reference_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == reference_markdown(), (
        f"docs/configuration.md is out of date with Settings: run `{REGENERATE}`"
    )


def test_config_show_redacts_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from clipwatch.cli.main import app

    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    secrets = {
        "CLIPWATCH_TWITCH_CLIENT_SECRET": "twitch-client-secret-value",
        "CLIPWATCH_DISCORD_BOT_TOKEN": "discord-bot-token-value",
        "CLIPWATCH_ALERT_WEBHOOK_URL": "https://hooks.example/alert-webhook-secret",
        "CLIPWATCH_DATABASE_URL": "postgresql+asyncpg://owner:db-password-value@db.example/cw",
    }
    result = CliRunner().invoke(app, ["config", "show"], env={**secrets, "COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    for value in ("twitch-client-secret-value", "discord-bot-token-value", "db-password-value"):
        assert value not in result.output
    assert "alert-webhook-secret" not in result.output
    lines = {line.split()[0]: line.split()[1:] for line in result.output.splitlines() if line}
    assert lines["CLIPWATCH_TWITCH_CLIENT_SECRET"] == ["[redacted]", "environment"]
    assert lines["CLIPWATCH_DATABASE_URL"] == [
        "postgresql+asyncpg://[redacted]@db.example/cw",
        "environment",
    ]
    assert lines["CLIPWATCH_DB_POOL_SIZE"] == ["10", "default"]
