"""Users, tokens, sessions, ownership and preferences through the API, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import ApiToken, UserSession
from tests.conftest import app_client
from tests.factories import helix_clip, store_clips

PROBLEM = "application/problem+json"


async def make_user(
    sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
    *,
    admin: bool = False,
    scopes: tuple[str, ...] = ("read", "write"),
) -> tuple[int, str]:
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, name, admin=admin)
        _, token = await service.create_token(session, user, name="test", scopes=frozenset(scopes))
        return user.id, token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cookie(value: str, csrf: str | None = None) -> dict[str, str]:
    """Headers of a browser request with the session cookie (and the CSRF proof)."""
    headers = {"Cookie": f"cw_session={value}"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return headers


async def login(client: httpx.AsyncClient, token: str) -> tuple[str, str, int]:
    """Open a session with a token: (cookie value, CSRF proof, session id)."""
    answer = await client.post("/auth/token-login", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    value = answer.cookies["cw_session"]
    client.cookies.clear()  # each test sends the cookie it means to use explicitly
    return value, answer.json()["csrf_token"], answer.json()["session"]["id"]


WRITES = [
    ("POST", "/api/v1/me/tokens", {"name": "x", "scopes": ["read"]}),
    ("PATCH", "/api/v1/me", {"name": "renamed"}),
    ("PUT", "/api/v1/me/preferences", {}),
    ("PATCH", "/api/v1/me/preferences", {"min_views": 5}),
    ("DELETE", "/api/v1/me/tokens/1", None),
    ("DELETE", "/api/v1/me/sessions/1", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_writes_without_credentials_are_401(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    answer = await client.request(method, path, json=body)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["www-authenticate"].startswith("Bearer")


async def test_bad_revoked_and_expired_tokens_are_401(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, token = await make_user(sessionmaker, "alice")
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
    # A bad token is refused even where anonymous callers are welcome.
    for bad in [token[:-1] + ("A" if token[-1] != "A" else "B"), "nonsense", ""]:
        answer = await client.get("/api/v1/clips", headers=bearer(bad))
        assert answer.status_code == 401, bad
    assert (
        await client.get("/api/v1/clips", headers={"Authorization": "Basic x"})
    ).status_code == 401

    _, expiring = await make_user(sessionmaker, "bob")
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.prefix == expiring[:11])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    answer = await client.get("/api/v1/me", headers=bearer(expiring))
    assert answer.status_code == 401
    assert "expired" in answer.json()["detail"]

    tokens = (await client.get("/api/v1/me/tokens", headers=bearer(token))).json()["data"]
    revoke = await client.delete(f"/api/v1/me/tokens/{tokens[0]['id']}", headers=bearer(token))
    assert revoke.status_code == 204
    answer = await client.get("/api/v1/me", headers=bearer(token))
    assert answer.status_code == 401
    assert "revoked" in answer.json()["detail"]


async def test_read_token_cannot_write(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, token = await make_user(sessionmaker, "reader", scopes=("read",))
    assert (await client.get("/api/v1/me/tokens", headers=bearer(token))).status_code == 200
    for method, path, body in WRITES:
        answer = await client.request(method, path, json=body, headers=bearer(token))
        assert answer.status_code == 403, (method, path)


async def test_token_is_shown_once_and_kept_only_as_a_hash(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, token = await make_user(sessionmaker, "alice")
    created = await client.post(
        "/api/v1/me/tokens",
        json={"name": "grafana", "scopes": ["read"], "expires_in_days": 30},
        headers=bearer(token),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["token"].startswith(body["prefix"] + "_")
    assert body["scopes"] == ["read"]
    listed = (await client.get("/api/v1/me/tokens", headers=bearer(token))).json()["data"]
    assert all("token" not in t for t in listed)
    assert {t["prefix"] for t in listed} == {token[:11], body["prefix"]}
    async with session_scope(sessionmaker) as session:
        stored = await session.get(ApiToken, body["id"])
        assert stored is not None
        assert body["token"] not in (stored.secret_hash, stored.prefix)
    # The new token works, with its own (smaller) scopes, and records its use.
    me = await client.get("/api/v1/me", headers=bearer(body["token"]))
    assert me.json()["scopes"] == ["read"]
    listed = (await client.get("/api/v1/me/tokens", headers=bearer(token))).json()["data"]
    assert next(t for t in listed if t["id"] == body["id"])["last_used_at"] is not None


async def test_a_token_cannot_mint_more_than_it_has(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, token = await make_user(sessionmaker, "member")
    for scopes in (["admin"], ["read", "admin"]):
        answer = await client.post(
            "/api/v1/me/tokens", json={"name": "x", "scopes": scopes}, headers=bearer(token)
        )
        assert answer.status_code == 403, scopes
    bad = await client.post(
        "/api/v1/me/tokens", json={"name": "x", "scopes": ["root"]}, headers=bearer(token)
    )
    assert bad.status_code == 422


async def test_other_users_things_are_404_and_admins_see_all(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice_id, alice = await make_user(sessionmaker, "alice")
    bob_id, bob = await make_user(sessionmaker, "bob")
    _, admin = await make_user(sessionmaker, "root", admin=True, scopes=("read", "write", "admin"))
    _, _, bob_session = await login(client, bob)
    bob_token = (await client.get("/api/v1/me/tokens", headers=bearer(bob))).json()["data"][0]
    await client.put("/api/v1/me/preferences", json={"languages": ["de"]}, headers=bearer(bob))

    as_alice = bearer(alice)
    for method, path in [
        ("DELETE", f"/api/v1/me/tokens/{bob_token['id']}"),
        ("DELETE", f"/api/v1/me/sessions/{bob_session}"),
        ("GET", f"/api/v1/users/{bob_id}"),
        ("GET", f"/api/v1/users/{bob_id}/tokens"),
        ("GET", f"/api/v1/users/{bob_id}/sessions"),
        ("GET", f"/api/v1/users/{bob_id}/preferences"),
        ("PATCH", f"/api/v1/users/{bob_id}/preferences"),
        ("GET", "/api/v1/users/999999"),
    ]:
        answer = await client.request(
            method, path, headers=as_alice, json={} if method == "PATCH" else None
        )
        assert answer.status_code == 404, (method, path, answer.text)
    assert (await client.get("/api/v1/users", headers=as_alice)).status_code == 403
    # Bob's things are untouched, and alice can see her own by id.
    assert (await client.get("/api/v1/me", headers=bearer(bob))).status_code == 200
    assert (await client.get(f"/api/v1/users/{alice_id}", headers=as_alice)).status_code == 200

    as_admin = bearer(admin)
    prefs = await client.get(f"/api/v1/users/{bob_id}/preferences", headers=as_admin)
    assert prefs.json()["languages"] == ["de"]
    sessions = await client.get(f"/api/v1/users/{bob_id}/sessions", headers=as_admin)
    assert [s["id"] for s in sessions.json()["data"]] == [bob_session]
    users = await client.get("/api/v1/users", headers=as_admin)
    assert {u["name"] for u in users.json()["data"]} == {"alice", "bob", "root"}
    revoke = await client.delete(f"/api/v1/me/tokens/{bob_token['id']}", headers=as_admin)
    assert revoke.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(bob))).status_code == 401


async def test_session_login_csrf_and_logout(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, token = await make_user(sessionmaker, "alice")
    answer = await client.post("/auth/token-login", headers=bearer(token))
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie
    assert "samesite=lax" in set_cookie
    assert "secure" not in set_cookie  # the base URL is http here
    client.cookies.clear()
    first_id = answer.json()["session"]["id"]
    secret, csrf, session_id = await login(client, token)
    jar = cookie(secret)

    me = await client.get("/api/v1/me", headers=jar)
    assert me.status_code == 200
    assert me.json()["via"] == "session"
    assert me.json()["csrf_token"] == csrf
    body = {"name": "from-web", "scopes": ["read"]}
    without = await client.post("/api/v1/me/tokens", json=body, headers=jar)
    assert without.status_code == 403
    wrong_proof = csrf[:-1] + ("0" if csrf[-1] != "0" else "1")
    wrong = await client.post("/api/v1/me/tokens", json=body, headers=cookie(secret, wrong_proof))
    assert wrong.status_code == 403
    right = await client.post("/api/v1/me/tokens", json=body, headers=cookie(secret, csrf))
    assert right.status_code == 201

    sessions = (await client.get("/api/v1/me/sessions", headers=jar)).json()["data"]
    assert [(s["id"], s["current"]) for s in sessions] == [(first_id, False), (session_id, True)]

    assert (await client.post("/auth/logout", headers=jar)).status_code == 403  # no CSRF proof
    out = await client.post("/auth/logout", headers=cookie(secret, csrf))
    assert out.status_code == 204
    assert (await client.get("/api/v1/me", headers=jar)).status_code == 401
    left = (await client.get("/api/v1/me/sessions", headers=bearer(token))).json()["data"]
    assert [s["id"] for s in left] == [first_id]


async def test_each_login_is_a_new_session_and_revoking_one_leaves_the_other(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, token = await make_user(sessionmaker, "alice")
    first, _, first_id = await login(client, token)
    second, _, second_id = await login(client, token)
    assert first != second
    assert first_id != second_id
    gone = await client.delete(f"/api/v1/me/sessions/{first_id}", headers=bearer(token))
    assert gone.status_code == 204
    assert (await client.get("/api/v1/me", headers=cookie(first))).status_code == 401
    assert (await client.get("/api/v1/me", headers=cookie(second))).status_code == 200


@pytest.mark.parametrize("limit", ["idle", "absolute"])
async def test_sessions_expire(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], limit: str
) -> None:
    _, token = await make_user(sessionmaker, "alice")
    secret, _, session_id = await login(client, token)
    assert (await client.get("/api/v1/me", headers=cookie(secret))).status_code == 200
    past = datetime.now(UTC) - timedelta(days=400)
    values = {"last_seen_at": past} if limit == "idle" else {"expires_at": past}
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(UserSession).where(UserSession.id == session_id).values(**values)
        )
    assert (await client.get("/api/v1/me", headers=cookie(secret))).status_code == 401


async def test_cookie_is_secure_behind_https(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, token = await make_user(sessionmaker, "alice")
    https = settings.model_copy(update={"base_url": "https://clips.example.org"})
    async with app_client(https) as client:
        answer = await client.post("/auth/token-login", headers=bearer(token))
        assert "secure" in answer.headers["set-cookie"].lower()
        assert answer.headers["strict-transport-security"].startswith("max-age=")


async def test_preferences_validate_and_feed_applies_them(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, token = await make_user(sessionmaker, "alice")
    auth = bearer(token)
    defaults = (await client.get("/api/v1/me/preferences", headers=auth)).json()
    assert defaults["channels"] == []
    assert defaults["time_zone"] == "UTC"
    for bad in [
        {"time_zone": "Mars/Olympus"},
        {"languages": ["english!"]},
        {"min_views": -1},
        {"default_sort": "random"},
        {"surprise": 1},
        {"channels": ["x" * 65]},
    ]:
        answer = await client.patch("/api/v1/me/preferences", json=bad, headers=auth)
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"] == PROBLEM

    await store_clips(
        sessionmaker,
        [
            helix_clip(
                id="Followed", broadcaster_id="1", broadcaster_name="Followed", view_count=50
            ),
            helix_clip(
                id="FollowedLow", broadcaster_id="1", broadcaster_name="Followed", view_count=5
            ),
            helix_clip(
                id="FollowedGame",
                broadcaster_id="2",
                broadcaster_name="Other",
                game_id="77",
                view_count=900,
            ),
            helix_clip(
                id="FollowedDe",
                broadcaster_id="1",
                broadcaster_name="Followed",
                language="de",
                view_count=70,
            ),
            helix_clip(
                id="Unfollowed", broadcaster_id="3", broadcaster_name="Third", view_count=1000
            ),
        ],
    )
    put = await client.put(
        "/api/v1/me/preferences",
        json={
            "channels": ["followed"],
            "games": ["77"],
            "min_views": 10,
            "default_sort": "views",
            "time_zone": "Europe/Berlin",
            "languages": ["en"],
        },
        headers=auth,
    )
    assert put.status_code == 200, put.text
    feed = await client.get("/api/v1/clips", params={"feed": "mine"}, headers=auth)
    assert [c["id"] for c in feed.json()["data"]] == ["FollowedGame", "Followed"]
    patch = await client.patch("/api/v1/me/preferences", json={"languages": None}, headers=auth)
    assert patch.json()["languages"] == []
    assert patch.json()["time_zone"] == "Europe/Berlin"  # untouched
    feed = await client.get("/api/v1/clips", params={"feed": "mine"}, headers=auth)
    assert [c["id"] for c in feed.json()["data"]] == ["FollowedGame", "FollowedDe", "Followed"]
    assert (await client.get("/api/v1/clips", params={"feed": "mine"})).status_code == 401


async def test_security_headers_and_no_cors_by_default(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    answer = await client.get("/api/v1/clips", headers={"Origin": "https://evil.example"})
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert "access-control-allow-origin" not in answer.headers
    allowed = settings.model_copy(update={"cors_origins": "https://app.example"})
    async with app_client(allowed) as cors:
        answer = await cors.get("/api/v1/clips", headers={"Origin": "https://app.example"})
        assert answer.headers["access-control-allow-origin"] == "https://app.example"
        answer = await cors.get("/api/v1/clips", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in answer.headers
