"""How PostgreSQL text searches are planned: the price model, and that every plan is right."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from clipwatch.clips.search import ClipSearch, search_clips
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from clipwatch.db.repositories import clip_search, search_stats
from clipwatch.db.repositories.clip_search import PgPlan, choose_pg_plan
from clipwatch.db.search import parse_terms
from tests.conftest import TEST_SECRET, empty_tables
from tests.factories import helix_clip, store_clips

MILLION = 1_000_000


@pytest.mark.parametrize(
    ("freqs", "prefix", "share", "limit", "plan"),
    [
        ([0.35], True, 1.0, 21, "walk"),  # "pog": a page is a few dozen rows into the index
        ([0.00005], True, 1.0, 21, "gin"),  # a word in 50 clips: fetch them all
        ([0.001, 0.35], True, 1.0, 21, "split"),  # rare word, popular long trailing prefix
        ([0.009, 0.016], True, 1.0, 100, "gin"),  # two middling words, rare together
        ([0.35, 0.2], False, 1.0, 100, "walk"),  # two popular exact words
        ([0.0005], True, 0.001, 21, "walk"),  # a word in 500 clips, in a 1,000-clip channel
        ([0.0005, 0.0004], False, 1.0, 21, "gin"),  # exact words: no split to consider
    ],
)
def test_price_model_picks_the_cheap_plan(
    freqs: list[float], prefix: bool, share: float, limit: int, plan: PgPlan
) -> None:
    chosen = choose_pg_plan(
        freqs, last_is_prefix=prefix, rows=MILLION, walked_share=share, limit=limit
    )
    assert chosen == plan


@pytest.mark.parametrize(
    ("freqs", "plan"),
    [
        ([0.001, 0.35], "gin"),  # the rare word and the prefix's entry intersect in the index
        ([0.01, 0.05], "gin"),  # two middling terms, rare together
        ([0.35], "walk"),  # a popular prefix alone: still a few dozen rows into the sort
    ],
)
def test_a_prefix_with_entries_of_its_own_costs_what_a_word_costs(
    freqs: list[float], plan: PgPlan
) -> None:
    chosen = choose_pg_plan(
        freqs, last_is_prefix=True, rows=MILLION, walked_share=1.0, limit=21, prefix_indexed=True
    )
    assert chosen == plan


def test_split_plan_keeps_the_prefix_out_of_the_index_condition() -> None:
    """Both conditions name a tsquery; they must not share one parameter (the prefix would
    then go back into the GIN condition and cost a bitmap of every row it matches)."""
    terms = parse_terms("vearnero pog")
    conditions = clip_search.pg_match_conditions(terms, "split")
    compiled = [c.compile(dialect=postgresql.dialect()) for c in conditions]
    values = sorted(v for c in compiled for v in c.params.values())
    assert values == ["vearnero", "vearnero & pog:*"]
    assert "@@" in str(compiled[0])
    assert "ts_match_vq" in str(compiled[1])


@pytest.fixture
async def pg_engine(postgresql_url: str) -> AsyncIterator[AsyncEngine]:
    settings = load_settings(database_url=postgresql_url, secret_key=TEST_SECRET)
    engine = create_engine(settings)
    await empty_tables(engine, truncate=True)
    search_stats._cache.clear()
    yield engine
    search_stats._cache.clear()
    await engine.dispose()


async def test_statistics_come_from_analyze(pg_engine: AsyncEngine) -> None:
    sessionmaker = create_sessionmaker(pg_engine)
    clips = [
        helix_clip(
            title=f"pog moment {i}" if i % 2 else f"rare{i} moment",
            broadcaster_id="big" if i % 4 else "small",
            broadcaster_name="BigChannel" if i % 4 else "SmallChannel",
        )
        for i in range(400)
    ]
    await store_clips(sessionmaker, clips)
    async with pg_engine.begin() as conn:
        await conn.execute(text("ANALYZE clip"))
    async with session_scope(sessionmaker) as session:
        stats = await search_stats.search_stats(session)
    assert stats.exact("moment") == pytest.approx(1.0, abs=0.01)
    assert stats.exact("pog") == pytest.approx(0.5, abs=0.02)
    assert stats.prefix("po") >= stats.exact("pog")
    assert stats.exact("neverseen") < stats.floor
    assert stats.channel_share(("big",)) == pytest.approx(0.75, abs=0.02)
    assert stats.channel_share(("small",)) == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("plan", ["walk", "gin", "split"])
@pytest.mark.parametrize(
    ("sort", "q"),
    # A 3-character prefix (an entry of the index), a 2-character one, a 5-character one
    # (a partial match).
    [
        ("views", "clutch pog"),
        ("newest", "clutch pog"),
        ("views", "clutch po"),
        ("newest", "clutch pogch"),
    ],
)
async def test_every_plan_finds_the_same_page(
    pg_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, plan: PgPlan, sort: str, q: str
) -> None:
    sessionmaker = create_sessionmaker(pg_engine)
    titles = ["pog clutch", "pogchamp clutch", "clutch pog", "clutchy pogger", "pog", "clutch"]
    clips = [
        helix_clip(title=titles[i % len(titles)], view_count=(i * 37) % 101) for i in range(60)
    ]
    await store_clips(sessionmaker, clips)
    monkeypatch.setattr(clip_search, "choose_pg_plan", lambda *a, **k: plan)
    async with session_scope(sessionmaker) as session:
        page = await search_clips(
            session,
            ClipSearch(q=q, sort=sort, limit=100),  # type: ignore[arg-type]
            key=b"k" * 32,
            relevance_candidates=100,
        )

    # Expected from the titles alone: "clutch" exactly and any word starting with the prefix.
    prefix = q.split()[-1]

    def matches(title: str) -> bool:
        words = title.split()
        return "clutch" in words and any(w.startswith(prefix) for w in words)

    expected = [c for c in clips if matches(c["title"])]
    if sort == "views":
        expected.sort(key=lambda c: c["view_count"], reverse=True)
        assert [c.view_count for c in page.clips] == [c["view_count"] for c in expected]
    else:
        expected.sort(key=lambda c: c["created_at"], reverse=True)
        assert [c.id for c in page.clips] == [c["id"] for c in expected]
    assert {c.id for c in page.clips} == {c["id"] for c in expected}


async def test_every_run_of_a_prepared_search_is_planned_for_its_values(
    pg_engine: AsyncEngine,
) -> None:
    """asyncpg prepares each statement; PostgreSQL's generic plan (from a statement's 6th run)
    ignores the values, and for a views range over most clips it costs 20x the custom plan
    (bench/web.py). The engine's connections plan every run for its values."""
    async with pg_engine.connect() as connection:
        mode = (await connection.execute(text("SHOW plan_cache_mode"))).scalar_one()
        jit = (await connection.execute(text("SHOW jit"))).scalar_one()
    assert mode == "force_custom_plan"
    assert jit == "off"
