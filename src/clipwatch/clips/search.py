"""Clip search: from a validated request to one page of clips and the cursor for the next."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.clips.cursor import decode_cursor, encode_cursor, fingerprint
from clipwatch.clips.relevance import relevance_score
from clipwatch.db.models import Clip
from clipwatch.db.repositories import catalog, clip_search
from clipwatch.db.repositories.clip_search import ClipFilters, KeysetSort
from clipwatch.db.search import NO_TERMS, Terms, parse_terms
from clipwatch.errors import InvalidInput

Sort = Literal["relevance", "newest", "oldest", "views"]


@dataclass(frozen=True)
class ClipSearch:
    """What a caller may ask for; the API and Discord commands both build one."""

    q: str | None = None
    broadcaster: tuple[str, ...] = ()
    game: tuple[str, ...] = ()
    creator: str | None = None
    languages: tuple[str, ...] = ()
    # A feed (`feed=mine`): clips of any followed channel or any followed game.
    follow_channels: tuple[str, ...] = ()
    follow_games: tuple[str, ...] = ()
    min_views: int | None = None
    featured: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: Sort | None = None
    limit: int = 20
    cursor: str | None = None
    include_deleted: bool = False


@dataclass
class ClipPage:
    clips: list[Clip]
    game_names: dict[str, str | None] = field(default_factory=dict)
    next_cursor: str | None = None
    # The channels a `broadcaster` filter resolved to (None: not limited to channels). What
    # the page depends on, for the cache: only writes to these channels can change it.
    channel_ids: tuple[str, ...] | None = None


def effective_sort(search: ClipSearch, terms: Terms) -> Sort:
    """Relevance when words were typed, newest otherwise; relevance without words is views."""
    sort = search.sort or ("relevance" if terms else "newest")
    return "views" if sort == "relevance" and not terms else sort


def _query_fingerprint(search: ClipSearch, terms: Terms, sort: Sort) -> str:
    parts = asdict(search)
    parts.pop("cursor")
    parts.pop("limit")  # a caller may change the page size mid-walk
    parts["q"] = [list(terms.words), terms.last_is_prefix]
    parts["sort"] = sort
    return fingerprint(
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in parts.items()}
    )


def _sort_key(sort: Sort, clip: Clip, score: float = 0.0) -> list[Any]:
    if sort == "relevance":
        return [score, clip.seq]
    if sort == "views":
        return [clip.view_count, clip.seq]
    return [clip.created_at.isoformat(), clip.seq]


def _decode_key(sort: Sort, key: Any) -> tuple[Any, int]:
    invalid = InvalidInput("cursor is not valid for this query", field="cursor")
    if not (isinstance(key, list) and len(key) == 2 and type(key[1]) is int):
        raise invalid
    value, seq = key
    if sort == "relevance" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), seq
    if sort == "views" and type(value) is int:
        return value, seq
    if sort in ("newest", "oldest") and isinstance(value, str):
        try:
            return datetime.fromisoformat(value), seq
        except ValueError:
            raise invalid from None
    raise invalid


async def search_clips(
    session: AsyncSession, search: ClipSearch, *, key: bytes, relevance_candidates: int
) -> ClipPage:
    terms = parse_terms(search.q) if search.q else NO_TERMS
    if search.q and not terms:
        return ClipPage([])  # only punctuation: nothing can match
    sort = effective_sort(search, terms)
    query_id = _query_fingerprint(search, terms, sort)

    after: tuple[Any, int] | None = None
    if search.cursor:
        payload = decode_cursor(key, search.cursor, query=query_id)
        after = _decode_key(sort, payload.get("k"))
        max_seq = payload.get("m")
        if type(max_seq) is not int:
            raise InvalidInput("cursor is not valid for this query", field="cursor")
    else:
        max_seq = await clip_search.newest_seq(session)

    broadcaster_ids = game_ids = None
    if search.broadcaster:
        broadcaster_ids = tuple(await catalog.resolve_channel_ids(session, search.broadcaster))
    if search.game:
        game_ids = tuple(await catalog.resolve_game_ids(session, search.game))
    if broadcaster_ids == () or game_ids == ():
        return ClipPage([], channel_ids=broadcaster_ids)
    creator_ids = None
    if search.creator is not None:
        creator_ids = tuple(await clip_search.resolve_creator_ids(session, search.creator))
        if not creator_ids:
            return ClipPage([], channel_ids=broadcaster_ids)
    follows = None
    if search.follow_channels or search.follow_games:
        follows = (
            tuple(await catalog.resolve_channel_ids(session, search.follow_channels)),
            tuple(await catalog.resolve_game_ids(session, search.follow_games)),
        )
        if follows == ((), ()):
            return ClipPage([])

    filters = ClipFilters(
        terms=terms,
        broadcaster_ids=broadcaster_ids,
        game_ids=game_ids,
        creator_ids=creator_ids,
        languages=search.languages or None,
        follows=follows,
        min_views=search.min_views,
        featured=search.featured,
        created_after=search.created_after,
        created_before=search.created_before,
        include_deleted=search.include_deleted,
        max_seq=max_seq,
    )
    if sort == "relevance":
        clips, keys = await _relevance_page(
            session, filters, after, search.limit, relevance_candidates
        )
    else:
        keyset_sort: KeysetSort = sort
        clips = await clip_search.find_clips(
            session, filters, keyset_sort, after=after, limit=search.limit + 1
        )
        keys = [_sort_key(sort, clip) for clip in clips]

    next_cursor = None
    if len(clips) > search.limit:
        clips = clips[: search.limit]
        next_cursor = encode_cursor(key, {"q": query_id, "k": keys[search.limit - 1], "m": max_seq})
    names = await catalog.game_names(session, (c.game_id for c in clips if c.game_id))
    return ClipPage(clips, names, next_cursor, broadcaster_ids)


async def _relevance_page(
    session: AsyncSession,
    filters: ClipFilters,
    after: tuple[Any, int] | None,
    limit: int,
    candidates: int,
) -> tuple[list[Clip], list[list[Any]]]:
    """Rank the most viewed matches by relevance; a walk covers at most `candidates` clips."""
    pool = await clip_search.find_clip_texts(session, filters, "views", limit=candidates)
    scored = sorted(
        (
            (
                relevance_score(
                    filters.terms,
                    title=clip.title,
                    creator_name=clip.creator_name,
                    broadcaster_name=clip.broadcaster_name,
                    view_count=clip.view_count,
                ),
                clip.seq,
            )
            for clip in pool
        ),
        reverse=True,
    )
    if after is not None:
        scored = [item for item in scored if item < after]
    page = scored[: limit + 1]
    by_seq = {
        clip.seq: clip for clip in await clip_search.clips_by_seq(session, [s for _, s in page])
    }
    return [by_seq[seq] for _, seq in page], [[score, seq] for score, seq in page]
