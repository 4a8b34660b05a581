"""Channels and games."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.engine import touch
from clipwatch.db.models import Channel, Game
from clipwatch.db.repositories._dialect import insert_for

_LOGIN = re.compile(r"^[a-z0-9_]{1,25}$")


def login_from_display_name(display_name: str) -> str | None:
    """Twitch display names are the login with other capitals, unless they are localized."""
    login = display_name.lower()
    return login if _LOGIN.match(login) else None


async def ensure_channels(session: AsyncSession, channels: dict[str, str]) -> None:
    """Create the channels clips name (id → display name) that we do not have yet."""
    if not channels:
        return
    existing = set(
        (await session.scalars(select(Channel.id).where(Channel.id.in_(list(channels))))).all()
    )
    now = datetime.now(UTC)
    missing = [
        {
            "id": cid,
            "display_name": name,
            "login": login_from_display_name(name),
            "tracked": False,
            "added_at": now,
            "updated_at": now,
        }
        for cid, name in sorted(channels.items())
        if cid not in existing
    ]
    if missing:
        # DO NOTHING on any conflict: a renamed channel may already own that login.
        await session.execute(insert_for(session, Channel).values(missing).on_conflict_do_nothing())
        touch(session, "catalog")


async def ensure_games(session: AsyncSession, game_ids: Iterable[str]) -> None:
    ids = sorted(set(game_ids))
    if not ids:
        return
    existing = set((await session.scalars(select(Game.id).where(Game.id.in_(ids)))).all())
    now = datetime.now(UTC)
    missing = [{"id": gid, "updated_at": now} for gid in ids if gid not in existing]
    if missing:
        await session.execute(insert_for(session, Game).values(missing).on_conflict_do_nothing())
        touch(session, "catalog")


async def resolve_channel_ids(session: AsyncSession, keys: Sequence[str]) -> list[str]:
    """Channel ids for a mix of ids and logins; unknown ones are left out."""
    lowered = [k.lower() for k in keys]
    rows = await session.scalars(
        select(Channel.id).where(or_(Channel.id.in_(keys), Channel.login.in_(lowered)))
    )
    return sorted(set(rows.all()))


async def resolve_game_ids(session: AsyncSession, keys: Sequence[str]) -> list[str]:
    """Game ids for a mix of ids and names (names case-insensitively)."""
    lowered = [k.lower() for k in keys]
    rows = await session.scalars(
        select(Game.id).where(or_(Game.id.in_(keys), func.lower(Game.name).in_(lowered)))
    )
    return sorted(set(rows.all()))


async def game_names(session: AsyncSession, ids: Iterable[str]) -> dict[str, str | None]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.execute(select(Game.id, Game.name).where(Game.id.in_(wanted)))
    return {gid: name for gid, name in rows.all()}


async def list_channels(
    session: AsyncSession, *, limit: int, after: str | None = None
) -> list[Channel]:
    """Channels by id; keyset on id."""
    stmt = select(Channel).order_by(Channel.id).limit(limit)
    if after is not None:
        stmt = stmt.where(Channel.id > after)
    return list((await session.scalars(stmt)).all())


async def get_channel(session: AsyncSession, key: str) -> Channel | None:
    """A channel by id or login."""
    stmt = select(Channel).where(or_(Channel.id == key, Channel.login == key.lower()))
    return (await session.scalars(stmt.limit(1))).first()


async def list_games(session: AsyncSession, *, limit: int, after: str | None = None) -> list[Game]:
    stmt = select(Game).order_by(Game.id).limit(limit)
    if after is not None:
        stmt = stmt.where(Game.id > after)
    return list((await session.scalars(stmt)).all())


async def track_channel(
    session: AsyncSession,
    *,
    channel_id: str,
    login: str,
    display_name: str,
    profile_image_url: str | None,
    account_created_at: datetime | None,
) -> Channel:
    """Create or update a channel from Twitch's user record, and mark it tracked."""
    now = datetime.now(UTC)
    # A login moves when a channel is renamed: free it from whichever row holds it now.
    await session.execute(
        update(Channel)
        .where(Channel.login == login, Channel.id != channel_id)
        .values(login=None, updated_at=now)
    )
    channel = await session.get(Channel, channel_id)
    if channel is None:
        channel = Channel(id=channel_id, added_at=now)
        session.add(channel)
    channel.login = login
    channel.display_name = display_name
    channel.profile_image_url = profile_image_url
    channel.account_created_at = account_created_at
    channel.tracked = True
    channel.updated_at = now
    await session.flush()
    touch(session, "catalog")
    return channel


async def untrack_channel(session: AsyncSession, key: str) -> Channel | None:
    """Stop syncing a channel; its clips stay in the archive."""
    channel = await get_channel(session, key)
    if channel is not None:
        channel.tracked = False
        channel.updated_at = datetime.now(UTC)
        await session.flush()
        touch(session, "catalog")
    return channel


async def name_games(session: AsyncSession, games: Iterable[tuple[str, str, str]]) -> None:
    """Set (id, name, box art URL) of games Twitch described."""
    now = datetime.now(UTC)
    touch(session, "catalog")
    for game_id, name, box_art_url in games:
        await session.execute(
            update(Game)
            .where(Game.id == game_id)
            .values(name=name, box_art_url=box_art_url, updated_at=now)
        )
