"""Tokens, session ids and CSRF proofs never reach the logs of a real server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from clipwatch.accounts import service
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from tests.conftest import TEST_SECRET, empty_tables, free_port
from tests.processes import wait_until_up


async def _user_with_token(url: str) -> str:
    engine = create_engine(load_settings(database_url=url, secret_key=TEST_SECRET))
    try:
        await empty_tables(engine)
        async with session_scope(create_sessionmaker(engine)) as session:
            user = await service.create_user(session, "logtest")
            _, token = await service.create_token(
                session, user, name="t", scopes=frozenset({"read", "write"})
            )
            return token
    finally:
        await engine.dispose()


def test_no_secret_in_debug_logs(database_url: str, redis_url: str, tmp_path: Path) -> None:
    token = asyncio.run(_user_with_token(database_url))
    port = free_port()
    log_file = tmp_path / "clipwatch.log"
    env = {
        **os.environ,
        "CLIPWATCH_DATABASE_URL": database_url,
        "CLIPWATCH_SECRET_KEY": TEST_SECRET,
        "CLIPWATCH_TWITCH_CLIENT_ID": "logs",
        "CLIPWATCH_TWITCH_CLIENT_SECRET": "logs-client-secret",
        "CLIPWATCH_REDIS_URL": redis_url,
        "CLIPWATCH_REDIS_KEY_PREFIX": f"logtest-{port}",
        "CLIPWATCH_LOG_LEVEL": "debug",
        "CLIPWATCH_LOG_FORMAT": "json",
        "CLIPWATCH_LOG_FILE": str(log_file),
    }
    output = (tmp_path / "stdout.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "clipwatch"), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    secrets: list[str] = [token, "logs-client-secret"]
    try:
        wait_until_up(f"{base}/healthz", server, "the server")

        with httpx.Client(base_url=base) as http:
            auth = {"Authorization": f"Bearer {token}"}
            assert http.get("/api/v1/me", headers=auth).status_code == 200
            created = http.post(
                "/api/v1/me/tokens", json={"name": "x", "scopes": ["read"]}, headers=auth
            )
            secrets.append(created.json()["token"])
            # A wrong token, and a token pasted into a query string by mistake.
            assert (
                http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}x"}).status_code
                == 401
            )
            http.get("/api/v1/clips", params={"q": token})
            login = http.post("/auth/token-login", headers=auth)
            secret, csrf = login.cookies["cw_session"], login.json()["csrf_token"]
            secrets += [secret, csrf]
            http.cookies.clear()
            jar = {"Cookie": f"cw_session={secret}"}
            assert http.get("/api/v1/me", headers=jar).status_code == 200
            out = http.post("/auth/logout", headers={**jar, "X-CSRF-Token": csrf})
            assert out.status_code == 204
            assert http.get("/api/v1/me", headers=jar).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=15)
        output.close()

    logs = log_file.read_text() + (tmp_path / "stdout.log").read_text()
    assert "/auth/token-login" in logs  # the requests were logged at all
    assert "cw_[redacted]" in logs  # and the pasted token was caught
    for secret in secrets:
        assert secret not in logs
        if secret.startswith("cw_"):
            assert secret[12:] not in logs  # not even the secret part of a token
