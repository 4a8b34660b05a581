"""The search index's prefix entries on PostgreSQL (migration 0013, db/search.py).

A trailing prefix of 2-4 characters is looked up as an entry of its own in the index of
`clip_search_terms(search_vector)`. That must find exactly the rows the partial match
`p:*` finds on the vector itself (the meaning it replaces), for any text the parser sees;
the planner must use that index for it (else the change only costs import speed); and an
upgrade interrupted while it built the index must build it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clipwatch.config import load_settings
from clipwatch.db import search
from clipwatch.db.engine import create_engine
from clipwatch.db.migrate import upgrade_database
from clipwatch.db.repositories.clip_search import pg_index_tsquery, pg_indexed_match
from clipwatch.db.search import Terms, parse_terms
from tests.conftest import TEST_SECRET, empty_tables
from tests.factories import helix_clip, store_clips

# Letters that share prefixes, case pairs, a letter whose lower case differs by locale rules,
# digits, and the separators the parser splits on or keeps inside a word (hyphen, apostrophe).
ALPHABET = "abAB1éÉßΩω"
SEPARATORS = [" ", "-", "'", ".", "_", "  ", "\t", "/"]

words = st.text(ALPHABET, min_size=1, max_size=7)
titles = st.lists(st.tuples(words, st.sampled_from(SEPARATORS)), min_size=0, max_size=6).map(
    lambda parts: "".join(w + sep for w, sep in parts)
)


@st.composite
def corpus_and_query(draw: st.DrawFn) -> tuple[list[str], str]:
    """Titles, and a query whose words and trailing prefix (2-6 characters) are mostly cut
    from the titles' own words, so that most queries match something."""
    corpus = draw(st.lists(titles, min_size=1, max_size=12))
    seen = [w for title in corpus for w in parse_terms(title + " ").words] or ["ab"]
    pick = st.one_of(st.sampled_from(seen), words)
    exact = draw(st.lists(pick, max_size=2))
    whole = draw(pick)
    prefix = whole[: draw(st.integers(2, 6))]
    return corpus, " ".join([*exact, prefix])


COMPARE = """
    SELECT
        coalesce(array_agg(i ORDER BY i) FILTER (WHERE clip_search_terms(v) @@ {indexed}), '{{}}'),
        coalesce(array_agg(i ORDER BY i) FILTER (
            WHERE v @@ to_tsquery('simple'::regconfig, :plain)), '{{}}')
    FROM unnest(CAST(:titles AS text[])) WITH ORDINALITY AS t(title, i),
         LATERAL to_tsvector('simple'::regconfig, title) AS v
"""


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture
async def pg_engine(postgresql_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(load_settings(database_url=postgresql_url, secret_key=TEST_SECRET))
    await empty_tables(engine, truncate=True)
    yield engine
    await engine.dispose()


def test_a_short_prefix_is_an_entry_and_a_long_one_stays_partial() -> None:
    assert parse_terms("boss rag").pg_index_query() == ("boss", "'rag *'")
    assert parse_terms("rage").pg_index_query() == ("", "'rage *'")
    assert parse_terms("boss rageq").pg_index_query() == ("boss & rageq:*", None)
    assert parse_terms("boss rag ").pg_index_query() == ("boss & rag", None)  # no prefix


def test_the_prefix_entries_find_what_the_partial_match_finds(postgresql_url: str) -> None:
    """Hypothesis over titles and queries, compared in PostgreSQL: the index's form of the
    query on clip_search_terms(v) against `words & p:*` on v."""
    with asyncio.Runner() as runner:
        conn: asyncpg.Connection = runner.run(asyncpg.connect(_asyncpg_url(postgresql_url)))
        try:

            @settings(
                max_examples=150,
                deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture],
            )
            @given(corpus_and_query())
            def check(drawn: tuple[list[str], str]) -> None:
                corpus, query = drawn
                terms = parse_terms(query)
                if not terms.last_is_prefix:
                    return
                indexed, params = pg_index_tsquery(terms, "q")
                sql, args = _positional(COMPARE.format(indexed=indexed), params, corpus, terms)
                found, expected = runner.run(conn.fetchrow(sql, *args))
                assert list(found) == list(expected), (corpus, query)
                if expected:
                    matched.append(1)

            matched: list[int] = []
            check()
            assert len(matched) > 30  # many examples matched something: the test looks
        finally:
            runner.run(conn.close())


def _positional(
    sql: str, params: dict[str, str], corpus: list[str], terms: Terms
) -> tuple[str, list[object]]:
    """`:name` parameters to asyncpg's $n."""
    values: dict[str, object] = {**params, "plain": terms.tsquery(), "titles": corpus}
    args: list[object] = []
    for name in sorted(values, key=len, reverse=True):  # q_prefix before q
        if f":{name}" in sql:
            args.append(values[name])
            sql = sql.replace(f":{name}", f"${len(args)}")
    return sql, args


async def test_a_short_prefix_search_reads_the_prefix_index(pg_engine: AsyncEngine) -> None:
    from clipwatch.db.engine import create_sessionmaker

    await store_clips(
        create_sessionmaker(pg_engine),
        [helix_clip(title=f"boss rage {n}") for n in range(20)],
    )
    condition = pg_indexed_match(parse_terms("boss rag"), "q")
    compiled = condition.compile(compile_kwargs={"literal_binds": True})
    async with pg_engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(
            (await conn.execute(text(f"EXPLAIN SELECT seq FROM clip WHERE {compiled}"))).scalars()
        )
        found = (await conn.execute(text(f"SELECT count(*) FROM clip WHERE {compiled}"))).scalar()
    assert search.PG_TERMS_INDEX in plan, plan
    assert found == 20


async def test_an_interrupted_index_build_is_built_again(pg_engine: AsyncEngine) -> None:
    """A CREATE INDEX CONCURRENTLY cut short leaves an INVALID index; the upgrade that runs
    again must not take it for done (IF NOT EXISTS alone would)."""
    async with pg_engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0012'"))
        await conn.execute(
            text("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(:n)"),
            {"n": search.PG_TERMS_INDEX},
        )
    await upgrade_database(pg_engine)
    async with pg_engine.connect() as conn:
        valid = await conn.execute(
            text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:n)"),
            {"n": search.PG_TERMS_INDEX},
        )
        version = await conn.execute(text("SELECT version_num FROM alembic_version"))
        assert valid.scalar_one() is True
        assert version.scalar_one() == "0013"
