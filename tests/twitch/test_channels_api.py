"""Admins track channels through the API; it resolves logins through Twitch (the simulator)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from clipwatch.twitch import sync
from tests.api.test_accounts import bearer, make_user
from tests.conftest import app_client
from tests.twitch.conftest import Sim


async def test_admin_tracks_and_untracks_channels(
    twitch_settings: Settings,
    sim: Sim,
    sessionmaker: async_sessionmaker[AsyncSession],
    cache: CacheManager,
) -> None:
    sim.twitch.add_channel("speedrunner", clips=30, years=0.1)
    _, admin = await make_user(sessionmaker, "root", admin=True, scopes=("read", "write", "admin"))
    _, member = await make_user(sessionmaker, "member")
    # The sync below writes as the worker inside `serve` does: through the app's cache.
    async with app_client(twitch_settings, cache=cache) as client:
        body = {"logins": ["speedrunner", "nosuchchannel"]}
        refused = await client.post("/api/v1/channels", json=body, headers=bearer(member))
        assert refused.status_code == 403
        added = await client.post("/api/v1/channels", json=body, headers=bearer(admin))
        assert added.status_code == 201, added.text
        assert added.json() == {"added": ["speedrunner"], "unknown": ["nosuchchannel"]}

        channel = (await client.get("/api/v1/channels/speedrunner")).json()
        assert channel["tracked"] is True
        assert channel["sync"]["backfill"] == "not started"
        async with sim.client() as twitch:
            await sync.sync_all(twitch, sessionmaker, backfill=True)
        channel = (await client.get("/api/v1/channels/speedrunner")).json()
        assert channel["sync"]["backfill"] == "complete"
        assert channel["sync"]["last_incremental_at"] is not None

        bad = await client.post(
            "/api/v1/channels", json={"logins": ["not a login"]}, headers=bearer(admin)
        )
        assert bad.status_code == 422
        gone = await client.delete("/api/v1/channels/speedrunner", headers=bearer(admin))
        assert gone.status_code == 204
        assert (await client.get("/api/v1/channels/speedrunner")).json()["tracked"] is False
        missing = await client.delete("/api/v1/channels/nobody", headers=bearer(admin))
        assert missing.status_code == 404


async def test_without_twitch_credentials_adding_is_503(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, admin = await make_user(sessionmaker, "root", admin=True, scopes=("read", "write", "admin"))
    async with app_client(settings) as client:
        answer = await client.post(
            "/api/v1/channels", json={"logins": ["x"]}, headers=bearer(admin)
        )
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/problem+json"
