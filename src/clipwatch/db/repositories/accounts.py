"""Users, API tokens, sessions and preferences."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import ApiToken, Preferences, User, UserSession


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def find_user_by_name(session: AsyncSession, name: str) -> User | None:
    return (await session.scalars(select(User).where(User.name == name))).first()


async def find_user_by_twitch_id(session: AsyncSession, twitch_id: str) -> User | None:
    return (await session.scalars(select(User).where(User.twitch_id == twitch_id))).first()


async def list_users(session: AsyncSession) -> Sequence[User]:
    return (await session.scalars(select(User).order_by(User.id))).all()


async def add(session: AsyncSession, row: User | ApiToken | UserSession | Preferences) -> None:
    session.add(row)
    await session.flush()


async def find_token_by_prefix(session: AsyncSession, prefix: str) -> ApiToken | None:
    return (await session.scalars(select(ApiToken).where(ApiToken.prefix == prefix))).first()


async def list_tokens(session: AsyncSession, user_id: int) -> Sequence[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    return (await session.scalars(stmt)).all()


async def get_token(session: AsyncSession, token_id: int) -> ApiToken | None:
    return await session.get(ApiToken, token_id)


async def touch_token(session: AsyncSession, token_id: int, now: datetime) -> None:
    await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


async def find_session_by_hash(session: AsyncSession, secret_hash: str) -> UserSession | None:
    stmt = select(UserSession).where(UserSession.secret_hash == secret_hash)
    return (await session.scalars(stmt)).first()


async def get_session(session: AsyncSession, session_id: int) -> UserSession | None:
    return await session.get(UserSession, session_id)


async def list_sessions(
    session: AsyncSession, user_id: int, now: datetime
) -> Sequence[UserSession]:
    stmt = (
        select(UserSession)
        .where(
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > now,
        )
        .order_by(UserSession.id)
    )
    return (await session.scalars(stmt)).all()


async def touch_session(session: AsyncSession, session_id: int, now: datetime) -> None:
    await session.execute(
        update(UserSession).where(UserSession.id == session_id).values(last_seen_at=now)
    )


async def get_preferences(session: AsyncSession, user_id: int) -> Preferences | None:
    return await session.get(Preferences, user_id)
