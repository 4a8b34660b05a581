from __future__ import annotations

from pathlib import Path

import pytest

from clipwatch.config import load_settings
from clipwatch.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLIPWATCH_DATABASE_URL", "mysql://somewhere/db"),
        ("CLIPWATCH_DB_POOL_SIZE", "0"),
        ("CLIPWATCH_LOG_LEVEL", "loud"),
        ("CLIPWATCH_REDIS_URL", "http://not-redis"),
        ("CLIPWATCH_BASE_URL", "ftp://x"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith(name + ":")
    assert "\n" not in message


def test_demo_mode_follows_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLIPWATCH_TWITCH_CLIENT_ID", raising=False)
    assert load_settings().demo_mode
    live = load_settings(twitch_client_id="id", twitch_client_secret="secret")
    assert not live.demo_mode
    assert load_settings(twitch_client_id="id", twitch_client_secret="s", demo=True).demo_mode
    assert "secret" not in repr(live)


def test_secret_key_is_generated_once(tmp_path: Path) -> None:
    first = load_settings(var_dir=tmp_path).signing_key
    second = load_settings(var_dir=tmp_path).signing_key
    assert first == second
    assert len(first) >= 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    assert load_settings(secret_key="given", var_dir=tmp_path).signing_key == b"given"
