"""EventSub's rows: the connected user token (`twitch_user_token`, sealed by the caller) and
the subscriptions the socket's holder made (`eventsub_subscription`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import EventSubSubscription, TwitchUserToken
from clipwatch.db.repositories._dialect import insert_for

PURPOSE = "eventsub"
# Statuses that mean "do not create this one again" until a new token is connected.
REVOKED = ("authorization_revoked", "user_removed", "version_removed")


async def user_token(session: AsyncSession, purpose: str = PURPOSE) -> TwitchUserToken | None:
    return await session.get(TwitchUserToken, purpose)


async def save_user_token(
    session: AsyncSession,
    *,
    purpose: str = PURPOSE,
    twitch_user_id: str,
    login: str,
    access_token_sealed: str,
    refresh_token_sealed: str | None,
    scopes: list[str],
    expires_at: datetime | None,
    validated_at: datetime | None,
    connected_by: int | None,
    now: datetime,
) -> None:
    """Store a newly connected token (replacing any other), its error cleared."""
    values = {
        "twitch_user_id": twitch_user_id,
        "login": login,
        "access_token_sealed": access_token_sealed,
        "refresh_token_sealed": refresh_token_sealed,
        "scopes": scopes,
        "expires_at": expires_at,
        "validated_at": validated_at,
        "connected_by": connected_by,
        "updated_at": now,
        "last_error": None,
        "last_error_at": None,
    }
    stmt = insert_for(session, TwitchUserToken).values(purpose=purpose, **values)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[TwitchUserToken.purpose], set_=values)
    )


async def update_user_token(
    session: AsyncSession,
    *,
    purpose: str = PURPOSE,
    expected_access_sealed: str,
    access_token_sealed: str,
    refresh_token_sealed: str | None,
    expires_at: datetime | None,
    validated_at: datetime | None,
    now: datetime,
) -> bool:
    """Store a refreshed pair, unless the row changed meanwhile (another connect): False."""
    result = await session.execute(
        update(TwitchUserToken)
        .where(
            TwitchUserToken.purpose == purpose,
            TwitchUserToken.access_token_sealed == expected_access_sealed,
        )
        .values(
            access_token_sealed=access_token_sealed,
            refresh_token_sealed=refresh_token_sealed,
            expires_at=expires_at,
            validated_at=validated_at,
            updated_at=now,
            last_error=None,
            last_error_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def mark_validated(
    session: AsyncSession, *, purpose: str = PURPOSE, expires_at: datetime | None, now: datetime
) -> None:
    await session.execute(
        update(TwitchUserToken)
        .where(TwitchUserToken.purpose == purpose)
        .values(validated_at=now, expires_at=expires_at)
        .execution_options(synchronize_session=False)
    )


async def mark_token_failed(
    session: AsyncSession, *, purpose: str = PURPOSE, error: str, now: datetime
) -> None:
    await session.execute(
        update(TwitchUserToken)
        .where(TwitchUserToken.purpose == purpose)
        .values(last_error=error, last_error_at=now)
        .execution_options(synchronize_session=False)
    )


async def delete_user_token(session: AsyncSession, purpose: str = PURPOSE) -> bool:
    result = await session.execute(
        delete(TwitchUserToken).where(TwitchUserToken.purpose == purpose)
    )
    return bool(getattr(result, "rowcount", 0))


# --- subscriptions ------------------------------------------------------------------------------


async def save_subscription(
    session: AsyncSession,
    *,
    subscription_id: str,
    type: str,
    version: str,
    channel_id: str,
    status: str,
    cost: int,
    session_id: str,
    now: datetime,
) -> None:
    values = {
        "type": type,
        "version": version,
        "channel_id": channel_id,
        "status": status,
        "cost": cost,
        "session_id": session_id,
        "updated_at": now,
    }
    stmt = insert_for(session, EventSubSubscription).values(
        id=subscription_id, created_at=now, **values
    )
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[EventSubSubscription.id], set_=values)
    )


async def set_subscription_status(
    session: AsyncSession, subscription_id: str, status: str, now: datetime
) -> bool:
    result = await session.execute(
        update(EventSubSubscription)
        .where(EventSubSubscription.id == subscription_id)
        .values(status=status, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def move_subscriptions(
    session: AsyncSession, old_session_id: str, new_session_id: str, now: datetime
) -> None:
    """A reconnect hand-over: the subscriptions carry over to the new session."""
    await session.execute(
        update(EventSubSubscription)
        .where(EventSubSubscription.session_id == old_session_id)
        .values(session_id=new_session_id, updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def forget_dead_subscriptions(session: AsyncSession, live_session_id: str | None) -> None:
    """Drop the rows of sockets that are gone (Twitch disabled them with the socket), but
    keep revoked ones: they say what not to create again."""
    stmt = delete(EventSubSubscription).where(EventSubSubscription.status.not_in(REVOKED))
    if live_session_id is not None:
        stmt = stmt.where(EventSubSubscription.session_id != live_session_id)
    await session.execute(stmt)


async def forget_revoked(session: AsyncSession) -> None:
    """A new token was connected: what the old one lost may be tried again."""
    await session.execute(
        delete(EventSubSubscription).where(EventSubSubscription.status.in_(REVOKED))
    )


async def subscriptions(session: AsyncSession) -> Sequence[EventSubSubscription]:
    stmt = select(EventSubSubscription).order_by(
        EventSubSubscription.channel_id, EventSubSubscription.type
    )
    return (await session.scalars(stmt)).all()
