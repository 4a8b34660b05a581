"""The session cookie is `__Host-cw_session` when served over https, `cw_session` over http."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from tests.conftest import app_client


async def make_token(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, "alice")
        _, token = await service.create_token(
            session, user, name="test", scopes=frozenset({"read", "write"})
        )
    return token


def set_cookie(answer: httpx.Response) -> tuple[str, str, dict[str, str]]:
    """The one cookie the answer sets: (name, value, attributes as the browser reads them)."""
    [header] = answer.headers.get_list("set-cookie")
    jar = SimpleCookie()
    jar.load(header)
    [(name, morsel)] = jar.items()
    flags = {key: str(value) for key, value in morsel.items() if value}
    return name, morsel.value, flags


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [("https://clips.example.org", "__Host-cw_session"), ("http://127.0.0.1:8000", "cw_session")],
)
async def test_the_cookie_is_named_for_the_scheme_served(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    base_url: str,
    expected: str,
) -> None:
    https = base_url.startswith("https://")
    token = await make_token(sessionmaker)
    async with app_client(settings.model_copy(update={"base_url": base_url})) as client:
        login = await client.post("/auth/token-login", headers={"Authorization": f"Bearer {token}"})
        assert login.status_code == 200, login.text
        name, secret, flags = set_cookie(login)
        assert name == expected
        # What a browser demands of a `__Host-` cookie: Secure, Path=/, no Domain.
        assert flags["path"] == "/"
        assert "domain" not in flags
        assert ("secure" in flags) == https
        assert "httponly" in flags
        client.cookies.clear()  # each request below sends the cookie it names

        me = await client.get("/api/v1/me", headers={"Cookie": f"{expected}={secret}"})
        assert me.status_code == 200, me.text
        other = "cw_session" if https else "__Host-cw_session"
        stranger = await client.get("/api/v1/me", headers={"Cookie": f"{other}={secret}"})
        assert stranger.status_code == 401  # the other name is no session here

        csrf = login.json()["csrf_token"]
        logout = await client.post(
            "/auth/logout", headers={"Cookie": f"{expected}={secret}", "X-CSRF-Token": csrf}
        )
        assert logout.status_code == 204, logout.text
        name, value, flags = set_cookie(logout)
        # Deleted under its own name, with the attributes a browser needs to accept that.
        assert (name, value) == (expected, "")
        assert flags["max-age"] == "0"
        assert flags["path"] == "/"
        assert ("secure" in flags) == https
