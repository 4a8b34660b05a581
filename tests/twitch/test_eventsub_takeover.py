"""Two worker processes on one PostgreSQL database: exactly one holds the EventSub socket;
`kill -9` it and the other takes over within 30 s (the lease's 15 s TTL, then a welcome
and the subscriptions), and notifications reach the live state again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import load_settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import ChannelLive, Lease
from clipwatch.runtime.eventsub_task import LEASE_NAME
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET
from clipwatch.twitch.user_tokens import connect_user_token
from tests.conftest import TEST_SECRET
from tests.processes import python_process
from tests.twitch.conftest import Sim
from tests.twitch.eventsub_helpers import eventsub_settings, track, wait_for

TAKEOVER_LIMIT_S = 30.0
WORKER = """
import asyncio, sys
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker
from clipwatch.runtime.eventsub_task import eventsub_forever
from clipwatch.runtime.supervisor import Supervisor

async def main() -> None:
    settings = load_settings()
    sessions = create_sessionmaker(create_engine(settings))
    supervisor = Supervisor(sys.argv[1])
    stop = asyncio.Event()

    async def body(state):
        await eventsub_forever(settings, sessions, stop, state, owner=sys.argv[1])

    await asyncio.gather(
        supervisor.run("eventsub", body, stop), supervisor.report_forever(sessions, stop)
    )

asyncio.run(main())
"""
Sessions = async_sessionmaker[AsyncSession]


def worker_process(
    name: str, env: dict[str, str]
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return python_process(WORKER, name, env=env)


async def holder(sessions: Sessions) -> str | None:
    async with session_scope(sessions) as session:
        lease = await session.get(Lease, LEASE_NAME)
        return lease.owner if lease is not None and lease.expires_at > datetime.now(UTC) else None


def sockets(sim: Sim) -> list[object]:
    """Open sockets that hold subscriptions."""
    return [s for s in sim.twitch.eventsub.sessions() if s.open and s.subscription_ids]


async def test_kill_9_the_holder_and_the_other_takes_over_within_30_s(
    sim: Sim, pg_sessions: Sessions, postgresql_url: str, tmp_path: Path
) -> None:
    base = load_settings(database_url=postgresql_url, secret_key=TEST_SECRET, var_dir=tmp_path)
    settings = eventsub_settings(base, sim)
    [alpha] = await track(pg_sessions, sim, ["alpha"])
    access, refresh = sim.twitch.issue_user_token("clipbot")
    await connect_user_token(settings, pg_sessions, access, refresh)
    env = {
        **os.environ,
        "CLIPWATCH_DATABASE_URL": postgresql_url,
        "CLIPWATCH_SECRET_KEY": TEST_SECRET,
        "CLIPWATCH_TWITCH_CLIENT_ID": CLIENT_ID,
        "CLIPWATCH_TWITCH_CLIENT_SECRET": CLIENT_SECRET,
        "CLIPWATCH_TWITCH_API_URL": f"{sim.base}/helix",
        "CLIPWATCH_TWITCH_AUTH_URL": f"{sim.base}/oauth2",
        "CLIPWATCH_TWITCH_EVENTSUB_WS_URL": settings.twitch_eventsub_ws_url,
        "CLIPWATCH_EVENTSUB_KEEPALIVE_SECONDS": "10",
    }
    with worker_process("one", env) as one, worker_process("two", env) as two:
        await wait_for(lambda: sockets(sim), "a socket with subscriptions", deadline_s=60)
        first = await wait_for(lambda: holder(pg_sessions), "a lease holder")
        # Exactly one socket while both run, over a few renewals (5 s apart).
        until = time.monotonic() + 6.0
        while time.monotonic() < until:
            assert len([s for s in sim.twitch.eventsub.sessions() if s.open]) == 1
            assert await holder(pg_sessions) == first
            await asyncio.sleep(0.2)  # sampling interval of the checks above
        victim, survivor = (one, "two") if first == "one" else (two, "one")
        old_session = sockets(sim)[0]
        killed_at = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)

        def new_socket() -> object | None:
            fresh = [s for s in sockets(sim) if s.id != old_session.id]  # type: ignore[attr-defined]
            return fresh[0] if fresh else None

        await wait_for(new_socket, "the survivor's socket", deadline_s=TAKEOVER_LIMIT_S + 15)
        took = time.monotonic() - killed_at
        assert await holder(pg_sessions) == survivor
        assert took < TAKEOVER_LIMIT_S, f"takeover took {took:.1f} s"
        assert len([s for s in sim.twitch.eventsub.sessions() if s.open]) == 1
        # The survivor's socket delivers: stream.online reaches the live state.
        sim.twitch.go_live(alpha)

        async def live() -> bool:
            async with session_scope(pg_sessions) as session:
                row = await session.get(ChannelLive, alpha)
                return row is not None and row.live and row.source == "eventsub"

        await wait_for(live, "alpha live by the survivor's socket")
        print(f"eventsub takeover after kill -9: {took:.1f} s")
