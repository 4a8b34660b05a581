"""Tags (issue 17; docs/tags.md): words people attach to clips the title does not describe.

- The **community vocabulary** is what admins manage: anyone sees its tags on clips, filters
  by them (`tag=`), and a search's words match them (`q=funny` finds clips tagged `funny`).
  Members with `write` put them on clips and take off the ones they put on; moderators take
  off any. Vocabulary changes are written to the audit log.
- A **private tag** is one member's own: only they see it, filter by it and put it on clips;
  for anyone else it does not exist (404).
- **Bulk**: one tag on up to `BULK_MAX` clips at once, named or the result of a search, in one
  transaction; a search that finds more is refused and nothing is tagged.

Names are words of letters and digits (any script) joined by single hyphens, lower case,
1-32 characters: what a URL, a chip and a search word all carry without escaping.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.service import Principal
from clipwatch.clips import moderation
from clipwatch.clips.search import ClipSearch, export_filters
from clipwatch.db.engine import touch
from clipwatch.db.models import Clip, ClipTag, Tag
from clipwatch.db.repositories import clip_search
from clipwatch.db.repositories import tags as repo
from clipwatch.errors import Conflict, Forbidden, InvalidInput, NotFound

NAME_PATTERN = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
NAME_MAX = 32
DESCRIPTION_MAX = 200
VOCABULARY_MAX = 500  # community tags
PRIVATE_MAX = 200  # one member's private tags
PER_CLIP_MAX = 20  # community tags on one clip; one member's private tags on one clip
BULK_MAX = 1_000
CREATE, UPDATE, DELETE = "tag.create", "tag.update", "tag.delete"
ACTIONS = (CREATE, UPDATE, DELETE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Bulk:
    tagged: int  # clips that got the tag
    already: int  # clips that had it
    full: list[str]  # clips left out: they carry PER_CLIP_MAX tags of the tag's kind already
    not_found: list[str]  # ids not in the archive (or hidden)


def clean_name(name: str) -> str:
    value = name.strip().lower()
    if not value:
        raise InvalidInput("a tag needs a name", field="name")
    if len(value) > NAME_MAX:
        raise InvalidInput(f"must be at most {NAME_MAX} characters", field="name")
    if NAME_PATTERN.fullmatch(value) is None:
        raise InvalidInput(
            "letters and digits, words joined by single hyphens (like 'funny-fail')", field="name"
        )
    return value


def clean_description(description: str) -> str:
    value = " ".join(description.split())
    if len(value) > DESCRIPTION_MAX:
        raise InvalidInput(f"must be at most {DESCRIPTION_MAX} characters", field="description")
    if _CONTROL.search(value):
        raise InvalidInput("must not contain control characters", field="description")
    return value


def viewer(principal: Principal | None) -> int | None:
    """Whose private tags a caller sees: their own (the operator, user 0, has none)."""
    return principal.user_id if principal is not None and principal.user_id else None


async def visible_tag(session: AsyncSession, principal: Principal | None, tag_id: int) -> Tag:
    tag = await repo.get(session, tag_id, viewer(principal))
    if tag is None:
        raise NotFound(f"no tag with id {tag_id}")
    return tag


def _may_manage(principal: Principal, tag: Tag) -> None:
    if tag.owner_id is None and not principal.is_admin:
        raise Forbidden("only admins manage the community's tags")


async def _audit(
    session: AsyncSession, principal: Principal, action: str, tag: Tag, reason: str
) -> None:
    await moderation.record(session, principal, action, f"tag:{tag.id}", reason)


async def create(
    session: AsyncSession,
    principal: Principal,
    name: str,
    description: str = "",
    *,
    private: bool = False,
) -> Tag:
    name, description = clean_name(name), clean_description(description)
    owner = None
    if private:
        if not principal.user_id:
            raise InvalidInput("the operator has no private tags: sign in as a member")
        owner = principal.user_id
        if await repo.by_name(session, repo.COMMUNITY, name) is not None:
            raise Conflict(f"the community has a tag named {name}: use it")
    elif not principal.is_admin:
        raise Forbidden("only admins add tags to the community's vocabulary")
    scope = repo.scope_of(owner)
    if await repo.by_name(session, scope, name) is not None:
        raise Conflict(f"a tag named {name} exists")
    limit = PRIVATE_MAX if private else VOCABULARY_MAX
    if await repo.count_in_scope(session, scope) >= limit:
        raise Conflict(f"at most {limit} {'private' if private else 'community'} tags")
    tag = await repo.create(
        session,
        owner_id=owner,
        name=name,
        description=description,
        at=datetime.now(UTC),
        by=principal.name,
    )
    if not private:
        await _audit(session, principal, CREATE, tag, name)
        await _changed(session, tag)  # search words now match it
    return tag


async def update(
    session: AsyncSession,
    principal: Principal,
    tag_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Tag:
    tag = await visible_tag(session, principal, tag_id)
    _may_manage(principal, tag)
    new_name = clean_name(name) if name is not None else None
    if new_name == tag.name:
        new_name = None
    if new_name is not None and await repo.by_name(session, tag.scope, new_name) is not None:
        raise Conflict(f"a tag named {new_name} exists")
    old = tag.name
    new_description = clean_description(description) if description is not None else None
    await repo.update_tag(session, tag, name=new_name, description=new_description)
    if tag.owner_id is None and (new_name is not None or new_description is not None):
        what = f"{old} renamed {new_name}" if new_name else f"{tag.name}: description"
        await _audit(session, principal, UPDATE, tag, what)
    if new_name is not None:
        await _changed(session, tag)
    return tag


async def delete(session: AsyncSession, principal: Principal, tag_id: int) -> None:
    tag = await visible_tag(session, principal, tag_id)
    _may_manage(principal, tag)
    count = await repo.clip_count(session, tag.id)
    await _changed(session, tag)
    await repo.delete_tag(session, tag)
    if tag.owner_id is None:
        await _audit(session, principal, DELETE, tag, f"{tag.name}, on {count} clips")


async def _changed(session: AsyncSession, tag: Tag) -> None:
    """A community tag added, renamed or deleted: every cached answer that shows it or matched
    it, and the vocabulary search words are matched against (cached under `catalog`)."""
    if tag.owner_id is None:
        touch(session, "clips", "catalog")


def _touch_clips(session: AsyncSession, tag: Tag, clips: Sequence[Clip]) -> None:
    if tag.owner_id is None and clips:
        touch(session, "clips", *{f"ch:{c.broadcaster_id}" for c in clips})


async def _clip(session: AsyncSession, clip_id: str) -> Clip:
    clip = await clip_search.get_clip(session, clip_id)
    if clip is None:
        raise NotFound(f"no clip with id {clip_id}")
    return clip


async def tag_clip(session: AsyncSession, principal: Principal, clip_id: str, tag_id: int) -> bool:
    """Put a tag on a clip; whether it was new (idempotent)."""
    tag = await visible_tag(session, principal, tag_id)
    clip = await _clip(session, clip_id)
    if await repo.on_clip(session, tag.id, clip.seq) is not None:
        return False
    if await repo.count_on_clip(session, clip.seq, tag.scope) >= PER_CLIP_MAX:
        raise Conflict(f"the clip carries {PER_CLIP_MAX} tags of this kind already")
    await repo.attach(
        session,
        tag,
        [clip],
        at=datetime.now(UTC),
        by_id=principal.user_id or None,
        by=principal.name,
    )
    _touch_clips(session, tag, [clip])
    return True


async def untag_clip(
    session: AsyncSession, principal: Principal, clip_id: str, tag_id: int
) -> bool:
    """Take a tag off a clip; whether it was on. A community tag comes off by whoever put it
    on, a moderator or an admin."""
    tag = await visible_tag(session, principal, tag_id)
    clip = await _clip(session, clip_id)
    link = await repo.on_clip(session, tag.id, clip.seq)
    if link is None:
        return False
    mine = link.added_by_id is not None and link.added_by_id == principal.user_id
    if tag.owner_id is None and not (mine or principal.is_moderator):
        raise Forbidden("a community tag comes off by who put it on, or a moderator")
    await repo.detach(session, tag.id, clip.seq)
    _touch_clips(session, tag, [clip])
    return True


async def clip_tags(
    session: AsyncSession, principal: Principal | None, clip_id: str
) -> list[tuple[Tag, ClipTag]]:
    clip = await _clip(session, clip_id)
    return await repo.tags_of(session, clip.seq, viewer(principal))


async def bulk_by_ids(
    session: AsyncSession, principal: Principal, tag_id: int, clip_ids: Sequence[str]
) -> Bulk:
    tag = await visible_tag(session, principal, tag_id)
    wanted = list(dict.fromkeys(clip_ids))
    if len(wanted) > BULK_MAX:
        raise InvalidInput(f"at most {BULK_MAX:,} clips at once", field="clip_ids")
    found = await clip_search.clips_by_ids(session, wanted)
    have = {c.id for c in found}
    bulk = await _bulk(session, principal, tag, found)
    return replace(bulk, not_found=[i for i in wanted if i not in have])


async def bulk_by_search(
    session: AsyncSession, principal: Principal, tag_id: int, search: ClipSearch
) -> Bulk:
    """Every clip the search finds (at most BULK_MAX, or nothing is tagged)."""
    tag = await visible_tag(session, principal, tag_id)
    filters, _ = await export_filters(session, search)
    if filters is None:
        return Bulk(0, 0, [], [])
    found = await clip_search.find_clips(session, filters, "newest", limit=BULK_MAX + 1)
    if len(found.rows) > BULK_MAX:
        raise InvalidInput(
            f"the search finds more than {BULK_MAX:,} clips: narrow it (nothing was tagged)"
        )
    return await _bulk(session, principal, tag, [clip for clip, _, _ in found.rows])


async def _bulk(
    session: AsyncSession, principal: Principal, tag: Tag, clips: Sequence[Clip]
) -> Bulk:
    """One transaction (the caller's): the tag on every clip that has room for it."""
    counts = await repo.counts_on_clips(session, [c.seq for c in clips], tag.scope)
    carrying = await repo.carrying(session, tag.id, [c.seq for c in clips])
    room = [c for c in clips if c.seq not in carrying and counts.get(c.seq, 0) < PER_CLIP_MAX]
    full = [c.id for c in clips if c.seq not in carrying and counts.get(c.seq, 0) >= PER_CLIP_MAX]
    tagged = await repo.attach(
        session,
        tag,
        room,
        at=datetime.now(UTC),
        by_id=principal.user_id or None,
        by=principal.name,
    )
    _touch_clips(session, tag, room)
    return Bulk(tagged, len(carrying), full, [])


async def listed(session: AsyncSession, principal: Principal | None) -> list[tuple[Tag, int]]:
    return await repo.listed(session, viewer(principal))


async def clip_count(session: AsyncSession, tag: Tag) -> int:
    return await repo.clip_count(session, tag.id)
