"""Collections (issue 17): a member's owned, ordered lists of clips (docs/collections.md).

Who sees one: its owner always, admins too; anyone a public one; an unlisted one whoever
brings its share key. Everyone else, for every method, learns nothing: 404, never 403. Only
the owner changes one. Each write takes the collection's version first (If-Match: the ETag
the caller read; a stale one is `PreconditionFailed`), so two writers that read the same
ETag cannot both win, and item positions stay 0..n-1 without gaps.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.service import Principal
from clipwatch.clips.cursor import decode_cursor, encode_cursor, fingerprint
from clipwatch.db.models import Collection
from clipwatch.db.repositories import clip_search, notifications, tags
from clipwatch.db.repositories import collections as repo
from clipwatch.db.repositories.collections import Listed, ShownItem
from clipwatch.errors import BadRequest, Conflict, NotFound, PreconditionFailed

MAX_ITEMS = 1000
MAX_COLLECTIONS = 500  # per member
VISIBILITIES = ("private", "unlisted", "public")
_TAG = re.compile(r'"c([0-9]{1,19})-v([0-9]{1,19})"')


@dataclass(frozen=True)
class CollectionPage:
    rows: list[Listed]
    next_cursor: str | None


@dataclass(frozen=True)
class Shown:
    """A collection as one caller sees it."""

    collection: Collection
    owner: str
    item_count: int
    items: list[ShownItem]
    is_owner: bool
    tags: dict[int, list[str]] = field(default_factory=dict)  # community tags by clip seq


def etag_of(collection: Collection) -> str:
    return f'"c{collection.id}-v{collection.version}"'


def seen_versions(if_match: str | None, collection_id: int) -> frozenset[int] | None:
    """The versions an If-Match header accepts (RFC 9110 13.1.1, strong comparison): None
    when any will do (no header, or `*`); an empty set when none can (weak or other tags)."""
    if if_match is None:
        return None
    versions: set[int] = set()
    for tag in if_match.split(","):
        tag = tag.strip()
        if tag == "*":
            return None
        found = _TAG.fullmatch(tag)
        if found and int(found.group(1)) == collection_id:
            versions.add(int(found.group(2)))
    return frozenset(versions)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_share_key() -> str:
    return secrets.token_urlsafe(24)


def _missing(collection_id: int) -> NotFound:
    return NotFound(f"no collection {collection_id}")


async def create_collection(
    session: AsyncSession, principal: Principal, values: dict[str, Any]
) -> Shown:
    if await repo.count_owned(session, principal.user_id) >= MAX_COLLECTIONS:
        raise Conflict(f"a member keeps at most {MAX_COLLECTIONS} collections")
    now = _now()
    collection = Collection(
        user_id=principal.user_id,
        title=values["title"],
        description=values.get("description") or "",
        visibility=values.get("visibility") or "private",
        share_key=_new_share_key(),
        version=1,
        created_at=now,
        updated_at=now,
    )
    await repo.add_collection(session, collection)
    return Shown(collection, principal.name, 0, [], True)


async def collections_page(
    session: AsyncSession,
    principal: Principal | None,
    *,
    public: bool,
    key: bytes,
    limit: int,
    cursor: str | None,
) -> CollectionPage:
    """The caller's own collections, or (`public`) everyone's public ones; newest first."""
    owner = None if public or principal is None else principal.user_id
    query = fingerprint(["collections", "public" if owner is None else owner])
    after = None
    if cursor is not None:
        payload = decode_cursor(key, cursor, query=query)
        after = payload.get("id")
        if not isinstance(after, int) or isinstance(after, bool):
            raise BadRequest("cursor is not valid for this query")
    rows = await repo.listed_page(session, user_id=owner, after_id=after, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(key, {"q": query, "id": rows[-1][0].id})
    return CollectionPage(rows, next_cursor)


async def shown_collection(
    session: AsyncSession,
    principal: Principal | None,
    collection_id: int,
    share_key: str | None = None,
) -> Shown:
    """The collection and its shown items, if this caller may read it (else NotFound)."""
    collection = await repo.get_collection(session, collection_id)
    if collection is None:
        raise _missing(collection_id)
    is_owner = principal is not None and principal.user_id == collection.user_id
    allowed = (
        is_owner
        or (principal is not None and principal.is_admin)
        or collection.visibility == "public"
        or (
            collection.visibility == "unlisted"
            and share_key is not None
            and hmac.compare_digest(share_key.encode(), collection.share_key.encode())
        )
    )
    if not allowed:
        raise _missing(collection_id)
    return await _shown(session, collection, is_owner)


async def _shown(session: AsyncSession, collection: Collection, is_owner: bool) -> Shown:
    items = await repo.shown_items(session, collection.id)
    return Shown(
        collection,
        await repo.owner_name(session, collection.user_id),
        await repo.item_count(session, collection.id),
        items,
        is_owner,
        await tags.community_names(session, [clip.seq for _, clip, _ in items]),
    )


async def _owned(session: AsyncSession, principal: Principal, collection_id: int) -> Collection:
    collection = await repo.get_collection(session, collection_id)
    if collection is None or collection.user_id != principal.user_id:
        raise _missing(collection_id)
    return collection


async def _take(
    session: AsyncSession,
    principal: Principal,
    collection_id: int,
    if_match: str | None,
    values: dict[str, Any] | None = None,
) -> Collection:
    """The owner's collection, its version taken (and `values` applied) in this transaction."""
    await _owned(session, principal, collection_id)
    seen = seen_versions(if_match, collection_id)
    taken = await repo.take_version(session, collection_id, seen, _now(), values)
    if taken is None:
        if seen is None:  # deleted by a request that committed after ours read it
            raise _missing(collection_id)
        raise PreconditionFailed(
            "the collection changed since that ETag was read: read it again, then retry"
        )
    return taken


async def update_collection(
    session: AsyncSession,
    principal: Principal,
    collection_id: int,
    changes: dict[str, Any],
    if_match: str | None,
) -> Shown:
    taken = await _take(session, principal, collection_id, if_match, changes)
    return await _shown(session, taken, True)


async def rotate_share_key(
    session: AsyncSession, principal: Principal, collection_id: int, if_match: str | None
) -> Shown:
    values = {"share_key": _new_share_key()}
    taken = await _take(session, principal, collection_id, if_match, values)
    return await _shown(session, taken, True)


async def delete_collection(
    session: AsyncSession, principal: Principal, collection_id: int, if_match: str | None
) -> None:
    await _take(session, principal, collection_id, if_match)
    await repo.delete_collection(session, collection_id)


async def add_item(
    session: AsyncSession,
    principal: Principal,
    collection_id: int,
    clip_id: str,
    position: int | None,
    if_match: str | None,
) -> Shown:
    """Add a clip at `position` (at the end when None or past the end); a clip already in
    the collection, or a full collection, is a Conflict."""
    await _owned(session, principal, collection_id)
    if await clip_search.get_clip(session, clip_id) is None:
        # Like a clip already in it, or a full collection: this clip cannot be added now (a
        # 404 would say the collection is gone; the clip may be archived, or unhidden, later).
        raise Conflict(f"no clip with id {clip_id} in the archive")
    taken = await _take(session, principal, collection_id, if_match)
    if await repo.item_position(session, collection_id, clip_id) is not None:
        raise Conflict(f"clip {clip_id} is in this collection already")
    count = await repo.item_count(session, collection_id)
    if count >= MAX_ITEMS:
        raise Conflict(f"a collection holds at most {MAX_ITEMS} clips")
    at = count if position is None else min(position, count)
    await repo.shift(session, collection_id, start=at, end=None, by=1)
    await repo.add_item(session, collection_id, clip_id, at, _now())
    return await _shown(session, taken, True)


async def move_item(
    session: AsyncSession,
    principal: Principal,
    collection_id: int,
    clip_id: str,
    position: int,
    if_match: str | None,
) -> Shown:
    """Move a clip to `position` (the last place when past the end)."""
    taken = await _take(session, principal, collection_id, if_match)
    old = await repo.item_position(session, collection_id, clip_id)
    if old is None:
        raise NotFound(f"clip {clip_id} is not in collection {collection_id}")
    new = min(position, await repo.item_count(session, collection_id) - 1)
    if new > old:
        await repo.shift(session, collection_id, start=old + 1, end=new, by=-1)
    elif new < old:
        await repo.shift(session, collection_id, start=new, end=old - 1, by=1)
    await repo.set_position(session, collection_id, clip_id, new)
    return await _shown(session, taken, True)


async def remove_item(
    session: AsyncSession,
    principal: Principal,
    collection_id: int,
    clip_id: str,
    if_match: str | None,
) -> Collection:
    taken = await _take(session, principal, collection_id, if_match)
    old = await repo.item_position(session, collection_id, clip_id)
    if old is None:
        raise NotFound(f"clip {clip_id} is not in collection {collection_id}")
    await repo.remove_item(session, collection_id, clip_id)
    await repo.shift(session, collection_id, start=old + 1, end=None, by=-1)
    return taken


async def post_collection(
    session: AsyncSession, principal: Principal, collection_id: int, route_id: int
) -> tuple[Collection, bool]:
    """Queue the collection's post on one of the owner's routes, once per route; whether it
    was queued now (False: posted or queued before)."""
    collection = await _owned(session, principal, collection_id)
    route = await notifications.get_route(session, route_id)
    if route is None or route.user_id != principal.user_id:
        # 409, not 404: the path's collection is there (a 404 read as "the collection is
        # gone" by clients and by schemathesis' stateful checks); the body names no route.
        raise Conflict(f"no route {route_id}")
    now = _now()
    row = {
        "route_id": route.id,
        "clip_id": f"collection:{collection.id}",
        "kind": "collection",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "payload": {"collection": collection.id},
    }
    return collection, await notifications.add_deliveries_counted(session, [row]) == 1
