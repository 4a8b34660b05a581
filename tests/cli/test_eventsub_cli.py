"""`clipwatch eventsub connect|status` as an operator runs them, against `clipwatch simulate
twitch`, on both databases: the token checked and stored sealed, never printed; status from
the database (subscriptions, the holder's worker_task detail); refusals in one line."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts.secrets import unseal
from clipwatch.db.engine import session_scope
from clipwatch.db.models import TwitchUserToken
from clipwatch.db.repositories import eventsub as rows
from clipwatch.db.repositories import leases, workers
from clipwatch.runtime.eventsub_task import LEASE_NAME
from tests.conftest import TEST_SECRET
from tests.processes import CLIPWATCH, TwitchProcess, twitch_simulator

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
def twitch() -> Iterator[TwitchProcess]:
    with twitch_simulator() as sim:
        yield sim


def eventsub(
    twitch: TwitchProcess, database_url: str, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = twitch.env(database_url, CLIPWATCH_LOG_FORMAT="json")
    env.pop("CLIPWATCH_EVENTSUB_USER_TOKEN", None)
    return subprocess.run(
        [CLIPWATCH, "eventsub", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def user_token(twitch: TwitchProcess, login: str = "clipbot") -> tuple[str, str]:
    answer = httpx.post(f"{twitch.base}/_sim/users/token", params={"login": login})
    answer.raise_for_status()
    body = answer.json()
    return body["access_token"], body["refresh_token"]


async def test_connect_stores_the_token_sealed_and_status_shows_it(
    twitch: TwitchProcess, database_url: str, sessionmaker: Sessions, tmp_path: Path
) -> None:
    access, refresh = user_token(twitch)
    result = eventsub(
        twitch,
        database_url,
        tmp_path,
        "connect",
        "--user-token",
        access,
        "--refresh-token",
        refresh,
    )
    assert result.returncode == 0, result.stderr
    assert "EventSub token of clipbot stored" in result.stdout
    assert access not in result.stdout + result.stderr
    async with session_scope(sessionmaker) as session:
        row = await session.get(TwitchUserToken, "eventsub")
        assert row is not None
        assert row.login == "clipbot"
        assert access not in row.access_token_sealed
        assert unseal(TEST_SECRET.encode(), row.access_token_sealed) == access
        assert row.refresh_token_sealed is not None
        assert unseal(TEST_SECRET.encode(), row.refresh_token_sealed) == refresh

    # Before any worker holds the socket: down, the token and no subscriptions.
    status = eventsub(twitch, database_url, tmp_path, "status")
    assert status.returncode == 0, status.stderr
    assert "down" in status.stdout
    assert "clipbot" in status.stdout
    assert "no subscriptions" in status.stdout
    assert access not in status.stdout
    assert refresh not in status.stdout

    # A holder reported its socket: status reads it with the subscriptions.
    now = datetime.now(UTC)
    detail = {
        "eventsub": "holder",
        "socket": "connected",
        "session_id": "sess-42",
        "connected_at": now.isoformat(),
        "subscriptions": 2,
        "total_cost": 2,
        "max_total_cost": 10,
        "covered_channels": 1,
        "over_budget_channels": 0,
    }
    async with session_scope(sessionmaker) as session:
        assert await leases.acquire(session, LEASE_NAME, "host:9", now, timedelta(seconds=60))
        await workers.report_tasks(
            session,
            "host:9",
            [
                {
                    "task": "eventsub",
                    "state": "idle",
                    "started_at": now,
                    "heartbeat_at": now,
                    "last_success_at": now,
                    "last_error": None,
                    "last_error_at": None,
                    "consecutive_failures": 0,
                    "restarts": 0,
                    "detail": detail,
                }
            ],
        )
        for sub_id, kind in (("sub-on", "stream.online"), ("sub-off", "stream.offline")):
            await rows.save_subscription(
                session,
                subscription_id=sub_id,
                type=kind,
                version="1",
                channel_id="70000000",
                status="enabled",
                cost=1,
                session_id="sess-42",
                now=now,
            )
    status = eventsub(twitch, database_url, tmp_path, "status")
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert "connected" in out
    assert "host:9" in out
    assert "sess-42" in out
    assert "2 of 10" in out
    assert "stream.online" in out
    assert "stream.offline" in out


async def test_connect_refuses_a_bad_token_in_one_line(
    twitch: TwitchProcess, database_url: str, sessionmaker: Sessions, tmp_path: Path
) -> None:
    result = eventsub(twitch, database_url, tmp_path, "connect", "--user-token", "not-a-token")
    assert result.returncode == 1
    assert "Twitch refused the token" in result.stderr
    assert "Traceback" not in result.stderr
    async with session_scope(sessionmaker) as session:
        assert await session.get(TwitchUserToken, "eventsub") is None


async def test_a_failed_token_is_a_problem_in_status(
    twitch: TwitchProcess, database_url: str, sessionmaker: Sessions, tmp_path: Path
) -> None:
    access, _refresh = user_token(twitch)
    connected = eventsub(twitch, database_url, tmp_path, "connect", "--user-token", access)
    assert connected.returncode == 0, connected.stderr
    assert "no refresh token" in connected.stdout
    async with session_scope(sessionmaker) as session:
        await rows.mark_token_failed(
            session, error="Twitch refused to refresh the user token (400)", now=datetime.now(UTC)
        )
    status = eventsub(twitch, database_url, tmp_path, "status")
    assert status.returncode == 0, status.stderr
    assert "problem:" in status.stderr
    assert "refused to refresh" in status.stderr
