"""Clip search: from a validated request to one page of clips and the cursor for the next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.clips.cursor import decode_cursor, encode_cursor, fingerprint
from clipwatch.clips.relevance import relevance_score
from clipwatch.db.models import Clip
from clipwatch.db.repositories import catalog, clip_search, tags
from clipwatch.db.repositories.clip_search import ClipFilters, ClipText, KeysetSort
from clipwatch.db.search import NO_TERMS, Terms, parse_terms, tokens
from clipwatch.errors import BadRequest, InvalidInput

Sort = Literal["relevance", "newest", "oldest", "views"]


@dataclass(frozen=True)
class ClipSearch:
    """What a caller may ask for; the API and Discord commands both build one."""

    q: str | None = None
    broadcaster: tuple[str, ...] = ()
    game: tuple[str, ...] = ()
    creators: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    # A feed (`feed=mine`): clips of any followed channel or any followed game.
    follow_channels: tuple[str, ...] = ()
    follow_games: tuple[str, ...] = ()
    min_views: int | None = None
    max_views: int | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    featured: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: Sort | None = None
    limit: int = 20
    cursor: str | None = None
    include_deleted: bool = False
    # `favourite=true`: only the favourites of this member (the caller). Part of the cursor's
    # fingerprint like every field: a cursor continues only its own member's walk.
    favourite_of: int | None = None
    # `tag=`: clips carrying each of these tags (names), as `tag_viewer` sees them (their own
    # private tags too; None: the community's only).
    tags: tuple[str, ...] = ()
    tag_viewer: int | None = None


@dataclass
class ClipPage:
    clips: list[Clip]
    game_names: dict[str, str | None] = field(default_factory=dict)
    next_cursor: str | None = None
    # The channels a `broadcaster` filter resolved to (None: not limited to channels). What
    # the page depends on, for the cache: only writes to these channels can change it.
    channel_ids: tuple[str, ...] | None = None
    # The community tags on the page's clips (by seq), sorted.
    tags: dict[int, list[str]] = field(default_factory=dict)


def check_ranges(search: ClipSearch) -> None:
    """Bounds that exclude each other are the caller's mistake, not an empty answer."""
    ranges: list[tuple[str, str, Any, Any]] = [
        ("created_after", "created_before", search.created_after, search.created_before),
        ("min_views", "max_views", search.min_views, search.max_views),
        ("min_duration", "max_duration", search.min_duration, search.max_duration),
    ]
    for low_name, high_name, low, high in ranges:
        if low is None or high is None or low <= high:
            continue
        if isinstance(low, datetime):
            shown, relation = (low.isoformat(), high.isoformat()), "later than"
        else:
            shown, relation = (str(low), str(high)), "greater than"
        raise InvalidInput(
            f"{low_name} ({shown[0]}) is {relation} {high_name} ({shown[1]}): "
            "no clip can match both",
            field=low_name,
        )


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


def _sort_key(sort: KeysetSort, clip: Clip) -> list[Any]:
    if sort == "views":
        return [clip.view_count, clip.seq]
    return [clip.created_at.isoformat(), clip.seq]


def _bounded(filters: ClipFilters, newest_seq: int | None) -> ClipFilters:
    """A first page's filters bound to the newest seq read with its rows: the cursor carries
    it, so a walk sees only clips stored before it began."""
    if filters.max_seq is not None or newest_seq is None:
        return filters
    return replace(filters, max_seq=newest_seq)


def _invalid_cursor() -> BadRequest:
    return BadRequest("cursor is not valid for this query")


def _decode_key(sort: Sort, key: Any) -> tuple[Any, int]:
    invalid = _invalid_cursor()
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


Vocabulary = Sequence[tuple[int, str]]  # community tags: (id, name)


async def search_clips(
    session: AsyncSession,
    search: ClipSearch,
    *,
    key: bytes,
    relevance_candidates: int,
    vocabulary: Vocabulary | None = None,
) -> ClipPage:
    """One page of the search. `vocabulary`: the community tags, when the caller holds them
    (the API, from its cache); read from the database otherwise."""
    terms = parse_terms(search.q) if search.q else NO_TERMS
    if search.q and not terms:
        return ClipPage([])  # only punctuation: nothing can match
    sort = effective_sort(search, terms)
    query_id = _query_fingerprint(search, terms, sort)

    payload: dict[str, Any] = {}
    max_seq: int | None = None  # a first page reads it with its rows
    if search.cursor:
        payload = decode_cursor(key, search.cursor, query=query_id)
        max_seq = payload.get("m")
        if type(max_seq) is not int:
            raise _invalid_cursor()

    filters = await _resolve_filters(session, search, terms, max_seq, vocabulary)
    if isinstance(filters, ClipPage):
        return filters  # a name that resolves to nothing: nothing can match

    if sort == "relevance":
        named, keys, filters = await _relevance_page(
            session, filters, _relevance_position(payload), search.limit, relevance_candidates
        )
    else:
        after = _decode_key(sort, payload.get("k")) if search.cursor else None
        found = await clip_search.find_clips(
            session, filters, sort, after=after, limit=search.limit + 1
        )
        named, filters = found.rows, _bounded(filters, found.newest_seq)
        keys = [{"k": _sort_key(sort, clip)} for clip, _, _ in named]

    next_cursor = None
    if len(named) > search.limit and filters.max_seq is not None:
        named = named[: search.limit]
        next_cursor = encode_cursor(
            key, {"q": query_id, "m": filters.max_seq, **keys[search.limit - 1]}
        )
    # The games' names came with the rows (one statement less per search).
    names = {clip.game_id: name for clip, name, _ in named if clip.game_id}
    on_clips = {clip.seq: tag_names for clip, _, tag_names in named if tag_names}
    clips = [clip for clip, _, _ in named]
    return ClipPage(clips, names, next_cursor, filters.broadcaster_ids, on_clips)


async def export_filters(
    session: AsyncSession, search: ClipSearch
) -> tuple[ClipFilters | None, Sort]:
    """The search as the repository's filters (names resolved) and its sort, for a walk in
    one statement (an export); None when nothing can match."""
    terms = parse_terms(search.q) if search.q else NO_TERMS
    sort = effective_sort(search, terms)
    if search.q and not terms:
        return None, sort
    resolved = await _resolve_filters(session, search, terms, None)
    return (None if isinstance(resolved, ClipPage) else resolved), sort


async def _resolve_filters(
    session: AsyncSession,
    search: ClipSearch,
    terms: Terms,
    max_seq: int | None,
    vocabulary: Vocabulary | None = None,
) -> ClipFilters | ClipPage:
    """Names resolved to ids; an empty page when a name filter resolves to nothing."""
    broadcaster_ids = game_ids = creator_ids = None
    if search.broadcaster:
        broadcaster_ids = tuple(await catalog.resolve_channel_ids(session, search.broadcaster))
    if search.game:
        game_ids = tuple(await catalog.resolve_game_ids(session, search.game))
    if broadcaster_ids == () or game_ids == ():
        return ClipPage([], channel_ids=broadcaster_ids)
    if search.creators:
        creator_ids = tuple(await clip_search.resolve_creator_ids(session, search.creators))
        if not creator_ids:
            return ClipPage([], channel_ids=broadcaster_ids)
    tag_sets = None
    if search.tags:
        named = await tags.ids_named(session, search.tags, search.tag_viewer)
        if any(name not in named for name in search.tags):
            return ClipPage([], channel_ids=broadcaster_ids)
        tag_sets = tuple(named[name] for name in search.tags)
    follows = None
    if search.follow_channels or search.follow_games:
        follows = (
            tuple(await catalog.resolve_channel_ids(session, search.follow_channels)),
            tuple(await catalog.resolve_game_ids(session, search.follow_games)),
        )
        if follows == ((), ()):
            return ClipPage([])
    return ClipFilters(
        terms=terms,
        broadcaster_ids=broadcaster_ids,
        game_ids=game_ids,
        creator_ids=creator_ids,
        languages=search.languages or None,
        follows=follows,
        min_views=search.min_views,
        max_views=search.max_views,
        min_duration=search.min_duration,
        max_duration=search.max_duration,
        featured=search.featured,
        created_after=search.created_after,
        created_before=search.created_before,
        include_deleted=search.include_deleted,
        max_seq=max_seq,
        favourite_of=search.favourite_of,
        tag_sets=tag_sets,
        term_tags=await _term_tags(session, terms, vocabulary) if terms else None,
    )


async def _term_tags(
    session: AsyncSession, terms: Terms, known: Vocabulary | None
) -> tuple[tuple[int, ...], ...] | None:
    """Per word, the community tags with that word in their name (the last word as a prefix
    when it is one); None when no word names a tag (the plain text search)."""
    named = known if known is not None else await tags.community_vocabulary(session)
    vocabulary = [(tag_id, tokens(name)) for tag_id, name in named]
    if not vocabulary:
        return None
    last = len(terms.words) - 1
    found = tuple(
        tuple(
            tag_id
            for tag_id, parts in vocabulary
            if any(
                part == word or (terms.last_is_prefix and i == last and part.startswith(word))
                for part in parts
            )
        )
        for i, word in enumerate(terms.words)
    )
    return found if any(found) else None


# --- relevance --------------------------------------------------------------------------------
#
# The order of a relevance walk: the `candidates` most viewed matches ranked by relevance,
# then every other match by views. A cursor inside the ranked part carries the last score
# ("k") and the boundary of the ranked part ("b": the views key of its least viewed clip, so
# later pages rank the same clips whatever the setting says now); a cursor in the rest
# carries the views key ("v"), and those pages are plain `sort=views` pages.


@dataclass(frozen=True)
class _RelevancePosition:
    after_score: tuple[float, int] | None = None
    boundary: tuple[int, int] | None = None
    after_views: tuple[int, int] | None = None  # set: the walk is past the ranked part


def _relevance_position(payload: dict[str, Any]) -> _RelevancePosition:
    if "v" in payload:
        return _RelevancePosition(after_views=_decode_key("views", payload["v"]))
    if "k" not in payload:
        return _RelevancePosition()
    return _RelevancePosition(
        _decode_key("relevance", payload["k"]), _decode_key("views", payload.get("b"))
    )


async def _relevance_page(
    session: AsyncSession,
    filters: ClipFilters,
    position: _RelevancePosition,
    limit: int,
    candidates: int,
) -> tuple[list[clip_search.NamedClip], list[dict[str, Any]], ClipFilters]:
    """Up to limit + 1 clips from `position` on, with the cursor fields each would end at,
    and the filters bound to the newest seq (a first page reads it with the candidates)."""
    ranked: list[tuple[float, int]] = []
    boundary, rest_after, rest_left = None, position.after_views, True
    if rest_after is None:
        pool, boundary, rest_left, newest = await _ranked_pool(
            session, filters, position.boundary, candidates
        )
        filters = _bounded(filters, newest)
        ranked = sorted(
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
        if position.after_score is not None:
            ranked = [item for item in ranked if item < position.after_score]
        ranked = ranked[: limit + 1]
        rest_after = boundary
    by_seq = {
        named[0].seq: named
        for named in await clip_search.clips_by_seq(session, [seq for _, seq in ranked])
    }
    clips: list[clip_search.NamedClip] = []
    keys: list[dict[str, Any]] = []
    for score, seq in ranked:
        if seq in by_seq:  # else gone since it was read
            clips.append(by_seq[seq])
            keys.append({"k": [score, seq], "b": list(boundary or ())})
    if len(clips) <= limit and rest_left and rest_after is not None:
        rest = await clip_search.find_clips(
            session, filters, "views", after=rest_after, limit=limit + 1 - len(clips)
        )
        filters = _bounded(filters, rest.newest_seq)
        clips += rest.rows
        keys += [{"v": _sort_key("views", clip)} for clip, _, _ in rest.rows]
    return clips, keys, filters


def _views_key(clip: ClipText) -> tuple[int, int]:
    return clip.view_count, clip.seq


async def _ranked_pool(
    session: AsyncSession,
    filters: ClipFilters,
    boundary: tuple[int, int] | None,
    candidates: int,
) -> tuple[list[ClipText], tuple[int, int] | None, bool, int | None]:
    """The ranked part: its clips, its boundary, whether any match lies beyond it, and the
    newest seq when it was read (None: no match).

    Without a boundary (a walk's first page) it is the `candidates` most viewed matches;
    with one, every match whose views key is at or above it.
    """
    found = await clip_search.find_clip_texts(session, filters, "views", limit=candidates + 1)
    batch, newest = found.rows, found.newest_seq
    batch.sort(key=_views_key, reverse=True)
    if boundary is None:
        pool = batch[:candidates]
        return pool, (_views_key(pool[-1]) if pool else None), len(batch) > candidates, newest
    pool = []
    asked = candidates + 1
    while True:
        above = [clip for clip in batch if _views_key(clip) >= boundary]
        pool += above
        if len(above) < len(batch):
            return pool, boundary, True, newest
        if len(batch) < asked:
            return pool, boundary, False, newest
        # Every clip read is still above the boundary: clips gained views since the first
        # page, and more of them may lie above it.
        asked = candidates
        batch = (
            await clip_search.find_clip_texts(
                session, filters, "views", after=_views_key(batch[-1]), limit=asked
            )
        ).rows
        batch.sort(key=_views_key, reverse=True)
