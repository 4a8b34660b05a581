"""Log in with Twitch: the authorization-code flow against the simulator's consent page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from tests.conftest import app_client
from tests.twitch.conftest import Sim


async def _consent(app: httpx.AsyncClient) -> tuple[str, httpx.Response]:
    """Start at /auth/login, pass Twitch's consent page; the callback URL Twitch sends to."""
    start = await app.get("/auth/login")
    assert start.status_code == 302
    assert "cw_oauth_state" in start.headers["set-cookie"]
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.headers["location"])
    assert consent.status_code == 302
    return consent.headers["location"], start


async def test_login_creates_then_links_the_user_with_a_fresh_session(
    twitch_settings: Settings, sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    sim.twitch.add_channel("viewer_one")
    sim.twitch.consenting_login = "viewer_one"
    sessions = []
    async with app_client(twitch_settings) as app:
        for _ in range(2):
            back, _ = await _consent(app)
            query = parse_qs(urlsplit(back).query)
            assert urlsplit(back).path == "/auth/callback"
            done = await app.get("/auth/callback", params={k: v[0] for k, v in query.items()})
            assert done.status_code == 302, done.text
            assert done.headers["location"] == "/"
            secret = done.cookies["cw_session"]
            app.cookies.clear()
            me = await app.get("/api/v1/me", headers={"Cookie": f"cw_session={secret}"})
            assert me.status_code == 200
            assert me.json()["name"] == "viewer_one"
            assert me.json()["role"] == "member"
            sessions.append((me.json()["id"], secret))
    assert sessions[0][0] == sessions[1][0]  # the same user, linked by Twitch id
    assert sessions[0][1] != sessions[1][1]  # a new session at every login


async def test_a_wrong_or_missing_state_is_refused(
    twitch_settings: Settings, sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    sim.twitch.add_channel("viewer_two")
    sim.twitch.consenting_login = "viewer_two"
    async with app_client(twitch_settings) as app:
        back, _ = await _consent(app)
        query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
        forged = await app.get("/auth/callback", params={**query, "state": "forged"})
        assert forged.status_code == 400
        app.cookies.clear()  # a callback without the browser's state cookie
        stranger = await app.get("/auth/callback", params=query)
        assert stranger.status_code == 400
        assert "cw_session" not in stranger.cookies


async def test_refused_consent_opens_no_session(
    twitch_settings: Settings, sim: Sim, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    sim.twitch.consenting_login = None
    async with app_client(twitch_settings) as app:
        back, _ = await _consent(app)
        query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
        assert query["error"] == "access_denied"
        answer = await app.get("/auth/callback", params=query)
        assert answer.status_code == 400
        assert "cw_session" not in answer.cookies
