"""Discord servers linked to clipwatch accounts, the one-time codes that link them, and the
routes set up from a server (/clipwatch follow)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import DiscordGuildLink, DiscordLinkCode, NotificationRoute


async def replace_link_code(
    session: AsyncSession, user_id: int, code_hash: str, expires_at: datetime, now: datetime
) -> None:
    """The user's one live code (a new one replaces theirs); expired codes of anyone go."""
    await session.execute(
        delete(DiscordLinkCode).where(
            (DiscordLinkCode.user_id == user_id) | (DiscordLinkCode.expires_at <= now)
        )
    )
    session.add(DiscordLinkCode(code_hash=code_hash, user_id=user_id, expires_at=expires_at))
    await session.flush()


async def take_link_code(session: AsyncSession, code_hash: str) -> DiscordLinkCode | None:
    """The code with this hash, deleted as it is read (one use; an expired one goes too).
    Two servers racing for one code: the delete's row count says who took it."""
    code = await session.get(DiscordLinkCode, code_hash)
    if code is None:
        return None
    taken = await session.execute(
        delete(DiscordLinkCode).where(DiscordLinkCode.code_hash == code_hash)
    )
    return code if taken.rowcount else None  # type: ignore[attr-defined]


async def get_guild_link(session: AsyncSession, guild_id: str) -> DiscordGuildLink | None:
    return await session.get(DiscordGuildLink, guild_id)


async def guild_routes(session: AsyncSession, guild_id: str) -> Sequence[NotificationRoute]:
    """The routes set up from this server, oldest first."""
    stmt = (
        select(NotificationRoute)
        .where(
            NotificationRoute.created_via == "discord",
            NotificationRoute.webhook_guild_id == guild_id,
        )
        .order_by(NotificationRoute.id)
    )
    return (await session.scalars(stmt)).all()
