"""The Me pages in-process on both databases: /login (token form), /logout, /me (who I am,
preferences, API tokens, sessions), /me/feed; the CSRF proof and origin on every form;
hypothesis over the login and preferences forms (never a 500)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.api.middleware import PAGE_CSP
from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.errors import NotFound
from tests.conftest import app_client
from tests.factories import helix_clip, store_clips

COOKIE = "cw_session"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def roomy(
    settings: Settings, engine: object, cache: CacheManager
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with room for many logins and pages (the fuzz tests)."""
    update = {
        "rate_limit_anonymous": "100000/minute",
        "rate_limit_auth": "100000/minute",
        "rate_limit_user": "100000/minute",
    }
    async with app_client(settings.model_copy(update=update), cache=cache) as http:
        yield http


async def make_token(
    sessionmaker: async_sessionmaker[AsyncSession],
    user_name: str,
    token_name: str = "laptop",
    *,
    scopes: frozenset[str] = frozenset({"read", "write"}),
    admin: bool = False,
    expires_at: datetime | None = None,
) -> str:
    async with session_scope(sessionmaker) as session:
        try:
            user = await service.user_by_name(session, user_name)
        except NotFound:
            user = await service.create_user(session, user_name, admin=admin)
        _, plaintext = await service.create_token(
            session, user, name=token_name, scopes=scopes, expires_at=expires_at
        )
    return plaintext


async def log_in(http: httpx.AsyncClient, token: str, next_path: str = "/me") -> httpx.Response:
    return await http.post("/login", data={"token": token, "next": next_path})


def csrf_of(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found is not None, "no CSRF proof in the page"
    return found.group(1)


async def csrf(http: httpx.AsyncClient) -> str:
    page = await http.get("/me")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def token_names(html: str) -> list[str]:
    start = html.index('id="tokens-title"')
    end = html.index("</table>", start) if "</table>" in html[start:] else start
    return re.findall(r"<tr>\s*<td>([^<]+?) <span", html[start:end])


# --- Log in and out ---------------------------------------------------------------------------


async def test_the_login_form(client: httpx.AsyncClient) -> None:
    page = await client.get("/login", params={"next": "/me/feed"})
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert '<label for="login-token">API token</label>' in html
    field = re.search(r'<input id="login-token"[^>]*>', html, re.DOTALL)
    assert field is not None
    assert 'type="password"' in field.group(0)
    assert 'autocomplete="off"' in field.group(0)
    assert '<button type="submit">Log in</button>' in html
    assert '<input type="hidden" name="next" value="/me/feed">' in html
    # No Twitch credentials in the test settings: no Twitch link.
    assert "Log in with Twitch" not in html
    assert (await client.get("/login", params={"done": "nonsense"})).status_code == 422
    assert (await client.get("/login", params={"other": "1"})).status_code == 422


async def test_with_twitch_configured_the_login_page_offers_it(
    settings: Settings, engine: object, cache: CacheManager
) -> None:
    twitch = settings.model_copy(
        update={"twitch_client_id": "client", "twitch_client_secret": "secret"}
    )
    async with app_client(twitch, cache=cache) as http:
        page = await http.get("/login")
    assert page.status_code == 200
    assert '<a href="/auth/login">Log in with Twitch</a>' in page.text
    assert "API token" in page.text


async def test_log_in_with_a_token(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    token = await make_token(sessionmaker, "ann")
    answer = await log_in(client, token, "/me/feed?cursor=abc")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/me/feed?cursor=abc"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    me = await client.get("/me")
    assert me.status_code == 200
    assert "Me: ann" in me.text
    assert "with the API token “laptop”" in me.text
    assert token not in me.text
    # Already signed in: the login page sends the browser on.
    again = await client.get("/login", params={"next": "/me/feed"})
    assert again.status_code == 303
    assert again.headers["location"] == "/me/feed"
    posted = await log_in(client, token, "/")
    assert posted.status_code == 303
    assert posted.headers["location"] == "/"
    # The API sees the same session (its scopes are the token's).
    api = await client.get("/api/v1/me")
    assert api.status_code == 200
    assert api.json()["via"] == "session"
    assert api.json()["scopes"] == ["read", "write"]


async def test_a_read_only_token_gives_a_read_only_session(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    token = await make_token(sessionmaker, "ann", scopes=frozenset({"read"}))
    assert (await log_in(client, token)).status_code == 303
    me = await client.get("/me")
    assert me.status_code == 200
    assert "Create token" not in me.text
    assert "read-only token" in me.text
    proof = csrf_of(me.text)
    saved = await client.post("/me/preferences", data={"csrf": proof, "min_views": "5"})
    assert saved.status_code == 403
    assert "write" in saved.text


@pytest.mark.parametrize("kind", ["wrong", "revoked", "expired", "blank"])
async def test_a_bad_token_is_a_401_page_without_a_cookie(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], kind: str
) -> None:
    token = await make_token(sessionmaker, "ann")
    if kind == "wrong":
        token = token[:-6] + "AAAAAA"
    elif kind == "revoked":
        async with session_scope(sessionmaker) as session:
            await service.revoke_token_by_prefix(session, token[:11])
    elif kind == "expired":
        token = await make_token(
            sessionmaker, "ann", "old", expires_at=datetime.now(UTC) + timedelta(seconds=1)
        )
        async with session_scope(sessionmaker) as session:
            ann = await service.user_by_name(session, "ann")
            for row in await service.tokens_of(session, service.operator("t"), ann.id):
                if row.name == "old":
                    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    elif kind == "blank":
        token = ""
    answer = await log_in(client, token)
    assert answer.status_code == 401, answer.text
    assert "set-cookie" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    error = re.search(r'<p class="bad" id="login-token-error">([^<]+)</p>', html)
    assert error is not None
    assert "did not log you in" in error.group(1)
    assert 'aria-describedby="login-token-hint login-token-error"' in html
    assert 'aria-invalid="true"' in html
    if token:
        assert token not in html
        assert token[:11] not in html
    assert (await client.get("/me")).status_code == 303


async def test_failed_logins_count_against_the_auth_limit(
    settings: Settings, engine: object, cache: CacheManager
) -> None:
    strict = settings.model_copy(update={"rate_limit_auth": "3/minute"})
    async with app_client(strict, cache=cache) as http:
        codes = [(await log_in(http, "cw_nope")).status_code for _ in range(5)]
    assert codes[:3] == [401, 401, 401]
    assert codes[3:] == [429, 429]


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "evil", ""]
)
async def test_next_off_the_site_goes_to_me(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], target: str
) -> None:
    token = await make_token(sessionmaker, "ann")
    answer = await log_in(client, token, target)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/me"
    page = await client.get("/login", params={"next": target})
    assert page.headers["location"] == "/me"


async def test_log_out_ends_the_session(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    token = await make_token(sessionmaker, "ann")
    await log_in(client, token)
    old = client.cookies[COOKIE]
    proof = await csrf(client)
    answer = await client.post("/logout", data={"csrf": proof})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    assert f'{COOKIE}=""' in answer.headers["set-cookie"]
    assert COOKIE not in client.cookies
    # The old cookie no longer works: /me sends the browser to log in.
    client.cookies.set(COOKIE, old)
    me = await client.get("/me")
    assert me.status_code == 303
    assert me.headers["location"] == "/login?next=/me"
    # Without a session: nothing to close, home.
    client.cookies.clear()
    nobody = await client.post("/logout", content=b"", headers=FORM)
    assert nobody.status_code == 303
    assert nobody.headers["location"] == "/"


async def test_forms_need_this_sessions_proof_and_this_site(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    other = await make_token(sessionmaker, "bob")
    await log_in(client, other)
    bobs_proof = await csrf(client)
    client.cookies.clear()
    await log_in(client, await make_token(sessionmaker, "ann"))
    for data in ({}, {"csrf": ""}, {"csrf": bobs_proof}):
        for path in ("/logout", "/me/preferences", "/me/tokens"):
            answer = await client.post(path, data={**data, "name": "x", "scopes": "read"})
            assert answer.status_code == 403, (path, data)
            assert answer.headers["content-type"].startswith("text/html")
            assert "proof" in answer.text
    assert (await client.get("/me")).status_code == 200  # still signed in
    proof = await csrf(client)
    evil = {"origin": "https://evil.example"}
    answer = await client.post("/logout", data={"csrf": proof}, headers=evil)
    assert answer.status_code == 403
    assert "another site" in answer.text
    client.cookies.clear()
    login = await client.post(
        "/login", data={"token": other, "next": "/me"}, headers={"referer": "https://evil.example/"}
    )
    assert login.status_code == 403
    assert "set-cookie" not in login.headers
    json = await client.post("/login", json={"token": other})
    assert json.status_code == 400


# --- Tokens -----------------------------------------------------------------------------------


async def test_me_shows_my_tokens_only(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await make_token(sessionmaker, "bob", "bobs-<b>secret</b>-token")
    token = await make_token(sessionmaker, "ann", "laptop")
    await make_token(sessionmaker, "ann", "grafana <i>", scopes=frozenset({"read"}))
    await log_in(client, token)
    page = await client.get("/me")
    assert token_names(page.text) == ["laptop", "grafana &lt;i&gt;"]
    assert "bobs-" not in page.text
    assert 'Revoke<span class="sr"> token laptop</span>' in page.text
    # A member gets no admin scope to tick.
    assert 'value="admin"' not in page.text
    assert 'name="scopes" value="write"' in page.text


async def test_an_admin_may_give_the_admin_scope(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    token = await make_token(
        sessionmaker, "root", admin=True, scopes=frozenset({"read", "write", "admin"})
    )
    await log_in(client, token)
    page = await client.get("/me")
    assert 'name="scopes" value="admin"' in page.text


async def test_create_shows_the_secret_once(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await log_in(client, await make_token(sessionmaker, "ann"))
    proof = await csrf(client)
    body = urlencode(
        [("csrf", proof), ("name", "grafana"), ("scopes", "read"), ("expires_in_days", "30")]
    )
    created = await client.post("/me/tokens", content=body, headers=FORM)
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    secret = re.search(r'<p class="secret" id="new-token">([^<]+)</p>', created.text)
    assert secret is not None
    plaintext = secret.group(1)
    assert plaintext.startswith("cw_")
    assert "will not be shown again" in created.text
    assert "grafana" in token_names(created.text)
    # The secret works as the API's credential, with the scopes asked for.
    api = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"})
    assert api.status_code == 200
    assert api.json()["via"] == "token"
    listed = await client.get("/api/v1/me/tokens")
    grafana = next(t for t in listed.json()["data"] if t["name"] == "grafana")
    assert grafana["scopes"] == ["read"]
    assert grafana["expires_at"] is not None
    # A reload of /me never shows it again.
    again = await client.get("/me")
    assert plaintext not in again.text
    assert 'class="secret"' not in again.text


@pytest.mark.parametrize(
    ("fields", "field", "status"),
    [
        ([("name", ""), ("scopes", "read")], "name", 422),
        ([("name", "a\tb"), ("scopes", "read")], "name", 422),
        ([("name", "x" * 101), ("scopes", "read")], "name", 422),
        ([("name", "ok")], "scopes", 422),
        ([("name", "ok"), ("scopes", "root")], "scopes", 422),
        ([("name", "ok"), ("scopes", "admin")], "scopes", 403),
        ([("name", "ok"), ("scopes", "read"), ("expires_in_days", "0")], "expires_in_days", 422),
        ([("name", "ok"), ("scopes", "read"), ("expires_in_days", "soon")], "expires_in_days", 422),
        ([("name", "ok"), ("expires_in_days", "9" * 500)], "expires_in_days", 422),
    ],
)  # fmt: skip
async def test_a_bad_token_form_comes_back_with_the_field_named(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    fields: list[tuple[str, str]],
    field: str,
    status: int,
) -> None:
    await log_in(client, await make_token(sessionmaker, "ann"))
    proof = await csrf(client)
    answer = await client.post(
        "/me/tokens", content=urlencode([("csrf", proof), *fields]), headers=FORM
    )
    assert answer.status_code == status, answer.text
    assert f"<strong>{field}</strong>" in answer.text
    assert 'class="secret"' not in answer.text
    listed = await client.get("/api/v1/me/tokens")
    assert [t["name"] for t in listed.json()["data"]] == ["laptop"]


async def test_revoke_my_token_after_a_confirmation(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    spare = await make_token(sessionmaker, "ann", "spare")
    await log_in(client, await make_token(sessionmaker, "ann", "laptop"))
    listed = (await client.get("/api/v1/me/tokens")).json()["data"]
    spare_id = next(t["id"] for t in listed if t["name"] == "spare")
    confirm = await client.get(f"/me/tokens/{spare_id}/revoke")
    assert confirm.status_code == 200
    assert "Yes, revoke “spare”" in confirm.text
    assert "logs you out" not in confirm.text
    proof = csrf_of(confirm.text)
    done = await client.post(f"/me/tokens/{spare_id}/revoke", data={"csrf": proof})
    assert done.status_code == 303
    assert done.headers["location"] == "/me?done=token-revoked#tokens"
    page = await client.get("/me", params={"done": "token-revoked"})
    assert "Token revoked" in page.text
    assert token_names(page.text) == ["laptop"]
    assert "1 revoked token is not shown" in page.text
    gone = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {spare}"})
    assert gone.status_code == 401
    # Revoked: no confirmation page any more.
    assert (await client.get(f"/me/tokens/{spare_id}/revoke")).status_code == 404


async def test_another_users_token_is_a_404_page(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    bobs = await make_token(sessionmaker, "bob", "bobs")
    await log_in(client, await make_token(sessionmaker, "ann"))
    async with session_scope(sessionmaker) as session:
        bob = await service.user_by_name(session, "bob")
        bob_token = (await service.tokens_of(session, service.operator("t"), bob.id))[0].id
    proof = await csrf(client)
    for answer in (
        await client.get(f"/me/tokens/{bob_token}/revoke"),
        await client.post(f"/me/tokens/{bob_token}/revoke", data={"csrf": proof}),
        await client.post("/me/tokens/999999/revoke", data={"csrf": proof}),
    ):
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")
    assert (await client.get("/me/tokens/01/revoke")).status_code == 422
    still = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {bobs}"})
    assert still.status_code == 200


async def test_revoking_the_token_of_this_session_signs_out(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await log_in(client, await make_token(sessionmaker, "ann", "laptop"))
    old = client.cookies[COOKIE]
    listed = (await client.get("/api/v1/me/tokens")).json()["data"]
    confirm = await client.get(f"/me/tokens/{listed[0]['id']}/revoke")
    assert "also logs you out here" in confirm.text
    answer = await client.post(
        f"/me/tokens/{listed[0]['id']}/revoke", data={"csrf": csrf_of(confirm.text)}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?done=token-revoked"
    assert COOKIE not in client.cookies
    page = await client.get("/login", params={"done": "token-revoked"})
    assert page.status_code == 200
    assert "so you are signed out" in page.text
    client.cookies.set(COOKIE, old)
    assert (await client.get("/me")).headers["location"] == "/login?next=/me"


async def test_sessions_listed_and_revoked(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    token = await make_token(sessionmaker, "ann")
    await log_in(client, token)
    first = client.cookies[COOKIE]
    client.cookies.clear()
    await log_in(client, token)
    page = await client.get("/me")
    assert page.text.count('<span class="pill">this browser</span>') == 1
    sessions = (await client.get("/api/v1/me/sessions")).json()["data"]
    assert len(sessions) == 2
    other = next(s["id"] for s in sessions if not s["current"])
    done = await client.post(f"/me/sessions/{other}/revoke", data={"csrf": csrf_of(page.text)})
    assert done.headers["location"] == "/me?done=session-revoked#sessions"
    assert (await client.get("/me")).status_code == 200
    current = client.cookies[COOKIE]
    client.cookies.set(COOKIE, first)
    assert (await client.get("/me")).status_code == 303
    client.cookies.set(COOKIE, current)
    mine = next(s["id"] for s in sessions if s["current"])
    out = await client.post(f"/me/sessions/{mine}/revoke", data={"csrf": await csrf(client)})
    assert out.headers["location"] == "/login?done=session-revoked"
    assert (await client.get("/me")).status_code == 303


# --- Preferences ------------------------------------------------------------------------------


async def test_preferences_saved_come_back(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await log_in(client, await make_token(sessionmaker, "ann"))
    proof = await csrf(client)
    saved = await client.post(
        "/me/preferences",
        data={
            "csrf": proof,
            "channels": "alpha\r\n111, beta",
            "games": "Just Chatting\nWarhammer 40,000: Space Marine 2\n\n",
            "languages": "EN, pt-br",
            "min_views": " 25 ",
            "default_sort": "views",
            "time_zone": "Europe/Berlin",
        },
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/me?done=prefs"
    page = await client.get("/me", params={"done": "prefs"})
    assert "Preferences saved" in page.text
    assert ">alpha\n111\nbeta</textarea>" in page.text
    assert ">Just Chatting\nWarhammer 40,000: Space Marine 2</textarea>" in page.text
    assert 'name="languages" value="en pt-br"' in page.text
    assert 'name="min_views" inputmode="numeric" value="25"' in page.text
    assert '<option value="views" selected>' in page.text
    assert 'value="Europe/Berlin"' in page.text
    api = (await client.get("/api/v1/me/preferences")).json()
    assert api["channels"] == ["alpha", "111", "beta"]
    assert api["games"] == ["Just Chatting", "Warhammer 40,000: Space Marine 2"]
    assert api["languages"] == ["en", "pt-br"]
    assert api["min_views"] == 25
    assert api["default_sort"] == "views"
    assert api["time_zone"] == "Europe/Berlin"
    # Blank fields are the defaults (PUT replaces all).
    cleared = await client.post("/me/preferences", data={"csrf": proof, "time_zone": ""})
    assert cleared.status_code == 303
    api = (await client.get("/api/v1/me/preferences")).json()
    assert api["channels"] == []
    assert api["min_views"] is None
    assert api["default_sort"] is None
    assert api["time_zone"] == "UTC"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("min_views", "-1", "whole number"),
        ("min_views", "lots", "whole number"),
        ("min_views", "1" * 14, "or less"),
        ("time_zone", "Mars/Olympus", "not an IANA time zone"),
        ("languages", "english!", "language code"),
        ("default_sort", "best", "must be"),
        ("channels", "a" * 65, "entry 1: must be at most 64 characters"),
        ("games", "ok\nbad\x01game", "entry 2: must not contain control characters"),
        ("channels", " ".join(f"c{n}" for n in range(201)), "at most 200 items"),
    ],
)
async def test_bad_preferences_are_a_422_with_the_field_named(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    field: str,
    value: str,
    words: str,
) -> None:
    await log_in(client, await make_token(sessionmaker, "ann"))
    proof = await csrf(client)
    answer = await client.post(
        "/me/preferences", data={"csrf": proof, field: value, "channels-x": "ignored"}
    )
    assert answer.status_code == 422, answer.text
    html = answer.text
    assert f"<strong>{field}</strong>" in html
    assert words in html
    # The message sits next to its field, which points at it.
    assert 'aria-invalid="true"' in html
    assert re.search(r'aria-describedby="[^"]*-error"', html)
    assert "\x01" not in html
    api = (await client.get("/api/v1/me/preferences")).json()
    assert api["min_views"] is None
    assert api["channels"] == []


# --- The feed ---------------------------------------------------------------------------------


async def _feed_archive(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await store_clips(
        sessionmaker,
        [
            *(
                helix_clip(id=f"Alpha{n:02d}", broadcaster_id="111", broadcaster_name="Alpha",
                           view_count=100 + n, created_at=f"2025-01-{n + 1:02d}T10:00:00Z")
                for n in range(30)
            ),
            helix_clip(id="Beta01", broadcaster_id="222", broadcaster_name="Beta",
                       view_count=5000, created_at="2025-01-15T10:00:00Z"),
            helix_clip(id="AlphaFew", broadcaster_id="111", broadcaster_name="Alpha",
                       view_count=3, created_at="2025-01-20T10:00:00Z"),
        ],
    )  # fmt: skip


def card_ids(html: str) -> list[str]:
    return re.findall(r'<h2 class="title"><a href="/clips/([^"]+)"', html)


async def test_my_feed_shows_what_i_follow(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await _feed_archive(sessionmaker)
    anonymous = await client.get("/me/feed")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/me/feed"
    token = await make_token(sessionmaker, "ann")
    answer = await log_in(client, token, "/me/feed")
    assert answer.headers["location"] == "/me/feed"
    # No preferences: every clip, and a hint to set them.
    everything = await client.get("/me/feed")
    assert everything.status_code == 200
    assert "I follow no channel or game yet" in everything.text
    assert len(card_ids(everything.text)) == 24
    proof = await csrf(client)
    await client.post(
        "/me/preferences",
        data={"csrf": proof, "channels": "111", "min_views": "50", "default_sort": "views"},
    )
    first = await client.get("/me/feed")
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    ids = card_ids(first.text)
    assert len(ids) == 24
    assert all(i.startswith("Alpha") for i in ids)
    assert "AlphaFew" not in ids
    # The API's feed=mine gives the same clips in the same order.
    api = await client.get("/api/v1/clips", params={"feed": "mine", "limit": 24})
    assert [c["id"] for c in api.json()["data"]] == ids
    more = re.search(r'<a id="more" rel="next" href="([^"]+)">More clips</a>', first.text)
    assert more is not None
    second = await client.get(more.group(1).replace("&amp;", "&"))
    rest = card_ids(second.text)
    assert len(rest) == 6
    assert not set(rest) & set(ids)
    assert 'id="more"' not in second.text
    # Another person's feed is theirs: bob has no views floor.
    client.cookies.clear()
    await log_in(client, await make_token(sessionmaker, "bob"))
    assert "AlphaFew" in card_ids((await client.get("/me/feed")).text)


async def test_an_empty_feed_says_set_your_preferences(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await _feed_archive(sessionmaker)
    await log_in(client, await make_token(sessionmaker, "ann"))
    proof = await csrf(client)
    await client.post("/me/preferences", data={"csrf": proof, "channels": "nobody"})
    page = await client.get("/me/feed")
    assert page.status_code == 200
    assert card_ids(page.text) == []
    assert '<a href="/me#preferences">Set your preferences</a>' in page.text
    assert (await client.get("/me/feed", params={"cursor": "!"})).status_code == 422
    assert (await client.get("/me/feed", params={"cursor": "abc"})).status_code in (400, 422)


# --- Never a 500 ------------------------------------------------------------------------------

ANY_TEXT = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20).map(lambda s: s + "\x00"),
    st.sampled_from(["", " ", "cw_abcdefgh_" + "a" * 43, "9" * 5000, "/me", "//evil", "Ω"]),
    st.just("x" * 70_000),
)
FIELDS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "token",
                "next",
                "csrf",
                "channels",
                "games",
                "languages",
                "min_views",
                "default_sort",
                "time_zone",
                "other",
            ]
        ),
        ANY_TEXT,
    ),
    max_size=6,
)
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(fields=FIELDS)
async def test_any_login_form_is_a_page_never_a_500(
    roomy: httpx.AsyncClient, fields: list[tuple[str, str]]
) -> None:
    roomy.cookies.clear()
    answer = await roomy.post("/login", content=urlencode(fields), headers=FORM)
    assert answer.status_code in (400, 401), (fields, answer.status_code)
    assert answer.headers["content-type"].startswith("text/html")
    assert "\x00" not in answer.text


@FUZZ
@given(fields=FIELDS, proof=st.booleans())
async def test_any_preferences_form_is_a_page_never_a_500(
    roomy: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    fields: list[tuple[str, str]],
    proof: bool,
) -> None:
    if COOKIE not in roomy.cookies:
        await log_in(roomy, await make_token(sessionmaker, "fuzz"))
    sent = [("csrf", await csrf(roomy))] if proof else []
    answer = await roomy.post("/me/preferences", content=urlencode(sent + fields), headers=FORM)
    assert answer.status_code in (303, 400, 403, 422), (fields, answer.status_code)
    if answer.status_code != 303:
        assert answer.headers["content-type"].startswith("text/html")
        assert "\x00" not in answer.text
