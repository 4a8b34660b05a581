"""Favourites (issue 17): a member keeps clips and reads them back, newest kept first.

Keeping is idempotent (a second PUT changes nothing, not even when it was kept), letting go
too (DELETE of a clip not kept is 204). A clip that is not in the archive cannot be kept (404).
Each member sees only their own: there is no way to name another's favourites.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.service import Principal
from clipwatch.clips.cursor import encode_cursor, fingerprint, keyset_of
from clipwatch.db.repositories import clip_search
from clipwatch.db.repositories import favourites as repo
from clipwatch.db.repositories.favourites import KeptClip
from clipwatch.errors import NotFound


@dataclass(frozen=True)
class KeptPage:
    rows: list[KeptClip]
    next_cursor: str | None


async def keep(session: AsyncSession, principal: Principal, clip_id: str) -> bool:
    if await clip_search.get_clip(session, clip_id) is None:
        raise NotFound(f"no clip with id {clip_id}")
    return await repo.keep(session, principal.user_id, clip_id, datetime.now(UTC))


async def drop(session: AsyncSession, principal: Principal, clip_id: str) -> bool:
    return await repo.drop(session, principal.user_id, clip_id)


async def kept(
    session: AsyncSession, principal: Principal, *, key: bytes, limit: int, cursor: str | None
) -> KeptPage:
    """A page of the caller's favourites; the cursor is bound to the caller."""
    query = fingerprint(["favourites", principal.user_id])
    after = keyset_of(
        key, cursor, query=query, read=lambda p: (datetime.fromisoformat(p["at"]), str(p["id"]))
    )
    rows = await repo.kept_page(session, principal.user_id, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1][0]
        next_cursor = encode_cursor(
            key, {"q": query, "at": last.created_at.isoformat(), "id": last.clip_id}
        )
    return KeptPage(rows, next_cursor)
