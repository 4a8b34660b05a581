"""A member's preferences: what they follow, and how their feed is sorted and filtered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.service import Principal, visible_user
from clipwatch.db.models import Preferences
from clipwatch.db.repositories import accounts as repo

DEFAULTS: dict[str, Any] = {
    "channels": [],
    "games": [],
    "languages": [],
    "min_views": None,
    "default_sort": None,
    "time_zone": "UTC",
}


async def preferences_of(session: AsyncSession, principal: Principal, user_id: int) -> Preferences:
    """Stored preferences, or the defaults (not stored) for someone who never set any."""
    await visible_user(session, principal, user_id)
    row = await repo.get_preferences(session, user_id)
    return row if row is not None else Preferences(user_id=user_id, **DEFAULTS)


async def replace_preferences(
    session: AsyncSession, principal: Principal, user_id: int, values: dict[str, Any]
) -> Preferences:
    return await _store(session, principal, user_id, {**DEFAULTS, **values})


async def update_preferences(
    session: AsyncSession, principal: Principal, user_id: int, changes: dict[str, Any]
) -> Preferences:
    """Only the given fields change; a null list or time zone goes back to its default."""
    changes = {
        k: DEFAULTS[k] if v is None and k != "min_views" and k != "default_sort" else v
        for k, v in changes.items()
    }
    return await _store(session, principal, user_id, changes)


async def _first_row(session: AsyncSession, user_id: int) -> Preferences:
    """The user's row, inserted now; if a concurrent request inserted it first (a duplicate
    key, found by schemathesis's parallel PUTs), that one, to be overwritten."""
    try:
        async with session.begin_nested():
            row = Preferences(user_id=user_id, **DEFAULTS)
            session.add(row)
            await session.flush()
        return row
    except IntegrityError:
        existing = await repo.get_preferences(session, user_id)
        if existing is None:
            raise
        return existing


async def _store(
    session: AsyncSession, principal: Principal, user_id: int, values: dict[str, Any]
) -> Preferences:
    await visible_user(session, principal, user_id)
    row = await repo.get_preferences(session, user_id)
    if row is None:
        row = await _first_row(session, user_id)
    for key, value in values.items():
        setattr(row, key, list(dict.fromkeys(value)) if isinstance(value, list) else value)
    row.updated_at = datetime.now(UTC)
    await session.flush()
    return row
