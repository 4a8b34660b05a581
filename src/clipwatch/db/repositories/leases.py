"""Leases: a named job that one process at a time runs (`lease`).

The holder renews its lease before it expires; once it has expired any process may take
it. Renewing inside the transaction that writes the job's results fences a holder that
stalled past its lease: on PostgreSQL the renewal's row lock orders it against a takeover,
and a renewal that finds another owner writes nothing (the caller rolls back).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, case, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import Lease
from clipwatch.db.repositories._dialect import insert_for


async def acquire(
    session: AsyncSession, name: str, owner: str, now: datetime, ttl: timedelta
) -> bool:
    """Take the lease (free or expired) or renew it (ours); False when another holds it."""
    await session.execute(
        insert_for(session, Lease)
        .values(name=name, owner=owner, acquired_at=now, expires_at=now + ttl)
        .on_conflict_do_nothing()
    )
    result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        update(Lease)
        .where(Lease.name == name, or_(Lease.owner == owner, Lease.expires_at <= now))
        .values(
            owner=owner,
            expires_at=now + ttl,
            # A takeover starts a new tenure; a renewal keeps the old start.
            acquired_at=case(
                (Lease.owner == owner, Lease.acquired_at),
                else_=literal(now, Lease.acquired_at.type),
            ),
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def renew(
    session: AsyncSession, name: str, owner: str, now: datetime, ttl: timedelta
) -> bool:
    """Extend a lease this owner still holds (and has not let expire); False otherwise."""
    result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        update(Lease)
        .where(Lease.name == name, Lease.owner == owner, Lease.expires_at > now)
        .values(expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def release(session: AsyncSession, name: str, owner: str, now: datetime) -> None:
    """Give the lease up at once (a clean stop), so another takes over without waiting."""
    await session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.owner == owner)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )


async def holder(session: AsyncSession, name: str) -> Lease | None:
    return (await session.scalars(select(Lease).where(Lease.name == name))).one_or_none()
