"""Reading clips: filters, keyset pages in every sort, and the text match per dialect.

Every page is found in two steps: an inner query picks the page's `seq`s (touching as little
as it can), and the outer query reads those few full rows. How the inner query stays fast at
a million clips (docs/search.md has the measurements):

- PostgreSQL: the sort indexes INCLUDE the tsvector, so walking one in sort order tests each
  row's match from the index alone (~0.35 µs a row); rare words go through the GIN index and
  a top-N sort instead. The planner's estimates pick between the two well.
- SQLite: its planner cannot weigh an FTS5 match, so we count the matches (bounded, cheap:
  doclists only) and either join the few matches to a narrow covering index and sort them, or
  walk the sort index and test each row's text (cw_match, db/search.py) until the page is full.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    column,
    func,
    or_,
    select,
    table,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import TableClause, TextClause

from clipwatch.db.models import Clip, Favourite, Game
from clipwatch.db.repositories import moderation, tags
from clipwatch.db.repositories._dialect import dialect_name
from clipwatch.db.repositories.search_stats import search_stats
from clipwatch.db.search import (
    NO_TERMS,
    SQLITE_COVER_INDEX,
    SQLITE_COVERED_COLUMNS,
    Terms,
    parse_terms,
)
from clipwatch.db.types import UTCDateTime

KeysetSort = Literal["views", "newest", "oldest"]
Condition = ColumnElement[bool] | TextClause
_SORT_COLUMN = {"views": "view_count", "newest": "created_at", "oldest": "created_at"}
# SQLite cost model, measured at 1M clips: reading one FTS5 match's sort key through the
# covering index ~1 µs; checking one row's text while walking a sort index ~4 µs.
_JOIN_COST_US = 1.0
_PROBE_COST_US = 4.0
# PostgreSQL, measured at 1M clips: a row read in an index-only walk 0.35-0.8 µs; a GIN entry
# of a prefix gathered into a bitmap ~0.15 µs (30 ms for `clutch:*`, in a fifth of all clips),
# while exact words intersect by skipping (~0.01 µs an entry); a matching row read from the
# table 8-9 µs.
# A partial match's bitmap outgrows the CPU's caches (and work_mem) as the archive grows: at
# 10M clips a row of it cost ~3x a walked row, not 0.3x (per query, at 10M, on one machine:
# 'try stream' walked 39 ms against 125 ms through GIN; docs/search.md). So its price grows
# with the table, from 1M rows up to 10x at 10M.
_PG_WALK_COST_US = 0.5
_PG_PREFIX_ENTRY_COST_US = 0.15
_PG_PREFIX_GROWTH_CAP = 10.0
_PG_EXACT_ENTRY_COST_US = 0.01
_PG_HEAP_COST_US = 8.0


@dataclass(frozen=True)
class ClipFilters:
    terms: Terms = NO_TERMS
    broadcaster_ids: tuple[str, ...] | None = None
    game_ids: tuple[str, ...] | None = None
    creator_ids: tuple[str, ...] | None = None
    languages: tuple[str, ...] | None = None
    # A feed: clips of any of these channels or any of these games (ids).
    follows: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    min_views: int | None = None
    max_views: int | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    featured: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    include_deleted: bool = False
    max_seq: int | None = None
    favourite_of: int | None = None  # only this member's favourites (`favourite=true`)
    include_hidden: bool = False  # clips moderators hid (never in a public answer)
    # `tag=`: the clip carries a tag of each set (each set: the ids one name stands for).
    tag_sets: tuple[tuple[int, ...], ...] | None = None
    # Per word of `terms`: the community tags whose name has that word (docs/tags.md). Set
    # only when some word names a tag; such a word matches a clip's text or those tags.
    term_tags: tuple[tuple[int, ...], ...] | None = None

    def covered_by_sqlite_index(self) -> bool:
        """Only filters on columns of the narrow covering index."""
        return (
            self.game_ids is None
            and self.creator_ids is None
            and self.languages is None
            and self.follows is None
            and self.featured is None
            and self.min_duration is None
            and self.max_duration is None
            and self.favourite_of is None
            and self.tag_sets is None
        )


class _IndexedTable(TableClause):
    """`clip INDEXED BY <index>` in a FROM clause (SQLAlchemy has no SQLite index hints)."""

    inherit_cache = True

    def __init__(self, name: str, index: str, *columns: Any) -> None:
        super().__init__(name, *columns)
        self.index = index


@compiles(_IndexedTable)
def _render_indexed_table(element: _IndexedTable, compiler: Any, **kw: Any) -> str:
    name = compiler.preparer.quote(element.name)
    return f"{name} INDEXED BY {element.index}" if kw.get("asfrom") else name


_covered = _IndexedTable(
    "clip",
    SQLITE_COVER_INDEX,
    *(
        column(name, UTCDateTime()) if name == "created_at" else column(name)
        for name in SQLITE_COVERED_COLUMNS
    ),
)
_fts = table("clip_fts", column("rowid"))


def _conditions(f: ClipFilters, c: Any) -> list[Condition]:
    """The filters as conditions on `c` (the clip table's columns, or the covered subset)."""
    conds: list[Condition] = []
    if f.broadcaster_ids is not None:
        conds.append(c.broadcaster_id.in_(f.broadcaster_ids))
    if f.game_ids is not None:
        conds.append(c.game_id.in_(f.game_ids))
    if f.creator_ids is not None:
        conds.append(c.creator_id.in_(f.creator_ids))
    if f.languages is not None:
        conds.append(c.language.in_(f.languages))
    if f.follows is not None:
        channels, games = f.follows
        followed = [c.broadcaster_id.in_(channels)] if channels else []
        followed += [c.game_id.in_(games)] if games else []
        if followed:
            conds.append(or_(*followed))
    if f.min_views is not None:
        conds.append(c.view_count >= f.min_views)
    if f.max_views is not None:
        conds.append(c.view_count <= f.max_views)
    if f.min_duration is not None:
        conds.append(c.duration >= f.min_duration)
    if f.max_duration is not None:
        conds.append(c.duration <= f.max_duration)
    if f.featured is not None:
        conds.append(c.is_featured.is_(f.featured))
    if f.created_after is not None:
        conds.append(c.created_at >= f.created_after)
    if f.created_before is not None:
        conds.append(c.created_at < f.created_before)
    if not f.include_deleted:
        conds.append(c.deleted_at.is_(None))
    if f.max_seq is not None:
        conds.append(c.seq <= f.max_seq)
    if f.favourite_of is not None:
        kept = select(Favourite.clip_id).where(Favourite.user_id == f.favourite_of)
        conds.append(c.id.in_(kept))
    if not f.include_hidden:
        conds.append(moderation.visible(c.seq))
    for ids in f.tag_sets or ():
        conds.append(tags.tagged_with(c.seq, ids))
    return conds


def _keyset(
    sort: KeysetSort, after: tuple[Any, int] | None, c: Any, *, indexable: bool = True
) -> list[Condition]:
    """Rows after `after` in the sort's order. `indexable=False` hides the bound from the
    sort indexes (coalesce(x, x) is x): PostgreSQL estimates a row comparison at a row or
    two, and would scan a sort index's whole range below the bound (440,000 rows, 400 ms,
    for a deep page of a word in 200 clips) instead of taking the GIN plan it was told."""
    if after is None:
        return []
    column, seq = c[_SORT_COLUMN[sort]], c.seq
    if not indexable:
        column, seq = func.coalesce(column, column), func.coalesce(seq, seq)
    key = tuple_(column, seq)
    bound = tuple_(*after)
    return [key > bound] if sort == "oldest" else [key < bound]


_newest = Clip.__table__.alias("newest")


def _ordered_seqs(
    c: Any,
    sort: KeysetSort,
    conds: list[Condition],
    limit: int,
    *,
    walk_index: bool = True,
) -> Select[Any]:
    """The page's seqs and sort keys, and the newest clip's seq ("m") in the same snapshot
    (a walk's first page reads it with its rows: one statement less than a query of its own).
    `walk_index=False` hides the keys from the planner (coalesce(x, x) is x, but no index
    provides its order), so it cannot walk a sort index."""
    key, seq = c[_SORT_COLUMN[sort]], c.seq
    order_key, order_seq = (
        (key, seq) if walk_index else (func.coalesce(key, key), func.coalesce(seq, seq))
    )
    order = (
        [order_key.asc(), order_seq.asc()]
        if sort == "oldest"
        else [order_key.desc(), order_seq.desc()]
    )
    newest = select(func.max(_newest.c.seq)).scalar_subquery()
    return (
        select(seq.label("seq"), key.label("k"), newest.label("m"))
        .where(*conds)
        .order_by(*order)
        .limit(limit)
    )


# A clip, its game's name, and the names of the community tags on it (sorted).
NamedClip = tuple[Clip, str | None, list[str]]


def _with_names(session: AsyncSession, stmt: Select[Any]) -> Select[Any]:
    """Each clip with its game's name and its community tags, in the same statement: a search
    answer shows both, and a separate query for each cost a round trip per search."""
    return stmt.add_columns(
        Game.name, tags.names_column(dialect_name(session), Clip.seq)
    ).outerjoin(Game, Game.id == Clip.game_id)


def _named(row: Any) -> NamedClip:
    clip, game, names = row[0], row[1], row[2]
    return clip, game, sorted(names.split(" ")) if names else []


T = TypeVar("T")


@dataclass(frozen=True)
class Found(Generic[T]):
    """Rows of a page, and the newest clip seq when they were read (None: no rows)."""

    rows: list[T]
    newest_seq: int | None


async def find_clips(
    session: AsyncSession,
    filters: ClipFilters,
    sort: KeysetSort,
    *,
    after: tuple[Any, int] | None = None,
    limit: int,
) -> Found[NamedClip]:
    """One keyset page of clips that pass the filters, in the sort's order, each with its
    game's name (None: no game, or its name not known yet)."""
    inner = await _page_query(session, filters, sort, after, limit)
    page = inner.subquery("page")
    order = (
        [page.c.k.asc(), page.c.seq.asc()]
        if sort == "oldest"
        else [page.c.k.desc(), page.c.seq.desc()]
    )
    stmt = _with_names(session, select(Clip).join(page, Clip.seq == page.c.seq)).order_by(*order)
    rows = (await session.execute(stmt.add_columns(page.c.m))).all()
    return Found([_named(row) for row in rows], rows[0][3] if rows else None)


@dataclass(frozen=True)
class ClipText:
    """What relevance needs of a clip, without loading the whole row."""

    seq: int
    title: str
    creator_name: str
    broadcaster_name: str
    view_count: int


async def find_clip_texts(
    session: AsyncSession,
    filters: ClipFilters,
    sort: KeysetSort,
    *,
    after: tuple[Any, int] | None = None,
    limit: int,
) -> Found[ClipText]:
    """The texts of the first `limit` clips in the sort's order after `after` (relevance's
    candidates), in no particular order."""
    page = (await _page_query(session, filters, sort, after, limit)).subquery("page")
    stmt = select(
        Clip.seq, Clip.title, Clip.creator_name, Clip.broadcaster_name, Clip.view_count, page.c.m
    ).join(page, Clip.seq == page.c.seq)
    rows = (await session.execute(stmt)).all()
    return Found([ClipText(*row[:-1]) for row in rows], rows[0][-1] if rows else None)


async def _page_query(
    session: AsyncSession,
    f: ClipFilters,
    sort: KeysetSort,
    after: tuple[Any, int] | None,
    limit: int,
) -> Select[Any]:
    c = Clip.__table__.c
    if not f.terms:
        return _ordered_seqs(c, sort, _conditions(f, c) + _keyset(sort, after, c), limit)
    if f.term_tags:
        conds = text_match(f, c, dialect_name(session))
        return _ordered_seqs(c, sort, conds + _conditions(f, c) + _keyset(sort, after, c), limit)
    if dialect_name(session) == "postgresql":
        return await _pg_page_query(session, f, sort, after, limit)
    return await _sqlite_page_query(session, f, sort, after, limit)


def pg_index_tsquery(terms: Terms, name: str) -> tuple[str, dict[str, str]]:
    """The tsquery SQL (and its parameters, `name` and `name`_prefix) that finds `terms` in
    `clip_search_terms(search_vector)` (db/search.py): a trailing prefix of up to 4
    characters is its own exact entry there, any other stays a `p:*` partial match."""
    words, prefix = terms.pg_index_query()
    query = f"to_tsquery('simple'::regconfig, :{name})"
    if prefix is None:
        return query, {name: words}
    entry = f"CAST(:{name}_prefix AS tsquery)"
    if not words:
        return entry, {f"{name}_prefix": prefix}
    return f"({query} && {entry})", {name: words, f"{name}_prefix": prefix}


def pg_indexed_match(terms: Terms, name: str) -> TextClause:
    """`terms` as a condition a GIN index answers. A statement may hold several: each needs
    a `name` of its own.

    With a trailing prefix of up to 4 characters: the index of `clip_search_terms(
    search_vector)`, where it is an entry of its own. Otherwise the vector's own index
    (`ix_clip_search`): when a bitmap outgrows `work_mem`, its lossy pages are rechecked
    row by row with the index's expression, and `clip_search_terms` costs ~5 µs a row where
    the vector costs nothing (at 10M clips, 'try stream' took 401 ms that way, 124 ms so)."""
    query, params = pg_index_tsquery(terms, name)
    column = "clip.search_vector"
    if f"{name}_prefix" in params:
        column = f"clip_search_terms({column})"
    return text(f"{column} @@ {query}").bindparams(**params)


def _tsquery_condition(terms: Terms, *, indexable: bool) -> TextClause:
    # Distinct parameter names: the split-prefix plan uses both forms with different queries.
    if indexable:
        return pg_indexed_match(terms, "tsq_index")
    # A function call, unlike the @@ operator, never becomes a GIN index condition.
    sql = "ts_match_vq(clip.search_vector, to_tsquery('simple'::regconfig, :tsq_check))"
    return text(sql).bindparams(tsq_check=terms.tsquery())


def text_match(f: ClipFilters, c: Any, dialect: str) -> list[Condition]:
    """The words of `f.terms` as conditions when some of them name community tags: each such
    word matches the clip's text or one of those tags; the other words match the text
    together (through the text index). No cost model here: only searches whose words are
    tags' words take this path (docs/tags.md)."""
    terms, term_tags = f.terms, f.term_tags or ()
    last = len(terms.words) - 1

    def words(indexes: list[int]) -> Terms:
        return Terms(
            tuple(terms.words[i] for i in indexes), terms.last_is_prefix and last in indexes
        )

    def match(part: Terms, name: str, *, indexable: bool) -> Condition:
        if dialect == "postgresql":
            if indexable:
                return pg_indexed_match(part, name)
            sql = f"ts_match_vq(clip.search_vector, to_tsquery('simple'::regconfig, :{name}))"
            return text(sql).bindparams(**{name: part.tsquery()})
        found = select(_fts.c.rowid).where(
            text(f"clip_fts MATCH :{name}").bindparams(**{name: part.fts5_match()})
        )
        return c.seq.in_(found)  # type: ignore[no-any-return]

    plain = [i for i, ids in enumerate(term_tags) if not ids]
    conds: list[Condition] = []
    if plain:
        conds.append(match(words(plain), "tsq_plain", indexable=True))
    for i, ids in enumerate(term_tags):
        if ids:
            conds.append(
                or_(match(words([i]), f"tsq_tag{i}", indexable=False), tags.tagged_with(c.seq, ids))
            )
    return conds


PgPlan = Literal["walk", "gin", "split"]


def choose_pg_plan(
    freqs: Sequence[float],
    *,
    last_is_prefix: bool,
    rows: int,
    walked_share: float,
    limit: int,
    prefix_indexed: bool = False,
) -> PgPlan:
    """The cheapest of three plans for words with these row frequencies (docs/search.md).

    - walk: the sort index in order, testing each row's vector, until `limit` match;
    - gin: every row with all the words, from the GIN index, then sorted;
    - split: GIN for the exact words only, the trailing prefix tested on their rows.
    `walked_share` is the part of the sort index a walk can cover (a channel's share).
    `prefix_indexed`: the trailing prefix is short enough to be an exact entry of the index
    (db/search.py PREFIX_INDEXED), so it costs what a word costs.
    """
    last = len(freqs) - 1
    matching = math.prod(freqs)
    walk = _PG_WALK_COST_US * min(rows * walked_share, limit / max(matching, 1e-12))
    partial = last_is_prefix and not prefix_indexed
    partial_cost = _PG_PREFIX_ENTRY_COST_US * min(max(rows / 1e6, 1.0), _PG_PREFIX_GROWTH_CAP)
    entry = [
        partial_cost if partial and i == last else _PG_EXACT_ENTRY_COST_US
        for i in range(len(freqs))
    ]
    gin = rows * (
        sum(c * fr for c, fr in zip(entry, freqs, strict=True)) + _PG_HEAP_COST_US * matching
    )
    split = math.inf
    if last > 0 and last_is_prefix:
        exact = freqs[:-1]
        split = rows * (_PG_EXACT_ENTRY_COST_US * sum(exact) + _PG_HEAP_COST_US * math.prod(exact))
    best = min(walk, gin, split)
    return "walk" if best == walk else "gin" if best == gin else "split"


async def _pg_page_query(
    session: AsyncSession,
    f: ClipFilters,
    sort: KeysetSort,
    after: tuple[Any, int] | None,
    limit: int,
) -> Select[Any]:
    """Price the plans from the word and channel statistics, and force the cheapest.

    PostgreSQL's own choice is right for common words but not for words outside its
    most-common-elements statistics: it assumes a few hundred matches, walks the index and
    can read the whole table for a word that is in three clips. And it cannot know that a
    popular *prefix* in a GIN condition costs a bitmap of all its rows.
    """
    c = Clip.__table__.c
    terms = f.terms
    stats = await search_stats(session)
    last = len(terms.words) - 1
    plan = choose_pg_plan(
        [
            stats.prefix(w) if terms.last_is_prefix and i == last else stats.exact(w)
            for i, w in enumerate(terms.words)
        ],
        last_is_prefix=terms.last_is_prefix,
        # A first page has no bound yet (it reads the newest seq with its rows): the table's
        # size from the statistics, or counted when it was never analyzed.
        rows=max(f.max_seq or stats.rows or await newest_seq(session), 1),
        walked_share=stats.channel_share(f.broadcaster_ids) if f.broadcaster_ids else 1.0,
        limit=limit,
        prefix_indexed=terms.pg_index_query()[1] is not None,
    )
    walk = plan == "walk"
    conds = [
        *pg_match_conditions(terms, plan),
        *_conditions(f, c),
        *_keyset(sort, after, c, indexable=walk),
    ]
    return _ordered_seqs(c, sort, conds, limit, walk_index=walk)


def pg_match_conditions(terms: Terms, plan: PgPlan) -> list[TextClause]:
    """The text match as the plan needs it: in the GIN index, out of it, or split."""
    if plan == "walk":
        return [_tsquery_condition(terms, indexable=False)]
    if plan == "split":
        return [
            _tsquery_condition(Terms(terms.words[:-1], False), indexable=True),
            _tsquery_condition(terms, indexable=False),
        ]
    return [_tsquery_condition(terms, indexable=True)]


async def _sqlite_page_query(
    session: AsyncSession,
    f: ClipFilters,
    sort: KeysetSort,
    after: tuple[Any, int] | None,
    limit: int,
) -> Select[Any]:
    match = f.terms.fts5_match()
    total = f.max_seq or await newest_seq(session)
    # Joining costs ~M; walking costs ~limit·N/M probes. Count matches up to the break-even M.
    break_even = int(math.sqrt(_PROBE_COST_US / _JOIN_COST_US * limit * max(total, 1)))
    cap = max(break_even, 500)
    counted = await session.execute(
        text("SELECT count(*) FROM (SELECT 1 FROM clip_fts WHERE clip_fts MATCH :m LIMIT :cap)"),
        {"m": match, "cap": cap},
    )
    fts_match = text("clip_fts MATCH :match").bindparams(match=match)
    if counted.scalar_one() < cap:
        c = _covered.c if f.covered_by_sqlite_index() else Clip.__table__.c
        source = _covered if f.covered_by_sqlite_index() else Clip.__table__
        conds = _conditions(f, c) + _keyset(sort, after, c)
        inner = _ordered_seqs(c, sort, [fts_match, *conds], limit)
        return inner.select_from(source.join(_fts, _fts.c.rowid == c.seq))
    c = Clip.__table__.c
    check = text(
        "cw_match(:spec, clip.title, clip.creator_name, clip.broadcaster_name)"
    ).bindparams(spec=f.terms.spec())
    return _ordered_seqs(c, sort, [*_conditions(f, c), *_keyset(sort, after, c), check], limit)


async def resolve_creator_ids(session: AsyncSession, keys: Sequence[str]) -> list[str]:
    """Creator ids for creator ids or names (names case-insensitive), in one query.

    There is no index on creator names (each index costs import speed); the names' words
    are in the text index, so it finds the candidate rows and the exact names are checked on
    those. A name made only of popular words costs a larger scan.
    """
    ids = {key for key in keys if key.isdigit()}
    named = {key.lower(): parse_terms(key + " ") for key in keys}  # exact words, no prefix
    named = {name: terms for name, terms in named.items() if terms}
    if named:
        if dialect_name(session) == "postgresql":
            either = " | ".join(f"({terms.tsquery()})" for terms in named.values())
            match: Condition = text(
                "clip_search_terms(clip.search_vector) "
                "@@ to_tsquery('simple'::regconfig, :creator_tsq)"
            ).bindparams(creator_tsq=either)
        else:
            either = " OR ".join(
                f"creator_name : ({terms.fts5_match()})" for terms in named.values()
            )
            fts = select(_fts.c.rowid).where(
                text("clip_fts MATCH :creator_match").bindparams(creator_match=either)
            )
            match = Clip.seq.in_(fts)
        stmt = (
            select(Clip.creator_id)
            .where(match, func.lower(Clip.creator_name).in_(list(named)))
            .distinct()
            .limit(50 * len(named))
        )
        ids.update((await session.scalars(stmt)).all())
    return sorted(ids)


async def get_clip(
    session: AsyncSession, clip_id: str, *, include_hidden: bool = False
) -> Clip | None:
    """The clip, unless a moderator hid it (then only with `include_hidden`)."""
    stmt = select(Clip).where(Clip.id == clip_id)
    if not include_hidden:
        stmt = stmt.where(moderation.visible(Clip.seq))
    return (await session.scalars(stmt)).first()


async def get_named_clip(
    session: AsyncSession, clip_id: str, *, include_hidden: bool = False
) -> NamedClip | None:
    """The clip with its game's name and its community tags, in one statement (a clip page
    read them in three); hidden ones only with `include_hidden`."""
    stmt = _with_names(session, select(Clip).where(Clip.id == clip_id))
    if not include_hidden:
        stmt = stmt.where(moderation.visible(Clip.seq))
    row = (await session.execute(stmt)).first()
    return _named(row) if row is not None else None


async def clips_by_ids(session: AsyncSession, ids: list[str]) -> list[Clip]:
    """Clips by id, in the order of `ids` (missing and hidden ones left out)."""
    stmt = select(Clip).where(Clip.id.in_(ids), moderation.visible(Clip.seq))
    rows = {c.id: c for c in (await session.scalars(stmt)).all()}
    return [rows[i] for i in ids if i in rows]


async def newest_seq(session: AsyncSession) -> int:
    """The highest clip seq: a cursor walk only sees clips stored before it started."""
    return int((await session.execute(select(func.coalesce(func.max(Clip.seq), 0)))).scalar_one())


async def clips_by_seq(session: AsyncSession, seqs: Sequence[int]) -> list[NamedClip]:
    """Clips by seq (in no particular order), each with its game's name."""
    if not seqs:
        return []
    stmt = _with_names(session, select(Clip).where(Clip.seq.in_(list(seqs))))
    return [_named(row) for row in (await session.execute(stmt)).all()]
