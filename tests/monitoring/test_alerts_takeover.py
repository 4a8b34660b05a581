"""Two evaluator processes on one PostgreSQL database: `kill -9` the lease holder, and the
other takes over within 30 s; the incident is neither duplicated nor lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from contextlib import AbstractContextManager
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service as accounts
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Incident, Lease, NotificationRoute
from clipwatch.monitoring.alerts.evaluator import LEASE_NAME
from tests.conftest import TEST_SECRET
from tests.processes import python_process

TAKEOVER_LIMIT_S = 30.0
DEADLINE_S = 60.0
RULES = """
rules:
  - name: route_disabled
    signal: route_disabled
    threshold: 0
    for: 1s
    summary: "route {route} is disabled: {reason}"
"""
EVALUATOR = """
import asyncio, sys
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker
from clipwatch.monitoring.alerts.evaluator import evaluate_forever
from clipwatch.runtime.alerts import evaluator_from_settings

async def main() -> None:
    settings = load_settings()
    sessions = create_sessionmaker(create_engine(settings))
    evaluator = evaluator_from_settings(settings, sessions, sys.argv[1])
    await evaluate_forever(evaluator, asyncio.Event(), interval=0.2, follower_poll=0.2)

asyncio.run(main())
"""

Sessions = async_sessionmaker[AsyncSession]


def evaluator_process(
    name: str, env: dict[str, str]
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return python_process(EVALUATOR, name, env=env)


async def wait_for(what: str, check: object, deadline_s: float = DEADLINE_S) -> float:
    """Seconds until `check()` (a coroutine function) answers true."""
    start = time.monotonic()
    while not await check():  # type: ignore[operator]
        assert time.monotonic() - start < deadline_s, f"{what}: not within {deadline_s} s"
        await asyncio.sleep(0.05)  # polling interval while waiting on the condition
    return time.monotonic() - start


async def lease_owner(sessions: Sessions) -> str | None:
    async with session_scope(sessions) as session:
        lease = await session.get(Lease, LEASE_NAME)
        return lease.owner if lease is not None else None


async def incidents(sessions: Sessions) -> list[Incident]:
    async with session_scope(sessions) as session:
        return list((await session.scalars(select(Incident).order_by(Incident.id))).all())


async def test_a_killed_holder_is_replaced_within_30_s_without_loss_or_duplicate(
    pg_sessions: Sessions, postgresql_url: str, tmp_path: Path
) -> None:
    async with session_scope(pg_sessions) as session:
        user = await accounts.create_user(session, "owner")
        route = NotificationRoute(
            user_id=user.id,
            name="gone",
            webhook_id="1",
            webhook_token_sealed="x",
            enabled=False,
            disabled_reason="the webhook was deleted",
        )
        session.add(route)
        await session.flush()
        route_id = route.id
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    env = {
        **os.environ,
        "CLIPWATCH_DATABASE_URL": postgresql_url,
        "CLIPWATCH_SECRET_KEY": TEST_SECRET,
        "CLIPWATCH_ALERT_RULES_FILE": str(rules),
        "CLIPWATCH_ALERT_LEASE_SECONDS": "3",
        "CLIPWATCH_LOG_FORMAT": "json",
    }
    with evaluator_process("first", env) as first:

        async def first_holds() -> bool:
            return await lease_owner(pg_sessions) == "first"

        await wait_for("the first process takes the lease", first_holds)
        with evaluator_process("second", env):

            async def one_incident() -> bool:
                return len(await incidents(pg_sessions)) == 1

            await wait_for("the incident opens", one_incident)
            assert await lease_owner(pg_sessions) == "first"
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)

            async def second_holds() -> bool:
                return await lease_owner(pg_sessions) == "second"

            took = await wait_for("the second process takes over", second_holds)
            assert took < TAKEOVER_LIMIT_S

            # The condition clears: the new holder resolves the same incident (not lost),
            # and no second one was ever opened for it (not duplicated).
            async with session_scope(pg_sessions) as session:
                await session.execute(
                    update(NotificationRoute)
                    .where(NotificationRoute.id == route_id)
                    .values(enabled=True, disabled_reason=None)
                )

            async def resolved() -> bool:
                return [i.state for i in await incidents(pg_sessions)] == ["resolved"]

            await wait_for("the incident resolves", resolved)
    [incident] = await incidents(pg_sessions)
    assert incident.labels == {"route": str(route_id)}
