"""/api/v1/status and `clipwatch status` tell who is live and how the EventSub socket is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.models import Channel, ChannelLive, WorkerTask

Sessions = async_sessionmaker[AsyncSession]


async def test_status_lists_live_channels_and_the_socket(
    client: httpx.AsyncClient, sessionmaker: Sessions
) -> None:
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        for n, (login, tracked, live, started) in enumerate(
            [
                ("early", True, True, now - timedelta(hours=2)),
                ("late", True, True, now - timedelta(minutes=5)),
                ("resting", True, False, None),
                ("untracked", False, True, now - timedelta(hours=1)),
            ]
        ):
            session.add(Channel(id=str(100 + n), login=login, display_name=login, tracked=tracked))
            session.add(
                ChannelLive(
                    channel_id=str(100 + n),
                    live=live,
                    started_at=started,
                    source="poll",
                    changed_at=now,
                    checked_at=now,
                )
            )
        session.add(
            WorkerTask(
                worker="w:1",
                task="eventsub",
                state="running",
                started_at=now,
                heartbeat_at=now,
                detail={
                    "eventsub": "holder",
                    "socket": "connected",
                    "session_id": "abc",
                    "subscriptions": 6,
                    "total_cost": 6,
                    "max_total_cost": 10,
                    "covered_channels": 2,
                    "over_budget_channels": 0,
                },
            )
        )
    status = (await client.get("/api/v1/status")).json()
    assert status["sync"]["live"] == 2
    assert status["sync"]["live_channels"] == ["late", "early"]  # the latest to go live first
    assert status["eventsub"].startswith("connected on w:1, session abc, 6 subscriptions")
    assert "(cost 6/10)" in status["eventsub"]
