"""Logs, on both databases where the app is involved: request ids on every line of a
request and in the answer, one access line per request, JSON lines without secrets, job ids,
redaction of every secret shape, rotation by size."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from clipwatch.api.app import create_app
from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from clipwatch.monitoring.context import job, request_id_from
from clipwatch.monitoring.logging import (
    configure_logging,
    redact_text,
    register_secrets,
    settings_secrets,
)

SECRETS = {
    "twitch_client_secret": "tw-client-secret-Zq81xR",
    "discord_bot_token": "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs",
    "metrics_token": "metrics-token-Lk93bb",
    "sentry_dsn": "https://5e1f00aa77d14c0c@o4711.ingest.example.com/42",
}
WEBHOOK_TOKEN = "hX9fQ_wR2-secretwebhooktoken0123456789abcdefghijklmnopq"
API_TOKEN = "cw_AbCdEf0123456789ghijklmnop"
SESSION_VALUE = "sessionvalue-7d3f0c9b2a"


def reset_logging() -> None:
    """Back to no logging configuration: the file handlers closed, structlog's defaults."""
    root = logging.getLogger()
    for handler in root.handlers:
        handler.close()
    root.handlers.clear()
    structlog.reset_defaults()


def read_text(path: Path) -> str:
    return path.read_text()


def read_lines(path: Path) -> list[dict[str, Any]]:
    lines = read_text(path).splitlines()
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]  # every line is one JSON object


@pytest.fixture
def log_file(tmp_path: Path, settings: Settings) -> Iterator[Path]:
    path = tmp_path / "clipwatch.log"
    secret_settings = settings.model_copy(update=SECRETS)
    configure_logging("debug", "json", str(path), secrets=settings_secrets(secret_settings))
    yield path
    reset_logging()


@pytest.fixture
async def probe_client(
    settings: Settings, cache: CacheManager, engine: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with one extra route that logs in every way the code does: structlog, the
    standard library, from a thread, an exception with its traceback."""
    app = create_app(settings.model_copy(update=SECRETS), cache=cache)

    @app.get("/_probe")
    async def probe() -> dict[str, bool]:
        log = structlog.get_logger("clipwatch.probe")
        log.info(
            "probe_structlog",
            url=f"https://discord.com/api/webhooks/123456/{WEBHOOK_TOKEN}",
            headers={
                "Authorization": f"Bearer {API_TOKEN}",
                "Cookie": f"cw_session={SESSION_VALUE}",
            },
            note=f"client_secret={SECRETS['twitch_client_secret']}&grant_type=client_credentials",
        )
        logging.getLogger("clipwatch.probe").warning(
            "stdlib line: Bot %s and Set-Cookie: cw_session=%s",
            SECRETS["discord_bot_token"],
            SESSION_VALUE,
        )
        await asyncio.to_thread(
            lambda: structlog.get_logger("clipwatch.probe").info(
                "probe_thread", dsn_text=f"sending to {SECRETS['sentry_dsn']}"
            )
        )
        try:
            raise RuntimeError(f"failed posting to /api/v10/webhooks/99/{WEBHOOK_TOKEN}")
        except RuntimeError:
            log.exception("probe_failed", metrics=SECRETS["metrics_token"])
        return {"ok": True}

    @app.get("/_boom")
    async def boom() -> None:
        raise RuntimeError(f"a bug holding {SECRETS['twitch_client_secret']}")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


# --- request ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123_X.y", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("has space", False),
        ("semi;colon", False),
        ("", False),
        ("ünïcode", False),
    ],
)
def test_a_request_id_is_kept_only_when_sane(sent: str, kept: bool) -> None:
    made = request_id_from(sent)
    assert (made == sent) is kept
    if not kept:
        assert len(made) == 32
        assert all(c in "0123456789abcdef" for c in made)


async def test_the_request_id_comes_back(client: httpx.AsyncClient) -> None:
    sent = await client.get("/healthz", headers={"X-Request-ID": "trace-42.a_b"})
    assert sent.headers["x-request-id"] == "trace-42.a_b"
    made = await client.get("/healthz")
    other = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    assert made.headers["x-request-id"] != other.headers["x-request-id"]
    bad = await client.get("/healthz", headers={"X-Request-ID": "x" * 200})
    assert bad.headers["x-request-id"] != "x" * 200
    # Error answers carry it too.
    missing = await client.get("/api/v1/clips/nope", headers={"X-Request-ID": "err-1"})
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "err-1"


async def test_every_line_of_a_request_carries_its_id(
    log_file: Path, probe_client: httpx.AsyncClient
) -> None:
    answer = await probe_client.get("/_probe", headers={"X-Request-ID": "probe-req-1"})
    assert answer.status_code == 200
    await probe_client.get("/healthz", headers={"X-Request-ID": "probe-req-2"})
    lines = read_lines(log_file)
    probe_lines = [line for line in lines if line.get("logger") == "clipwatch.probe"]
    assert {line["event"] for line in probe_lines} >= {
        "probe_structlog",
        "probe_thread",
        "probe_failed",
    }
    assert len(probe_lines) == 4
    assert all(line.get("request_id") == "probe-req-1" for line in probe_lines), probe_lines
    access = [line for line in lines if line.get("logger") == "clipwatch.access"]
    assert [a["request_id"] for a in access] == ["probe-req-1", "probe-req-2"]
    first = access[0]
    assert first["event"] == "request"
    assert first["method"] == "GET"
    assert first["route"] == "/_probe"
    assert first["path"] == "/_probe"
    assert first["status"] == 200
    assert first["client_ip"] == "127.0.0.1"
    assert first["duration_ms"] >= 0
    # Nothing outside a request carries one.
    assert not [line for line in lines if line not in probe_lines + access and "request_id" in line]


async def test_captured_logs_hold_no_secret(
    log_file: Path, probe_client: httpx.AsyncClient
) -> None:
    await probe_client.get("/_probe")
    await probe_client.get(
        "/auth/callback",
        params={"code": "oauth-code-77aa11", "state": "s"},
        headers={"Authorization": f"Bearer {API_TOKEN}", "Cookie": f"cw_session={SESSION_VALUE}"},
    )
    await probe_client.get("/api/v1/clips", params={"token": API_TOKEN})
    text = read_text(log_file)
    read_lines(log_file)  # JSON lines
    for secret in [*SECRETS.values(), WEBHOOK_TOKEN, API_TOKEN, SESSION_VALUE, "oauth-code-77aa11"]:
        assert secret not in text, secret
    assert "Traceback" in text  # the exception was logged, redacted
    assert "[redacted]" in text


async def test_no_access_line_when_turned_off(
    log_file: Path, settings: Settings, cache: CacheManager, engine: Any
) -> None:
    app = create_app(settings, cache=cache, access_log=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.get("/healthz")).headers["x-request-id"]
    assert not [line for line in read_lines(log_file) if line.get("logger") == "clipwatch.access"]


async def test_an_unexpected_error_is_logged_and_answered_with_the_request_id(
    log_file: Path, probe_client: httpx.AsyncClient
) -> None:
    answer = await probe_client.get("/_boom", headers={"X-Request-ID": "boom-1"})
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["x-request-id"] == "boom-1"
    lines = read_lines(log_file)
    (error,) = [line for line in lines if line["event"] == "unhandled_error"]
    assert error["request_id"] == "boom-1"
    assert "RuntimeError" in error["exception"]
    assert SECRETS["twitch_client_secret"] not in read_text(log_file)
    (access,) = [line for line in lines if line.get("logger") == "clipwatch.access"]
    assert access["status"] == 500
    assert access["request_id"] == "boom-1"


# --- worker passes ----------------------------------------------------------------------------


def test_every_line_of_a_job_carries_its_id(log_file: Path) -> None:
    with job("sync") as job_id:
        structlog.get_logger("clipwatch.probe").info("inside_job")
        logging.getLogger("clipwatch.probe").warning("inside_job_stdlib")
    structlog.get_logger("clipwatch.probe").info("after_job")
    lines = {line["event"]: line for line in read_lines(log_file)}
    assert job_id.startswith("sync-")
    assert lines["inside_job"]["job_id"] == job_id
    assert lines["inside_job_stdlib"]["job_id"] == job_id
    assert lines["inside_job"]["job"] == "sync"
    assert "job_id" not in lines["after_job"]


# --- redaction and rotation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("POST https://discord.com/api/webhooks/1234/abc-DEF_ghi.jk", "abc-DEF_ghi.jk"),
        ("POST https://discordapp.com/api/v10/webhooks/1234/tok3n-xyz?wait=true", "tok3n-xyz"),
        ("POST http://127.0.0.1:9/webhooks/77/simtoken_abcdef", "simtoken_abcdef"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("Authorization: bearer cw_abcdefgh12345678", "cw_abcdefgh12345678"),
        ("Authorization: OAuth 0123456789abcdefghijklmnop", "0123456789abcdefghijklmnop"),
        (
            "Authorization: Bot MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs",
            "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs",
        ),
        ("token cw_0123456789abcdef in text", "cw_0123456789abcdef"),
        ("Cookie: cw_session=abcdef123456; other=1", "abcdef123456"),
        ("Set-Cookie: __Host-cw_session=zz99yy88xx; Path=/", "zz99yy88xx"),
        ("grant_type=client_credentials&client_secret=s3cr3t-value", "s3cr3t-value"),
        ("GET /auth/callback?code=abc123xyz&state=q", "abc123xyz"),
        ("{'client_secret': 'quoted-secret-1'}", "quoted-secret-1"),
        ('{"access_token": "json-token-value"}', "json-token-value"),
        ("postgresql+asyncpg://clip:pa55word@db:5432/clipwatch", "pa55word"),
        ("https://0123456789abcdef@o1.ingest.sentry.io/5", "0123456789abcdef"),
    ],
)
def test_every_secret_shape_is_redacted(text: str, secret: str) -> None:
    assert secret not in redact_text(text)


def test_ordinary_text_is_left_alone() -> None:
    for text in (
        "Discord says Unknown Webhook (code 10015)",
        "the bot answered in 12 ms",
        "GET /api/v1/clips?q=pogchamp&sort=views",
        "synced 40 clips of somechannel",
    ):
        assert redact_text(text) == text


def test_configured_secrets_are_redacted_wherever_they_appear() -> None:
    register_secrets(["a-configured-value-9981"])
    assert "a-configured-value-9981" not in redact_text("x a-configured-value-9981 y")


def test_the_log_file_rotates_by_size(tmp_path: Path) -> None:
    path = tmp_path / "rotating.log"
    configure_logging("info", "console", str(path), max_bytes=4096, backups=2)
    try:
        log = structlog.get_logger("clipwatch.probe")
        for n in range(400):
            log.info("filler", n=n, text="x" * 40)
    finally:
        reset_logging()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["rotating.log", "rotating.log.1", "rotating.log.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 4096 + 400
        read_lines(tmp_path / name)  # JSON lines even when the console is not JSON
    assert read_lines(path)[-1]["n"] == 399


def test_every_secret_setting_is_redacted_in_a_log_line(tmp_path: Path, settings: Settings) -> None:
    """Each setting declared secret (repr=False) is a secret to the logs by its value, however
    it is written into a line (an alert webhook URL or the Alertmanager token were not)."""
    secret_names = [n for n, f in Settings.model_fields.items() if not f.repr]
    assert {"alertmanager_token", "alert_webhook_url", "alert_discord_webhook_url"} <= set(
        secret_names
    )
    values = {name: f"{name}-value-{index}-Qx7" for index, name in enumerate(secret_names)}
    secret_settings = settings.model_copy(update=values)
    path = tmp_path / "secrets.log"
    configure_logging("debug", "json", str(path), secrets=settings_secrets(secret_settings))
    try:
        for name, value in values.items():
            structlog.get_logger("clipwatch.probe").warning("told", note=f"{name} was {value}")
    finally:
        reset_logging()
    text = read_text(path)
    assert len(text.splitlines()) == len(values)
    for value in values.values():
        assert value not in text
