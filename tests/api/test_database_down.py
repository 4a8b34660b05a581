"""The database unreachable: API answers are 503 with Retry-After, never 500."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import DBAPIError, OperationalError

from clipwatch.api.errors import DATABASE_RETRY_AFTER_S, database_unavailable
from clipwatch.config import load_settings
from tests.conftest import TEST_SECRET, app_client, free_port


async def test_a_database_that_refuses_connections_answers_503(tmp_path: Path) -> None:
    # Nothing listens on this port: every connection is refused, as when PostgreSQL is stopped.
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/clipwatch"
    settings = load_settings(
        database_url=url, secret_key=TEST_SECRET, var_dir=tmp_path, webhook_check=False
    )
    async with app_client(settings) as http:
        for path in ("/api/v1/clips?q=pogg", "/api/v1/channels", "/api/v1/clips/SomeClip"):
            answer = await http.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert "database" in answer.json()["detail"]
        page = await http.get("/clips/SomeClip", headers={"Accept": "text/html"})
        assert page.status_code == 503
        assert page.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
        assert (await http.get("/healthz")).status_code == 200


class _Gone(Exception):
    sqlstate = "57P01"  # admin_shutdown: the server is stopping


def test_which_errors_mean_the_database_is_unreachable() -> None:
    assert database_unavailable(ConnectionRefusedError(111, "refused"))
    assert database_unavailable(TimeoutError())
    assert database_unavailable(OperationalError("SELECT 1", {}, _Gone()))
    invalidated = DBAPIError("SELECT 1", {}, Exception("closed"), connection_invalidated=True)
    assert database_unavailable(invalidated)
    assert not database_unavailable(DBAPIError("SELECT 1", {}, Exception("syntax error")))
    assert not database_unavailable(ValueError("a bug"))


def test_sqlite_busy_is_told_apart_from_other_database_errors() -> None:
    """SQLite's "database is locked" answers 503 with Retry-After (api/errors.py), not 500."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from clipwatch.api.errors import database_busy

    locked = OperationalError(
        "INSERT INTO incident ...", {}, sqlite3.OperationalError("database is locked")
    )
    assert database_busy(locked)
    other = OperationalError("SELECT ...", {}, sqlite3.OperationalError("no such table: x"))
    assert not database_busy(other)
    assert not database_busy(ValueError("database is locked"))
