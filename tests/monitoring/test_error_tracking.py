"""Error tracking: unhandled errors grouped by type and place in `error_group`, shown to
admins at /api/v1/errors and in status; Sentry (a local endpoint receiving the envelopes)
gets each one scrubbed as the logs are."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.accounts import service as accounts
from clipwatch.api.app import create_app
from clipwatch.config import Settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from clipwatch.db.error_models import ErrorGroup
from clipwatch.db.repositories import error_groups
from clipwatch.monitoring import errors
from clipwatch.monitoring.context import start_job
from clipwatch.monitoring.errors import ErrorTracker, Scrubber, describe_occurrence
from clipwatch.monitoring.logging import redact_text
from clipwatch.runtime.supervisor import Supervisor, TaskState, backoff

Sessions = async_sessionmaker[AsyncSession]
DEADLINE_S = 20.0
WEBHOOK = "https://discord.com/api/webhooks/123456789012345678/webhook-token-XYZ-0123456789"
CW_TOKEN = "cw_tok3n-that-must-never-leave-0123456789"
COOKIE = "cookie-session-value-5a4b3c2d1e0f"
CLIENT_SECRET = "twitch-client-secret-abcdef0123"
BOT_TOKEN = "discord-bot-token-9876543210"


# --- routes with a bug: each fails in clipwatch's own code, at a place of its own ------------


async def _redact_bug() -> None:
    redact_text(None)  # type: ignore[arg-type]  # TypeError inside monitoring/logging.py


async def _backoff_bug() -> None:
    backoff("three", 1.0, 2.0)  # type: ignore[arg-type]  # TypeError inside supervisor.py


async def _secret_bug() -> None:
    # A library's log line (they become Sentry breadcrumbs) with secrets in it.
    logging.getLogger("clipwatch.test").warning("posting to %s with Bearer %s", WEBHOOK, CW_TOKEN)
    raise RuntimeError(
        f"POST {WEBHOOK} with Bearer {CW_TOKEN} failed; Cookie: __Host-cw_session={COOKIE}; "
        f"client_secret={CLIENT_SECRET}; bot {BOT_TOKEN}"
    )


@asynccontextmanager
async def raising_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    app.add_api_route("/bug/redact", _redact_bug)
    app.add_api_route("/bug/backoff", _backoff_bug)
    app.add_api_route("/bug/secret", _secret_bug)
    async with app.router.lifespan_context(app):
        # The error ends in the 500: nothing is raised past the app.
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield app, http


async def groups(sessionmaker: Sessions) -> dict[str, ErrorGroup]:
    async with session_scope(sessionmaker) as session:
        found = await error_groups.list_error_groups(session, 100)
    return {g.place: g for g in found}


async def bearer(sessionmaker: Sessions, name: str, *, admin: bool) -> dict[str, str]:
    async with session_scope(sessionmaker) as session:
        user = await accounts.create_user(session, name, admin=admin)
        scopes = frozenset({"read", "write", "admin"} if admin else {"read", "write"})
        _, plaintext = await accounts.create_token(session, user, name="t", scopes=scopes)
    return {"Authorization": f"Bearer {plaintext}"}


def assert_problem_500(answer: httpx.Response) -> None:
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 500


# --- fingerprints ---------------------------------------------------------------------------


def _raised(call: Any, *args: Any) -> BaseException:
    try:
        call(*args)
    except Exception as exc:
        return exc
    raise AssertionError("it did not raise")


def test_the_fingerprint_is_the_type_and_the_innermost_place_in_clipwatch() -> None:
    first = describe_occurrence(_raised(redact_text, None))
    again = describe_occurrence(_raised(redact_text, None))
    other = describe_occurrence(_raised(backoff, "three", 1.0, 2.0))
    assert first.place == "clipwatch/monitoring/logging.py:redact_text"
    assert first.error_type == "TypeError"
    assert again.fingerprint == first.fingerprint
    assert other.place == "clipwatch/runtime/supervisor.py:backoff"
    assert other.fingerprint != first.fingerprint
    # The same place with another type is another group.
    key_error = describe_occurrence(_raised(lambda: {}["x"]))
    assert key_error.error_type == "KeyError"
    assert key_error.place.startswith("test_error_tracking.py:")  # no frame of clipwatch's


def test_the_trace_id_is_the_bound_request_id() -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-42"):
        assert describe_occurrence(ValueError("x")).trace_id == "req-42"
    with structlog.contextvars.bound_contextvars(job_id="sync-0123456789ab"):
        assert describe_occurrence(ValueError("x")).trace_id == "sync-0123456789ab"
    assert len(describe_occurrence(ValueError("x")).trace_id) == 32  # made up


# --- the API ----------------------------------------------------------------------------------


async def test_a_request_that_fails_is_grouped_counted_and_shown_to_admins(
    settings: Settings, sessionmaker: Sessions
) -> None:
    async with raising_app(settings) as (_app, http):
        for _ in range(2):
            assert_problem_500(await http.get("/bug/redact", headers={"X-Request-ID": "req-1"}))
        assert_problem_500(await http.get("/bug/backoff"))
        seen = await groups(sessionmaker)
        assert set(seen) == {
            "clipwatch/monitoring/logging.py:redact_text",
            "clipwatch/runtime/supervisor.py:backoff",
        }
        redact = seen["clipwatch/monitoring/logging.py:redact_text"]
        assert redact.count == 2
        assert redact.error_type == "TypeError"
        assert redact.source == "api"
        assert redact.trace_id == "req-1"
        assert redact.first_seen_at <= redact.last_seen_at
        assert "TypeError" in redact.message
        assert seen["clipwatch/runtime/supervisor.py:backoff"].count == 1

        assert_problem_500(await http.get("/bug/redact", headers={"X-Request-ID": "req-3"}))
        admin = await bearer(sessionmaker, "boss", admin=True)
        listed = await http.get("/api/v1/errors", headers=admin)
        assert listed.status_code == 200
        body = listed.json()
        assert body["total"] == 2
        newest = body["data"][0]
        assert newest["place"] == "clipwatch/monitoring/logging.py:redact_text"
        assert (newest["count"], newest["trace_id"]) == (3, "req-3")
        assert newest["fingerprint"] == redact.fingerprint
        assert len((await http.get("/api/v1/errors?limit=1", headers=admin)).json()["data"]) == 1

        member = await bearer(sessionmaker, "member", admin=False)
        refused = await http.get("/api/v1/errors", headers=member)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert (await http.get("/api/v1/errors")).status_code == 401

        problems = (await http.get("/api/v1/status")).json()["problems"]
        assert any("2 kinds of unexpected error in the last 24 h" in p for p in problems), problems


async def test_the_stored_message_holds_no_secret(
    settings: Settings, sessionmaker: Sessions
) -> None:
    async with raising_app(settings) as (_app, http):
        assert_problem_500(await http.get("/bug/secret"))
    [group] = (await groups(sessionmaker)).values()
    assert group.error_type == "RuntimeError"
    for secret in ("webhook-token-XYZ", CW_TOKEN, CLIENT_SECRET):
        assert secret not in group.message
    assert "[redacted]" in group.message


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _unreachable_url(settings: Settings, tmp_path: Path) -> str:
    if settings.is_postgres:  # the same server, a database that does not exist
        return settings.database_url.rsplit("/", 1)[0] + "/clipwatch_no_such_database"
    return f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/clipwatch.db"


async def test_a_database_failure_while_recording_keeps_the_500(
    settings: Settings, sessionmaker: Sessions, tmp_path: Path
) -> None:
    broken = create_engine(
        settings.model_copy(update={"database_url": _unreachable_url(settings, tmp_path)})
    )
    try:
        async with raising_app(settings) as (app, http):
            tracker: ErrorTracker = app.state.error_tracker
            working = tracker.sessionmaker
            tracker.sessionmaker = create_sessionmaker(broken)
            failed_before = _sample("clipwatch_error_tracking_failures_total")
            seen_before = _sample("clipwatch_unhandled_errors_total", {"source": "api"})
            with structlog.testing.capture_logs() as logged:
                for _ in range(2):
                    assert_problem_500(await http.get("/bug/redact"))
                assert tracker.failures == 2
                # The operator sees both in /metrics, not only in the log.
                assert _sample("clipwatch_error_tracking_failures_total") == failed_before + 2
                seen = _sample("clipwatch_unhandled_errors_total", {"source": "api"})
                assert seen == seen_before + 2
                assert await groups(sessionmaker) == {}
                tracker.sessionmaker = working
                assert_problem_500(await http.get("/bug/backoff"))
            events = [line["event"] for line in logged]
            assert events.count("error_tracking_failed") == 1  # once while it lasts
            assert events.count("error_tracking_recovered") == 1
            assert set(await groups(sessionmaker)) == {"clipwatch/runtime/supervisor.py:backoff"}
    finally:
        await broken.dispose()


# --- the worker -------------------------------------------------------------------------------


async def test_a_worker_task_that_dies_is_recorded(
    settings: Settings, sessionmaker: Sessions
) -> None:
    supervisor = Supervisor("host:1", restart_s=(0.0,))
    supervisor.errors = ErrorTracker(sessionmaker, "worker")
    calls = 0

    async def body(_state: TaskState) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            job_ids.append(start_job("sync"))  # as each pass of the worker does
            backoff("three", 1.0, 2.0)  # type: ignore[arg-type]

    job_ids: list[str] = []
    try:
        async with asyncio.timeout(DEADLINE_S):
            await supervisor.run("sync", body, asyncio.Event())
    finally:
        structlog.contextvars.clear_contextvars()
    assert calls == 2
    group = (await groups(sessionmaker))["clipwatch/runtime/supervisor.py:backoff"]
    assert (group.source, group.count, group.trace_id) == ("worker:sync", 1, job_ids[0])


# --- Sentry -------------------------------------------------------------------------------------


class Envelopes(ThreadingHTTPServer):
    """Sentry's ingestion endpoint as far as the SDK sees it: every envelope body kept."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _EnvelopeHandler)
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self.arrived = threading.Condition()

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.server_address[1]}/1"

    def events(self) -> list[dict[str, Any]]:
        found = []
        for body in self.bodies:
            found += [payload for kind, payload in parse_envelope(body) if kind == "event"]
        return found

    def wait_for_event(self, seconds: float) -> list[dict[str, Any]]:
        with self.arrived:
            self.arrived.wait_for(self.events, timeout=seconds)
        return self.events()


class _EnvelopeHandler(BaseHTTPRequestHandler):
    server: Envelopes

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")
        with self.server.arrived:
            self.server.bodies.append(body)
            self.server.paths.append(self.path)
            self.server.arrived.notify_all()

    def log_message(self, *_args: Any) -> None:
        pass


def parse_envelope(body: bytes) -> list[tuple[str, Any]]:
    """The items of one envelope: a header line, then per item a header line and a payload
    (`length` bytes, or up to the next newline)."""
    items = []
    _header, _, rest = body.partition(b"\n")
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        item = json.loads(line)
        if "length" in item:
            payload, rest = rest[: item["length"]], rest[item["length"] :].removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        try:
            items.append((item.get("type", ""), json.loads(payload)))
        except ValueError:
            items.append((item.get("type", ""), payload.decode("utf-8", "replace")))
    return items


@pytest.fixture
def envelopes() -> Iterator[Envelopes]:
    server = Envelopes()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def sentry_settings(settings: Settings, envelopes: Envelopes) -> Iterator[Settings]:
    with_secrets = settings.model_copy(
        update={
            "sentry_dsn": envelopes.dsn,
            "twitch_client_secret": CLIENT_SECRET,
            "discord_bot_token": BOT_TOKEN,
        }
    )
    assert errors.start_error_reporting(with_secrets, "serve")
    try:
        yield with_secrets
    finally:
        errors.stop_error_reporting()


async def test_sentry_gets_the_error_scrubbed(
    sentry_settings: Settings, envelopes: Envelopes, engine: AsyncEngine, sessionmaker: Sessions
) -> None:
    async with raising_app(sentry_settings) as (_app, http):
        answer = await http.get(
            "/bug/secret",
            headers={
                "Authorization": f"Bearer {CW_TOKEN}",
                "Cookie": f"__Host-cw_session={COOKIE}",
                "X-Request-ID": "req-sentry",
            },
        )
        assert_problem_500(answer)
    errors.flush_error_reporting(timeout=DEADLINE_S)
    [event] = envelopes.wait_for_event(DEADLINE_S)
    assert envelopes.paths[0] == "/api/1/envelope/"
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert "[redacted]" in exception["value"]
    assert event["tags"]["trace_id"] == "req-sentry"
    assert event["tags"]["source"] == "api"
    assert event["fingerprint"] == ["RuntimeError", event["tags"]["place"]]
    crumbs = json.dumps(event.get("breadcrumbs", {}))
    assert "posting" in crumbs  # the log line before the error, as a breadcrumb
    everything = b"\n".join(envelopes.bodies).decode("utf-8", "replace")
    secrets = ["webhook-token-XYZ", CW_TOKEN, COOKIE, CLIENT_SECRET, BOT_TOKEN]
    secrets.append(sentry_settings.secret_key)
    for secret in secrets:
        assert secret not in everything, secret
    # Sentry or not, the group is stored.
    assert [g.error_type for g in (await groups(sessionmaker)).values()] == ["RuntimeError"]


def test_the_scrubber_covers_keys_shapes_and_the_settings_secrets(settings: Settings) -> None:
    scrubber = Scrubber.from_settings(
        settings.model_copy(
            update={
                "twitch_client_secret": CLIENT_SECRET,
                "database_url": "postgresql+asyncpg://cw:db-password-123@db/clipwatch",
            }
        )
    )
    event = {
        "request": {"headers": {"Authorization": "Bearer abc", "Cookie": "x=1"}},
        "extra": {"settings": f"Settings(twitch_client_secret='{CLIENT_SECRET}')"},
        "breadcrumbs": {"values": [{"message": f"sent to {WEBHOOK}", "data": {"n": 3}}]},
        "argv": ["clipwatch", "--database", "postgresql://cw:db-password-123@db/x"],
        "list": ("a", f"token {CW_TOKEN}"),
        "message": f"sent Cookie: theme=dark; cw_session={COOKIE}",
        "logentry": f"cw_session={COOKIE}&page=2",
    }
    scrubbed = json.dumps(scrubber.event(event, {}))
    shown = ("abc", "x=1", CLIENT_SECRET, "webhook-token-XYZ", CW_TOKEN, "db-password-123", COOKIE)
    for secret in shown:
        assert secret not in scrubbed, secret
    assert '"n": 3' in scrubbed
    assert scrubber.event({"broken": object()}, {}) is not None  # what is no text stays

    class Unlistable(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("no")

    assert scrubber.event(Unlistable(a="b"), {}) is None  # not scrubbed, not sent


async def test_a_dsn_sentry_cannot_read_stops_the_start(settings: Settings) -> None:
    from clipwatch.errors import ConfigError

    with pytest.raises(ConfigError, match="CLIPWATCH_SENTRY_DSN"):
        errors.start_error_reporting(settings.model_copy(update={"sentry_dsn": "nonsense"}), "x")
    assert not errors.start_error_reporting(settings, "serve")  # no DSN: off


async def test_error_group_is_emptied_between_tests(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM error_group"))).scalar() == 0
