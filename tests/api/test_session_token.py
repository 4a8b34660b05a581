"""A session opened with an API token never outlives or outranks that token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.models import ApiToken, User, UserSession
from tests.api.test_accounts import bearer, cookie, make_user


async def token_id_of(sessionmaker: async_sessionmaker[AsyncSession], user_id: int) -> int:
    async with session_scope(sessionmaker) as session:
        ids = (await session.scalars(select(ApiToken.id).where(ApiToken.user_id == user_id))).all()
    [token_id] = ids
    return token_id


async def login(client: httpx.AsyncClient, token: str) -> tuple[str, str]:
    answer = await client.post("/auth/token-login", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    return answer.cookies["cw_session"], answer.json()["csrf_token"]


async def test_revoking_the_token_ends_the_session_it_opened(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user_id, token = await make_user(sessionmaker, "alice")
    token_id = await token_id_of(sessionmaker, user_id)
    secret, csrf = await login(client, token)
    assert (await client.get("/api/v1/me", headers=cookie(secret))).status_code == 200
    revoked = await client.delete(f"/api/v1/me/tokens/{token_id}", headers=bearer(token))
    assert revoked.status_code in (200, 204), revoked.text
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 401
    assert (await client.get("/api/v1/me", headers=cookie(secret))).status_code == 401
    minted = await client.post(
        "/api/v1/me/tokens",
        json={"name": "again", "scopes": ["read"]},
        headers=cookie(secret, csrf),
    )
    assert minted.status_code == 401  # the session cannot mint a successor either


async def test_the_session_ends_when_its_token_expires(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user_id, token = await make_user(sessionmaker, "bob")
    token_id = await token_id_of(sessionmaker, user_id)
    soon = datetime.now(UTC) + timedelta(hours=1)
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(expires_at=soon)
        )
    secret, _csrf = await login(client, token)
    async with session_scope(sessionmaker) as session:
        opened = (await session.scalars(select(UserSession))).one()
    assert opened.token_id == token_id
    assert opened.expires_at <= soon  # not the 30 days a session may otherwise live
    assert (await client.get("/api/v1/me", headers=cookie(secret))).status_code == 200
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(expires_at=past)
        )
    assert (await client.get("/api/v1/me", headers=cookie(secret))).status_code == 401


async def test_a_session_is_never_wider_than_its_token(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, token = await make_user(sessionmaker, "carol", scopes=("read",))
    secret, csrf = await login(client, token)
    me = await client.get("/api/v1/me", headers=cookie(secret))
    assert me.status_code == 200
    written = await client.put(
        "/api/v1/me/preferences", json={"languages": ["en"]}, headers=cookie(secret, csrf)
    )
    assert written.status_code == 403  # the token could only read, so can its session


async def test_demoting_or_deleting_the_user_narrows_or_ends_the_session(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user_id, token = await make_user(
        sessionmaker, "erin", admin=True, scopes=("read", "write", "admin")
    )
    secret, _csrf = await login(client, token)
    assert (await client.get("/api/v1/users", headers=cookie(secret))).status_code == 200
    async with session_scope(sessionmaker) as session:
        await session.execute(update(User).where(User.id == user_id).values(role="member"))
    assert (await client.get("/api/v1/users", headers=cookie(secret))).status_code == 403
    assert (await client.get("/api/v1/me", headers=cookie(secret))).status_code == 200
    async with session_scope(sessionmaker) as session:
        await session.execute(delete(UserSession).where(UserSession.user_id == user_id))
        await session.execute(delete(ApiToken).where(ApiToken.user_id == user_id))
        await session.execute(delete(User).where(User.id == user_id))
    assert (await client.get("/api/v1/me", headers=cookie(secret))).status_code == 401


async def test_answers_that_carry_a_credential_are_never_stored(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    _, token = await make_user(sessionmaker, "dave")
    logged_in = await client.post("/auth/token-login", headers=bearer(token))
    minted = await client.post(
        "/api/v1/me/tokens", json={"name": "x", "scopes": ["read"]}, headers=bearer(token)
    )
    me = await client.get("/api/v1/me", headers=bearer(token))
    for answer in (logged_in, minted, me):
        assert answer.status_code in (200, 201), answer.text
        assert answer.headers["cache-control"] == "no-store"
    clips = await client.get("/api/v1/clips")
    assert clips.status_code == 200
    assert clips.headers.get("cache-control") != "no-store"  # public answers stay cacheable


async def test_path_ids_are_strict_whole_numbers(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    user_id, token = await make_user(sessionmaker, "erin")
    token_id = await token_id_of(sessionmaker, user_id)
    for odd in (f"{token_id}.0", f"%20{token_id}", f"+{token_id}", f"0{token_id}", "1e3", "٣"):
        answer = await client.delete(f"/api/v1/me/tokens/{odd}", headers=bearer(token))
        assert answer.status_code == 422, (odd, answer.text)
        assert "digits only" in answer.text
    assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200  # alive
    gone = await client.delete(f"/api/v1/me/tokens/{token_id}", headers=bearer(token))
    assert gone.status_code == 204
