"""GET /clips (search), GET /clips/export (CSV or JSON Lines) and GET /clips/{id}."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from clipwatch.api.auth import Caller, client_ip
from clipwatch.api.cached import cached_answer
from clipwatch.api.clip_filters import (
    ClipFilters,
    Feed,
    apply_preferences,
    clip_answer,
    clips_answer,
    reader_of,
)
from clipwatch.api.deps import Session, State, reads_only
from clipwatch.api.errors import problem_responses
from clipwatch.api.params import ClipId, Cursor
from clipwatch.api.schemas import ClipPage, ClipRead
from clipwatch.clips import export, tags
from clipwatch.clips.search import Sort, check_ranges
from clipwatch.errors import Unauthenticated

router = APIRouter(tags=["clips"])


@router.get(
    "/clips",
    response_model=ClipPage,
    responses=problem_responses(
        {
            401: "feed=mine or favourite=true without credentials",
            403: "feed=mine or favourite=true without the 'read' scope",
            422: "Invalid input",
            429: "Rate limited",
        }
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
@reads_only
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
    favourite: Annotated[
        bool, Query(description="Only the caller's favourites (needs authentication)")
    ] = False,
) -> Response:
    search = replace(
        filters, sort=sort, limit=limit, cursor=cursor, tag_viewer=tags.viewer(principal)
    )
    check_ranges(search)  # the request's own bounds, before preferences add theirs
    if feed == "mine":
        search = await apply_preferences(session, principal, search)
    if favourite:
        search = replace(search, favourite_of=reader_of(principal, "favourite=true").user_id)

    async def compute() -> tuple[ClipPage, set[str]]:
        return await clips_answer(session, state, search)

    # A feed, favourites and a signed-in caller's tags (their private ones count) are the
    # caller's own; every other answer is the same for everyone.
    personal = feed is not None or favourite or bool(search.tags and search.tag_viewer)
    return await cached_answer(request, state, compute, cacheable=not personal)


EXPORT_ANONYMOUS_ROWS = 1_000


@router.get(
    "/clips/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The clips as CSV (with a header row) or JSON Lines, streamed",
            "content": {"text/csv": {}, "application/x-ndjson": {}},
        },
        **problem_responses(
            {
                400: "A cursor that does not continue this query",
                401: "More than 1,000 rows, feed=mine or favourite=true without credentials",
                403: "feed=mine or favourite=true without the 'read' scope",
                422: "Invalid input",
                429: "Rate limited",
            }
        ),
    },
    summary="Export a search as CSV or JSON Lines",
    description=(
        "The clips `GET /clips` finds with the same filters and sort, every one of them, "
        "streamed in constant memory (the same keyset walk, a page at a time). Columns: "
        "id, url, title, channel, creator, game, views, duration, created_at, vod_offset, "
        "tags (the community's, space-separated). "
        "Without credentials at most 1,000 rows (`max_rows` ≤ 1000); each 1,000 rows count "
        "as one request against the caller's rate limit, and the download waits while it "
        "is spent."
    ),
)
async def export_clips(
    request: Request,
    state: State,
    session: Session,
    principal: Caller,
    filters: ClipFilters,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl")] = "csv",
    sort: Sort | None = None,
    max_rows: Annotated[int | None, Query(ge=1, le=10**9)] = None,
    feed: Feed = None,
    favourite: Annotated[
        bool, Query(description="Only the caller's favourites (needs authentication)")
    ] = False,
) -> StreamingResponse:
    if principal is None and (max_rows is None or max_rows > EXPORT_ANONYMOUS_ROWS):
        raise Unauthenticated(
            f"an export of more than {EXPORT_ANONYMOUS_ROWS:,} rows needs an API token or a "
            f"session (or max_rows of at most {EXPORT_ANONYMOUS_ROWS})"
        )
    search = replace(filters, sort=sort, tag_viewer=tags.viewer(principal))
    check_ranges(search)
    if feed == "mine":
        search = await apply_preferences(session, principal, search)
    if favourite:
        search = replace(search, favourite_of=reader_of(principal, "favourite=true").user_id)
    settings = state.settings
    limit, who = (
        (settings.rate_limit_anonymous, ("ip", client_ip(request)))
        if principal is None
        else (settings.rate_limit_user, ("user", str(principal.user_id)))
    )

    async def charge() -> None:
        """One request's worth of the caller's limit; while it is spent, the download waits
        for the window to refill (the answer has begun: there is no 429 to give)."""
        decision = await state.limiter.hit(limit, *who)
        while not decision.allowed:
            await asyncio.sleep(max(decision.reset_after, 1))  # until the window refills
            decision = await state.limiter.hit(limit, *who)

    body = await export.export_body(
        session,
        state.sessionmaker,
        search,
        format,
        dialect=state.engine.dialect.name,
        key=settings.signing_key,
        relevance_candidates=settings.search_relevance_candidates,
        max_rows=max_rows,
        charge=charge,
    )
    return StreamingResponse(
        body,
        media_type=export.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="clips.{format}"'},
    )


@router.get(
    "/clips/{clip_id}",
    response_model=ClipRead,
    responses=problem_responses({404: "No such clip", 422: "Invalid input"}),
    summary="One clip by its Twitch id (deleted clips too, with deleted_at set)",
)
@reads_only
async def get_clip(request: Request, state: State, session: Session, clip_id: ClipId) -> Response:
    async def compute() -> tuple[ClipRead, set[str]]:
        return await clip_answer(session, clip_id)

    return await cached_answer(request, state, compute)
