"""`/auth/login?eventsub=true`: an admin's login with Twitch also connects its token for EventSub
(stored sealed, with the refresh token); a member's is not kept; a plain login keeps none."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import update

from clipwatch.accounts.secrets import unseal
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import TwitchUserToken, User
from tests.conftest import app_client
from tests.twitch.conftest import Sim
from tests.twitch.eventsub_helpers import Sessions


async def log_in(app: httpx.AsyncClient, query: str = "") -> httpx.Response:
    start = await app.get(f"/auth/login{query}")
    assert start.status_code == 302
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.headers["location"])
    back = consent.headers["location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    done = await app.get("/auth/callback", params=params)
    assert done.status_code == 302, done.text
    app.cookies.clear()
    return done


async def stored(sessionmaker: Sessions) -> TwitchUserToken | None:
    async with session_scope(sessionmaker) as session:
        return await session.get(TwitchUserToken, "eventsub")


async def test_an_admins_login_with_eventsub_connects_its_token(
    twitch_settings: Settings, sim: Sim, sessionmaker: Sessions
) -> None:
    sim.twitch.add_channel("boss")
    sim.twitch.consenting_login = "boss"
    async with app_client(twitch_settings) as app:
        # A member asking for it: logged in, the token not kept (and given back).
        await log_in(app, "?eventsub=true")
        assert await stored(sessionmaker) is None
        async with session_scope(sessionmaker) as session:
            await session.execute(update(User).where(User.name == "boss").values(role="admin"))
        # A plain login of the admin keeps nothing either.
        await log_in(app)
        assert await stored(sessionmaker) is None
        done = await log_in(app, "?eventsub=true")
        assert "cw_session" in done.cookies
    row = await stored(sessionmaker)
    assert row is not None
    assert row.login == "boss"
    assert row.connected_by is not None
    access = unseal(twitch_settings.signing_key, row.access_token_sealed)
    assert access in sim.twitch.user_grants  # a live user token of the simulator
    assert row.refresh_token_sealed is not None
    refresh = unseal(twitch_settings.signing_key, row.refresh_token_sealed)
    assert refresh in sim.twitch.refresh_tokens
