"""The filters GET /clips, GET /stream and the search page share: one dependency, so each
route declares, validates and documents the same parameters, `feed=mine` means the same
everywhere, and a page of clips is computed (and cached) one way."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts import preferences
from clipwatch.accounts.service import Principal
from clipwatch.api.params import Instant, Key, Language, SearchText
from clipwatch.api.schemas import ClipPage, ClipRead
from clipwatch.clips.search import ClipSearch, search_clips
from clipwatch.config import Settings
from clipwatch.errors import Forbidden, Unauthenticated


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


async def clips_answer(
    session: AsyncSession, settings: Settings, search: ClipSearch
) -> tuple[ClipPage, set[str]]:
    """One page of clips as GET /clips answers it, and the cache generations it read (the
    resolved channels', or every clip's when the search is not bound to channels)."""
    page = await search_clips(
        session,
        search,
        key=settings.signing_key,
        relevance_candidates=settings.search_relevance_candidates,
    )
    answer = ClipPage(
        data=[ClipRead.from_clip(c, page.game_names.get(c.game_id or "")) for c in page.clips],
        next_cursor=page.next_cursor,
    )
    if page.channel_ids is None:
        return answer, {"clips", "catalog"}
    return answer, {"catalog", *(f"ch:{c}" for c in page.channel_ids)}
