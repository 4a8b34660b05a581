"""The console script, run as a user would: one-line errors, exit codes, a working import."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.factories import helix_clip

CLIPWATCH = Path(sys.executable).parent / "clipwatch"


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "CLIPWATCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "CLIPWATCH_SECRET_KEY": "cli-test",
        "CLIPWATCH_LOG_FORMAT": "json",
        **env,
    }
    return subprocess.run(
        [str(CLIPWATCH), *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_db_upgrade_and_import_with_a_bad_line(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "upgrade").returncode == 0
    data = tmp_path / "clips.jsonl"
    data.write_bytes(
        orjson.dumps(helix_clip(id="One"))
        + b"\n"
        + b"{broken\n"
        + orjson.dumps(helix_clip(id="Two"))
        + b"\n"
    )
    result = run(tmp_path, "clips", "import", str(data))
    assert result.returncode == 1
    assert "line 2:" in result.stderr
    assert "2 clips stored (2 new, 0 updated, 0 unchanged), 1 bad lines" in result.stdout
    assert "Traceback" not in result.stderr
    with sqlite3.connect(tmp_path / "cli.db") as db:
        assert sorted(r[0] for r in db.execute("SELECT id FROM clip")) == ["One", "Two"]
    assert run(tmp_path, "db", "reindex").returncode == 0


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "clips", "import", "nope.jsonl")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "nope.jsonl" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "db", "upgrade", CLIPWATCH_DB_POOL_SIZE="0")
    assert result.returncode != 0
    assert result.stderr.strip().startswith("error: CLIPWATCH_DB_POOL_SIZE:")
    assert result.stderr.strip().count("\n") == 0


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "db",
        "upgrade",
        CLIPWATCH_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        CLIPWATCH_DB_POOL_TIMEOUT="2",
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("command", [[], ["serve"], ["db"], ["db", "upgrade"], ["clips", "import"]])
def test_help(tmp_path: Path, command: list[str]) -> None:
    result = run(tmp_path, *command, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


def test_users_and_tokens(tmp_path: Path) -> None:
    created = run(tmp_path, "users", "create", "alice", "--admin")
    assert created.returncode == 0, created.stderr
    assert "user alice created" in created.stdout
    again = run(tmp_path, "users", "create", "alice")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == ["error: a user named 'alice' exists"]
    bad = run(tmp_path, "users", "create", "no spaces please")
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr

    token = run(tmp_path, "tokens", "create", "alice", "--scope", "read", "--name", "ci")
    assert token.returncode == 0, token.stderr
    plaintext = token.stdout.strip()
    assert plaintext.startswith("cw_")
    listed = run(tmp_path, "tokens", "list", "alice")
    assert plaintext[:11] in listed.stdout
    assert plaintext[12:] not in listed.stdout
    with sqlite3.connect(tmp_path / "cli.db") as db:
        stored = db.execute(
            "SELECT prefix, secret_hash, scopes, revoked_at FROM api_token"
        ).fetchall()
    assert [(p, s, r) for p, _, s, r in stored] == [(plaintext[:11], "read", None)]
    assert plaintext not in stored[0][1]

    revoked = run(tmp_path, "tokens", "revoke", plaintext[:11])
    assert revoked.returncode == 0, revoked.stderr
    with sqlite3.connect(tmp_path / "cli.db") as db:
        assert db.execute("SELECT revoked_at FROM api_token").fetchone()[0] is not None
    assert run(tmp_path, "tokens", "create", "nobody").returncode == 1
    assert run(tmp_path, "tokens", "revoke", "cw_00000000").returncode == 1


def test_routes_and_deliveries_commands(tmp_path: Path) -> None:
    assert run(tmp_path, "users", "create", "owner").returncode == 0
    hook = "https://discord.com/api/webhooks/123456789012345678/" + "t" * 68
    bad = run(tmp_path, "routes", "add", "owner", "clips", hook.replace("discord.com", "x.example"))
    assert bad.returncode == 1
    assert "t" * 68 not in bad.stderr
    # No Discord behind this URL: the webhook check (tested against the simulator in
    # tests/discord/test_webhook_check.py) is turned off here.
    added = run(
        tmp_path,
        "routes",
        "add",
        "owner",
        "clips",
        hook,
        "--min-views",
        "50",
        "--channel",
        "Foo",
        CLIPWATCH_WEBHOOK_CHECK="false",
    )
    assert added.returncode == 0, added.stderr
    assert "route 1 (clips) added for owner" in added.stdout
    listed = run(tmp_path, "routes", "list")
    assert "123456789012345678" in listed.stdout
    assert "hidden" in listed.stdout
    assert "t" * 68 not in listed.stdout
    with sqlite3.connect(tmp_path / "cli.db") as db:
        sealed = db.execute(
            "SELECT webhook_token_sealed, user_id FROM notification_route"
        ).fetchone()
    assert "t" * 68 not in sealed[0]
    assert sealed[1] == 1
    assert "no delivery" in run(tmp_path, "deliveries", "retry", "7").stderr
    assert run(tmp_path, "deliveries", "list", "--dead").returncode == 0
    assert run(tmp_path, "routes", "remove", "1").returncode == 0
    assert run(tmp_path, "routes", "remove", "1").returncode == 1
