"""The full-text search index, one per dialect, and how a typed query becomes a match.

PostgreSQL: a stored generated `tsvector` over title (weight A), creator and channel names
(weight B) with the `simple` configuration, under a GIN index. `simple` lowercases and
splits but neither stems nor drops stop words: titles come in every language, and an
English stemmer would mangle the rest (and drop words like "the" that users do search for).

SQLite: an FTS5 external-content table over the same three columns, kept in sync by
triggers, with prefix indexes for 2- to 4-character prefixes and an fts5vocab table that
tells the planner how common each term is.

PostgreSQL, since migration 0013: a second GIN index over `clip_search_terms(search_vector)`,
the vector's words plus, for every word, its 2- to 4-character prefixes as entries of their
own (`'rag *'`: the space keeps them apart from words, which never hold one). A trailing
prefix of up to 4 characters is then one exact entry that GIN intersects with the other words,
not a partial match that gathers every row of every word it starts (at 10M clips ~1.1 µs a
row, and a bitmap that outgrows `work_mem`). Only such searches use it: the others use
`ix_clip_search` (0001), whose lossy pages are rechecked on the stored vector for nothing,
where this index's recheck computes the function again (~5 µs a row).

Both: a query is split into terms of letters and digits; all terms must match; the last
term also matches as a prefix (when it has 2+ characters), so "pogg" finds "poggers".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Connection, text

_TOKEN = re.compile(r"[^\W_]+")
MAX_TERMS = 8
MIN_PREFIX = 2

_PG_CREATE = [
    """
    ALTER TABLE clip ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, coalesce(title, '')), 'A')
        || setweight(to_tsvector('simple'::regconfig, coalesce(creator_name, '')), 'B')
        || setweight(to_tsvector('simple'::regconfig, coalesce(broadcaster_name, '')), 'B')
    ) STORED
    """,
    "CREATE INDEX ix_clip_search ON clip USING gin (search_vector)",
    # The planner's word and channel frequencies (and ours, repositories/search_stats.py)
    # come from the most common values of a sample: 10x the default keeps ~10,000 words, not
    # ~1,000, and up to 1,000 channels.
    "ALTER TABLE clip ALTER COLUMN search_vector SET STATISTICS 1000",
    "ALTER TABLE clip ALTER COLUMN broadcaster_id SET STATISTICS 1000",
    # The sort indexes carry the vector (and deleted_at), so a walk in sort order tests each
    # row's match from the index alone (an index-only scan) instead of visiting the table.
    *(
        f"CREATE INDEX {name} ON clip ({columns}) INCLUDE (search_vector, deleted_at)"
        for name, columns in [
            ("ix_clip_views", "view_count, seq"),
            ("ix_clip_created", "created_at, seq"),
            ("ix_clip_broadcaster_views", "broadcaster_id, view_count, seq"),
            ("ix_clip_broadcaster_created", "broadcaster_id, created_at, seq"),
        ]
    ),
]
_PG_DROP = [
    "DROP INDEX IF EXISTS ix_clip_views",
    "DROP INDEX IF EXISTS ix_clip_created",
    "DROP INDEX IF EXISTS ix_clip_broadcaster_views",
    "DROP INDEX IF EXISTS ix_clip_broadcaster_created",
    "DROP INDEX IF EXISTS ix_clip_search",
    "ALTER TABLE clip DROP COLUMN IF EXISTS search_vector",
]
# Migration 0013 (PostgreSQL only). IMMUTABLE: it is an index expression. A word's prefixes
# are `left(word, n) || ' *'` for n in 2..min(4, length): a query prefix p of 2-4 characters
# matches exactly the rows with a word starting with p, as `p:*` does.
PREFIX_INDEXED = 4
PG_TERMS_FUNCTION = """
    CREATE OR REPLACE FUNCTION clip_search_terms(v tsvector) RETURNS tsvector
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
    DECLARE
        word text;
        prefixes text[] := '{}';
        n int;
    BEGIN
        FOREACH word IN ARRAY tsvector_to_array(v) LOOP
            n := 2;
            WHILE n <= least(4, length(word)) LOOP
                prefixes := prefixes || (left(word, n) || ' *');
                n := n + 1;
            END LOOP;
        END LOOP;
        RETURN v || array_to_tsvector(prefixes);  -- which sorts and drops repeats
    END
    $$
"""
# Per row, over 100,000 clips of the bench's: 5.4 µs; the same in SQL (unnest, generate_series,
# DISTINCT) 15 µs. The vector alone: 0.1 µs.
PG_TERMS_INDEX = "ix_clip_search_terms"
PG_TERMS_EXPRESSION = "clip_search_terms(search_vector)"
_FTS_COLUMNS = "title, creator_name, broadcaster_name"
SQLITE_COVER_INDEX = "ix_clip_seq_cover"
SQLITE_COVERED_COLUMNS = ("seq", "view_count", "created_at", "broadcaster_id", "deleted_at")
_SQLITE_CREATE = [
    "CREATE INDEX ix_clip_views ON clip (view_count, seq)",
    "CREATE INDEX ix_clip_created ON clip (created_at, seq)",
    "CREATE INDEX ix_clip_broadcaster_views ON clip (broadcaster_id, view_count, seq)",
    "CREATE INDEX ix_clip_broadcaster_created ON clip (broadcaster_id, created_at, seq)",
    # Looking up a match's sort key through this narrow index beats reading the wide row.
    f"CREATE INDEX {SQLITE_COVER_INDEX} ON clip ({', '.join(SQLITE_COVERED_COLUMNS)})",
    f"""
    CREATE VIRTUAL TABLE clip_fts USING fts5(
        {_FTS_COLUMNS}, content='clip', content_rowid='seq',
        tokenize='unicode61 remove_diacritics 0', prefix='2 3 4'
    )
    """,
    "CREATE VIRTUAL TABLE clip_fts_vocab USING fts5vocab(clip_fts, 'row')",
    f"""
    CREATE TRIGGER clip_fts_insert AFTER INSERT ON clip BEGIN
        INSERT INTO clip_fts(rowid, {_FTS_COLUMNS})
        VALUES (new.seq, new.title, new.creator_name, new.broadcaster_name);
    END
    """,
    f"""
    CREATE TRIGGER clip_fts_delete AFTER DELETE ON clip BEGIN
        INSERT INTO clip_fts(clip_fts, rowid, {_FTS_COLUMNS})
        VALUES ('delete', old.seq, old.title, old.creator_name, old.broadcaster_name);
    END
    """,
    # View-count refreshes must not rewrite the index: fire only when the text changed.
    f"""
    CREATE TRIGGER clip_fts_update AFTER UPDATE OF {_FTS_COLUMNS} ON clip
    WHEN old.title IS NOT new.title OR old.creator_name IS NOT new.creator_name
         OR old.broadcaster_name IS NOT new.broadcaster_name
    BEGIN
        INSERT INTO clip_fts(clip_fts, rowid, {_FTS_COLUMNS})
        VALUES ('delete', old.seq, old.title, old.creator_name, old.broadcaster_name);
        INSERT INTO clip_fts(rowid, {_FTS_COLUMNS})
        VALUES (new.seq, new.title, new.creator_name, new.broadcaster_name);
    END
    """,
]
_SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS clip_fts_update",
    "DROP TRIGGER IF EXISTS clip_fts_delete",
    "DROP TRIGGER IF EXISTS clip_fts_insert",
    "DROP TABLE IF EXISTS clip_fts_vocab",
    "DROP TABLE IF EXISTS clip_fts",
    "DROP INDEX IF EXISTS ix_clip_views",
    "DROP INDEX IF EXISTS ix_clip_created",
    "DROP INDEX IF EXISTS ix_clip_broadcaster_views",
    "DROP INDEX IF EXISTS ix_clip_broadcaster_created",
    f"DROP INDEX IF EXISTS {SQLITE_COVER_INDEX}",
]


def _run(connection: Connection, statements: list[str]) -> None:
    for statement in statements:
        connection.execute(text(statement))


def create_index(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        _run(connection, _PG_CREATE)
    else:
        _run(connection, _SQLITE_CREATE)


def drop_index(connection: Connection) -> None:
    _run(connection, _PG_DROP if connection.dialect.name == "postgresql" else _SQLITE_DROP)


def rebuild_index(connection: Connection) -> None:
    """Rebuild from the clip table (the PostgreSQL vector is generated, so only its index)."""
    if connection.dialect.name == "postgresql":
        names = ["ix_clip_search", *_pg_terms_index(connection)]
        _run(connection, [f"REINDEX INDEX {name}" for name in names])
    else:
        _run(connection, ["INSERT INTO clip_fts(clip_fts) VALUES ('rebuild')"])
        optimize_index(connection)


def _pg_terms_index(connection: Connection) -> list[str]:
    """[PG_TERMS_INDEX] once migration 0013 made it (a rebuild may run on an older schema)."""
    found = connection.execute(text("SELECT to_regclass(:name)"), {"name": PG_TERMS_INDEX})
    return [PG_TERMS_INDEX] if found.scalar_one() is not None else []


def optimize_index(connection: Connection) -> None:
    """After bulk writes: fresh planner statistics, and (SQLite) FTS5's segments merged.

    The search planner reads word frequencies from the statistics (PostgreSQL's pg_stats on
    the tsvector), so they must not lag a large import. On SQLite, reading a match costs a
    seek per FTS5 segment, and a million inserts leave many behind.
    """
    if connection.dialect.name == "sqlite":
        _run(connection, ["INSERT INTO clip_fts(clip_fts) VALUES ('optimize')", "ANALYZE"])
    else:
        # Only the columns search planning reads: with their statistics target of 1,000,
        # ANALYZE samples 300,000 rows, and computing every wide text column's statistics
        # over them took 7 s at 1M clips (these two: ~2.5 s). Autovacuum does the rest.
        # Outside the service's statement timeout: at millions of clips on a busy machine it
        # outlasted the 15 s and was cancelled after the import had stored everything.
        _run(
            connection,
            ["SET LOCAL statement_timeout = 0", "ANALYZE clip (search_vector, broadcaster_id)"],
        )


@dataclass(frozen=True)
class Terms:
    """What a search box string means: lowercased terms, the last one maybe a prefix."""

    words: tuple[str, ...]
    last_is_prefix: bool

    def __bool__(self) -> bool:
        return bool(self.words)

    def tsquery(self) -> str:
        parts = list(self.words)
        if self.last_is_prefix:
            parts[-1] += ":*"
        return " & ".join(parts)

    def pg_index_query(self) -> tuple[str, str | None]:
        """The terms for the index of `clip_search_terms`: (the `to_tsquery` text of the words,
        or "" when there are none; the trailing prefix's own entry as a tsquery literal, or
        None when there is no prefix or it is longer than PREFIX_INDEXED and stays `p:*`)."""
        if self.last_is_prefix and len(self.words[-1]) <= PREFIX_INDEXED:
            # Letters and digits only (parse_terms): nothing in it to escape.
            return " & ".join(self.words[:-1]), f"'{self.words[-1]} *'"
        return self.tsquery(), None

    def spec(self) -> str:
        """A compact form for `row_matches`: words with a trailing * for a prefix."""
        return " ".join(self.words) + ("*" if self.last_is_prefix else "")

    def fts5_match(self) -> str:
        parts = [f'"{w}"' for w in self.words]
        if self.last_is_prefix:
            parts[-1] += "*"
        return " ".join(parts)


NO_TERMS = Terms((), False)


def parse_terms(query: str) -> Terms:
    """Split a typed query into search terms (letters and digits only, so nothing to escape)."""
    words: list[str] = []
    for token in _TOKEN.findall(query.lower()):
        if token not in words:
            words.append(token)
    words = words[:MAX_TERMS]
    # A trailing separator ("pog ") means the last word is finished: no prefix match.
    typed_on = bool(words) and not query[-1:].isspace()
    return Terms(tuple(words), typed_on and len(words[-1]) >= MIN_PREFIX)


def tokens(value: str) -> list[str]:
    """The words of a text the way both indexes split it: runs of letters and digits."""
    return _TOKEN.findall(value.lower())


@lru_cache(maxsize=256)
def _spec(spec: str) -> Terms:
    words = spec.split(" ")
    prefix = words[-1].endswith("*")
    if prefix:
        words[-1] = words[-1][:-1]
    return Terms(tuple(words), prefix)


def row_matches(spec: str, title: str | None, creator: str | None, channel: str | None) -> int:
    """Does a clip's text match `Terms.spec()`? Registered in SQLite as cw_match().

    Walking a sort index, a check in Python (~3 µs) beats probing FTS5 for the row, and by
    far for a prefix (FTS5 expands a prefix longer than its prefix indexes on every probe).
    """
    terms = _spec(spec)
    words = set(tokens(title or "")) | set(tokens(creator or "")) | set(tokens(channel or ""))
    exact = terms.words[:-1] if terms.last_is_prefix else terms.words
    if not all(w in words for w in exact):
        return 0
    if terms.last_is_prefix:
        last = terms.words[-1]
        return int(any(w.startswith(last) for w in words))
    return 1
