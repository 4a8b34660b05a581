"""The filters GET /clips, GET /stream and the search page share: one dependency, so each
route declares, validates and documents the same parameters, `feed=mine` means the same
everywhere, and a page of clips is computed (and cached) one way."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

import orjson
from fastapi import Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts import preferences
from clipwatch.accounts.service import Principal
from clipwatch.api.deps import AppState
from clipwatch.api.params import Instant, Key, Language, SearchText, TagName
from clipwatch.api.schemas import ClipPage, ClipRead
from clipwatch.clips.search import ClipSearch, search_clips
from clipwatch.db.repositories import clip_search
from clipwatch.db.repositories import tags as tag_repo
from clipwatch.errors import Forbidden, NotFound, Unauthenticated


def clip_filters(
    q: Annotated[SearchText | None, Query(examples=["pog clutch"])] = None,
    broadcaster: Annotated[
        list[Key], Query(max_length=20, description="Channel id or login; repeatable")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    game: Annotated[
        list[Key], Query(max_length=20, description="Game id or name; repeatable")
    ] = [],  # noqa: B006
    creator: Annotated[
        list[Key], Query(max_length=20, description="Creator id or name; repeatable")
    ] = [],  # noqa: B006
    language: Annotated[
        Language | None, Query(examples=["en"], description="Any case; compared in lower case")
    ] = None,
    min_views: Annotated[int | None, Query(ge=0, le=10**12)] = None,
    max_views: Annotated[int | None, Query(ge=0, le=10**12)] = None,
    min_duration: Annotated[
        float | None, Query(ge=0, allow_inf_nan=False, description="Seconds, inclusive")
    ] = None,
    max_duration: Annotated[
        float | None, Query(ge=0, allow_inf_nan=False, description="Seconds, inclusive")
    ] = None,
    featured: bool | None = None,
    created_after: Instant | None = None,
    created_before: Instant | None = None,
    include_deleted: bool = False,
    tag: Annotated[
        list[TagName],
        Query(
            max_length=5,
            description="Clips carrying every one of these tags (names; repeatable): the "
            "community's, and the caller's own private tags",
        ),
    ] = [],  # noqa: B006
) -> ClipSearch:
    return ClipSearch(
        q=q,
        broadcaster=tuple(broadcaster),
        game=tuple(game),
        creators=tuple(creator),
        languages=(language,) if language else (),
        min_views=min_views,
        max_views=max_views,
        min_duration=min_duration,
        max_duration=max_duration,
        featured=featured,
        created_after=created_after,
        created_before=created_before,
        include_deleted=include_deleted,
        tags=tuple(dict.fromkeys(tag)),
    )


ClipFilters = Annotated[ClipSearch, Depends(clip_filters)]
Feed = Annotated[
    Literal["mine"] | None,
    Query(description="`mine`: apply the caller's preferences (needs authentication)"),
]


def reader_of(principal: Principal | None, what: str) -> Principal:
    """The caller, who must be known and may read: `what` (a per-caller filter) needs it."""
    if principal is None:
        raise Unauthenticated(f"{what} needs an API token or a session")
    if "read" not in principal.scopes:
        raise Forbidden(f"{what} needs the 'read' scope")
    return principal


async def apply_preferences(
    session: AsyncSession, principal: Principal | None, search: ClipSearch
) -> ClipSearch:
    """The feed: followed channels or games, the caller's languages, views and sort."""
    principal = reader_of(principal, "feed=mine")
    prefs = await preferences.preferences_of(session, principal, principal.user_id)
    min_views = max(search.min_views or 0, prefs.min_views or 0) or None
    return replace(
        search,
        follow_channels=tuple(prefs.channels),
        follow_games=tuple(prefs.games),
        languages=search.languages or tuple(prefs.languages),
        min_views=min_views,
        sort=search.sort or prefs.default_sort,  # type: ignore[arg-type]
    )


VOCABULARY_KEY = "~tags:vocabulary"  # no request path: the fast path never serves it


async def tag_vocabulary(session: AsyncSession, state: AppState) -> list[tuple[int, str]]:
    """The community tags (id, name) that search words are matched against, through the
    cache: it changes only with a `catalog` bump, so a search with words reads it for free."""

    async def compute() -> tuple[bytes, set[str]]:
        return orjson.dumps(await tag_repo.community_vocabulary(session)), {"catalog"}

    entry = await state.cache.get_or_compute(VOCABULARY_KEY, compute)
    return [(int(tag_id), str(name)) for tag_id, name in orjson.loads(entry.body)]


async def clips_answer(
    session: AsyncSession, state: AppState, search: ClipSearch
) -> tuple[ClipPage, set[str]]:
    """One page of clips as GET /clips answers it, and the cache generations it read (the
    resolved channels', or every clip's when the search is not bound to channels)."""
    settings = state.settings
    page = await search_clips(
        session,
        search,
        key=settings.signing_key,
        relevance_candidates=settings.search_relevance_candidates,
        vocabulary=await tag_vocabulary(session, state) if search.q else None,
    )
    answer = ClipPage(
        data=[
            ClipRead.from_clip(c, page.game_names.get(c.game_id or ""), page.tags.get(c.seq))
            for c in page.clips
        ],
        next_cursor=page.next_cursor,
    )
    if page.channel_ids is None:
        return answer, {"clips", "catalog"}
    return answer, {"catalog", *(f"ch:{c}" for c in page.channel_ids)}


async def clip_answer(session: AsyncSession, clip_id: str) -> tuple[ClipRead, set[str]]:
    """One clip as GET /clips/{id} answers it (the clip page shares its cache entry), and the
    generations it read."""
    read = await clip_read(session, clip_id)
    if read is None:
        raise NotFound(f"no clip with id {clip_id}")
    return read, {f"ch:{read.broadcaster_id}", "catalog"}


async def clip_read(
    session: AsyncSession, clip_id: str, *, include_hidden: bool = False
) -> ClipRead | None:
    """A clip with its game's name and its community tags (hidden ones only with
    `include_hidden`)."""
    named = await clip_search.get_named_clip(session, clip_id, include_hidden=include_hidden)
    if named is None:
        return None
    clip, game_name, tags = named
    return ClipRead.from_clip(clip, game_name, tags)
