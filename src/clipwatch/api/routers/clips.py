"""GET /clips (search) and GET /clips/{id}."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from clipwatch.api.auth import Caller
from clipwatch.api.cached import cached_answer
from clipwatch.api.clip_filters import ClipFilters, Feed, apply_preferences, clips_answer
from clipwatch.api.deps import Session, State
from clipwatch.api.errors import problem_responses
from clipwatch.api.params import ClipId, Cursor
from clipwatch.api.schemas import ClipPage, ClipRead
from clipwatch.clips.search import Sort, check_ranges
from clipwatch.db.repositories import catalog, clip_search
from clipwatch.errors import NotFound

router = APIRouter(tags=["clips"])


@router.get(
    "/clips",
    response_model=ClipPage,
    responses=problem_responses(
        {401: "feed=mine without credentials", 422: "Invalid input", 429: "Rate limited"}
    ),
    summary="Search and browse clips",
    description=(
        "Full-text search over titles, creator and channel names (all words must match; the "
        "last word also matches as a prefix). Keyset pagination: pass `next_cursor` back as "
        "`cursor`. A cursor walk sees the clips stored when it started, each once. `relevance` "
        "ranks the most viewed matches (see docs/search.md), then walks the other matches by "
        "views; it is the default when `q` is given, `newest` otherwise. Bounds (`min_`/`max_`, "
        "`created_after`/`created_before`) that exclude each other answer 422."
    ),
)
async def list_clips(
    request: Request,
    state: State,
    session: Session,
    principal: Caller,
    filters: ClipFilters,
    sort: Sort | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor | None = None,
    feed: Feed = None,
) -> Response:
    search = replace(filters, sort=sort, limit=limit, cursor=cursor)
    check_ranges(search)  # the request's own bounds, before preferences add theirs
    if feed == "mine":
        search = await apply_preferences(session, principal, search)

    async def compute() -> tuple[ClipPage, set[str]]:
        return await clips_answer(session, state.settings, search)

    # A feed is the caller's own; every other answer is the same for everyone.
    return await cached_answer(request, state, compute, cacheable=feed is None)


@router.get(
    "/clips/{clip_id}",
    response_model=ClipRead,
    responses=problem_responses({404: "No such clip", 422: "Invalid input"}),
    summary="One clip by its Twitch id (deleted clips too, with deleted_at set)",
)
async def get_clip(request: Request, state: State, session: Session, clip_id: ClipId) -> Response:
    async def compute() -> tuple[ClipRead, set[str]]:
        clip = await clip_search.get_clip(session, clip_id)
        if clip is None:
            raise NotFound(f"no clip with id {clip_id}")
        names = await catalog.game_names(session, [clip.game_id] if clip.game_id else [])
        return ClipRead.from_clip(clip, names.get(clip.game_id or "")), {
            f"ch:{clip.broadcaster_id}",
            "catalog",
        }

    return await cached_answer(request, state, compute)
