"""Writes that race each other answer as if one came after the other, never 500."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Preferences, User
from tests.api.test_accounts import bearer, make_user

ROUNDS = 5


async def more_token(sessionmaker: async_sessionmaker[AsyncSession], user_id: int) -> str:
    """Another token of the user's: requests with one token wait on each other's touch of
    that token's row, which would hide the race."""
    async with session_scope(sessionmaker) as session:
        user = await session.get(User, user_id)
        assert user is not None
        _, secret = await service.create_token(
            session, user, name=f"t{user_id}", scopes=frozenset({"read", "write"})
        )
        return secret


AT_ONCE = 8


async def test_first_preferences_written_at_once_store_one_row(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """Schemathesis's parallel workers found two first PUTs for one user inserting the same
    primary key: one answered 500. Every PUT now answers 200 and one row stays."""
    for round_ in range(ROUNDS):
        user_id, token = await make_user(sessionmaker, f"racer{round_}")
        tokens = [token, *[await more_token(sessionmaker, user_id) for _ in range(AT_ONCE - 1)]]
        answers = await asyncio.gather(
            *(
                client.put(
                    "/api/v1/me/preferences",
                    json={"languages": [["en", "de", "fr"][i % 3]]},
                    headers=bearer(tokens[i]),
                )
                for i in range(AT_ONCE)
            )
        )
        assert [a.status_code for a in answers] == [200] * AT_ONCE, [a.text for a in answers]
        async with session_scope(sessionmaker) as session:
            rows = (
                await session.scalars(select(Preferences).where(Preferences.user_id == user_id))
            ).all()
        assert len(rows) == 1
        assert rows[0].languages in (["en"], ["de"], ["fr"])
