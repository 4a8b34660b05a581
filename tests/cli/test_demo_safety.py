"""Demo data never touches a database the operator configured, and a write to the demo
database (which the next demo start wipes) says so."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from tests.conftest import TEST_SECRET
from tests.processes import CLIPWATCH, serving


def _env(**settings: str) -> dict[str, str]:
    """No CLIPWATCH_* settings from the test run (no Twitch credentials), then `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPWATCH_")}
    env.update(CLIPWATCH_SECRET_KEY=TEST_SECRET, CLIPWATCH_LOG_FORMAT="json", **settings)
    return env


def _run(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLIPWATCH, *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_without_credentials_refuses_a_configured_database(tmp_path: Path) -> None:
    archive = tmp_path / "archive.db"
    env = _env(CLIPWATCH_DATABASE_URL=f"sqlite+aiosqlite:///{archive}")
    refused = _run(tmp_path, env, "serve", "--port", "1")
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(
        "error: CLIPWATCH_TWITCH_CLIENT_ID and CLIPWATCH_TWITCH_CLIENT_SECRET not set"
    )
    assert "`clipwatch serve --demo`" in line
    half = _run(tmp_path, {**env, "CLIPWATCH_TWITCH_CLIENT_ID": "id"}, "serve", "--port", "1")
    assert half.stderr.startswith("error: CLIPWATCH_TWITCH_CLIENT_SECRET not set")
    by_option = _run(tmp_path, _env(), "--database", f"sqlite+aiosqlite:///{archive}", "serve")
    assert by_option.returncode == 1
    assert "--demo" in by_option.stderr
    assert not archive.exists()
    assert not (tmp_path / "var" / "demo.db").exists()


def test_serve_demo_uses_the_demo_database_whatever_is_configured(tmp_path: Path) -> None:
    archive = tmp_path / "archive.db"
    env = _env(CLIPWATCH_DATABASE_URL=f"sqlite+aiosqlite:///{archive}")
    with serving(tmp_path, env, "--demo", "--no-worker") as (base, _process):
        status = httpx.get(f"{base}/api/v1/status").json()
        assert status["mode"] == "demo"
    assert (tmp_path / "var" / "demo.db").exists()
    assert not archive.exists()


def test_writes_to_the_demo_database_say_so(tmp_path: Path) -> None:
    created = _run(tmp_path, _env(), "users", "create", "alice")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("user alice created")
    [note] = created.stderr.strip().splitlines()
    assert note.startswith("note: writing to the demo database (./var/demo.db")
    assert "wipes at every start" in note
    assert "--database URL or CLIPWATCH_DATABASE_URL points elsewhere" in note
    assert (tmp_path / "var" / "demo.db").exists()

    token = _run(tmp_path, _env(), "tokens", "create", "alice")
    assert token.stdout.startswith("cw_")  # stdout stays the answer alone
    assert "demo database" in token.stderr
    listed = _run(tmp_path, _env(), "users", "list")  # a read: no note
    assert "alice" in listed.stdout
    assert listed.stderr == ""

    own = tmp_path / "own.db"
    elsewhere = _run(
        tmp_path, _env(), "--database", f"sqlite+aiosqlite:///{own}", "users", "create", "bob"
    )
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert elsewhere.stderr == ""
    configured = _run(
        tmp_path,
        _env(CLIPWATCH_DATABASE_URL=f"sqlite+aiosqlite:///{own}"),
        "users",
        "create",
        "carol",
    )
    assert configured.returncode == 0, configured.stderr
    assert configured.stderr == ""
