"""GET /clips (search) and GET /clips/{id}."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from clipwatch.api.deps import Session, State
from clipwatch.api.errors import problem_responses
from clipwatch.api.params import ClipId, Cursor, Instant, Key, Language, SearchText
from clipwatch.api.schemas import ClipPage, ClipRead, Problem
from clipwatch.clips.search import ClipSearch, Sort, search_clips
from clipwatch.db.repositories import catalog, clip_search
from clipwatch.errors import NotFound

router = APIRouter(tags=["clips"])
PROBLEMS: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "Invalid input"}
}


@router.get(
    "/clips",
    response_model=ClipPage,
    responses=problem_responses({422: "Invalid input"}),
    summary="Search and browse clips",
    description=(
        "Full-text search over titles, creator and channel names (all words must match; the "
        "last word also matches as a prefix). Keyset pagination: pass `next_cursor` back as "
        "`cursor`. A cursor walk sees the clips stored when it started. `relevance` ranks the "
        "most viewed matches (see docs/search.md) and is the default when `q` is given; "
        "`newest` otherwise."
    ),
)
async def list_clips(
    state: State,
    session: Session,
    q: Annotated[SearchText | None, Query(examples=["pog clutch"])] = None,
    broadcaster: Annotated[
        list[Key], Query(max_length=20, description="Channel id or login; repeatable")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    game: Annotated[
        list[Key], Query(max_length=20, description="Game id or name; repeatable")
    ] = [],  # noqa: B006
    creator: Annotated[Key | None, Query(description="Creator id or name")] = None,
    language: Annotated[Language | None, Query(examples=["en"])] = None,
    min_views: Annotated[int | None, Query(ge=0, le=10**12)] = None,
    featured: bool | None = None,
    created_after: Instant | None = None,
    created_before: Instant | None = None,
    sort: Sort | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor | None = None,
    include_deleted: bool = False,
) -> ClipPage:
    search = ClipSearch(
        q=q,
        broadcaster=tuple(broadcaster),
        game=tuple(game),
        creator=creator,
        language=language,
        min_views=min_views,
        featured=featured,
        created_after=created_after,
        created_before=created_before,
        sort=sort,
        limit=limit,
        cursor=cursor,
        include_deleted=include_deleted,
    )
    page = await search_clips(
        session,
        search,
        key=state.settings.signing_key,
        relevance_candidates=state.settings.search_relevance_candidates,
    )
    return ClipPage(
        data=[ClipRead.from_clip(c, page.game_names.get(c.game_id or "")) for c in page.clips],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/clips/{clip_id}",
    response_model=ClipRead,
    responses=problem_responses({404: "No such clip", 422: "Invalid input"}),
    summary="One clip by its Twitch id (deleted clips too, with deleted_at set)",
)
async def get_clip(session: Session, clip_id: ClipId) -> ClipRead:
    clip = await clip_search.get_clip(session, clip_id)
    if clip is None:
        raise NotFound(f"no clip with id {clip_id}")
    names = await catalog.game_names(session, [clip.game_id] if clip.game_id else [])
    return ClipRead.from_clip(clip, names.get(clip.game_id or ""))
