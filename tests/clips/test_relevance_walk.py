"""sort=relevance walks every match: the most viewed ranked by relevance, then the rest by views.

The candidate window is the setting `search_relevance_candidates` (100 by default); these
data sets have several hundred matches, so a walk crosses it.
"""

from __future__ import annotations

import random
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from clipwatch.db.models import Clip
from clipwatch.db.repositories.clip_search import ClipFilters, _page_query
from clipwatch.db.search import parse_terms
from tests.conftest import app_client
from tests.factories import helix_clip, store_clips

MATCHING_TITLES = [
    "clutch",
    "insane clutch play",
    "clutchy moment",
    "the clutch of the year clutch",
    "what a play",  # matches through the creator's name below
]


def archive(matching: int, other: int, seed: int) -> list[dict[str, Any]]:
    """`matching` clips that match "clutch" (title, prefix or creator) and `other` that
    do not; few distinct view counts, so many ties cross every page and window boundary."""
    rng = random.Random(seed)
    clips = []
    for i in range(matching):
        title = rng.choice(MATCHING_TITLES)
        creator = "ClutchKing" if title == "what a play" else "Someone"
        clips.append(
            helix_clip(title=f"{title} {i}", creator_name=creator, view_count=rng.randint(0, 40))
        )
    clips += [
        helix_clip(title=f"just chatting {i}", view_count=rng.randint(0, 40)) for i in range(other)
    ]
    rng.shuffle(clips)
    return clips


async def walk(
    client: httpx.AsyncClient, limits: list[int], between_pages: Any = None, **params: Any
) -> list[str]:
    """Every id of a cursor walk; the page size changes page by page (a cursor allows it)."""
    seen: list[str] = []
    params = dict(params)
    for page in range(1000):
        params["limit"] = limits[page % len(limits)]
        answer = await client.get("/api/v1/clips", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["data"]) <= params["limit"]
        seen += [clip["id"] for clip in body["data"]]
        if not body["next_cursor"]:
            return seen
        params["cursor"] = body["next_cursor"]
        if between_pages is not None:
            await between_pages(page)
    raise AssertionError("the walk did not end")


async def test_relevance_walk_returns_exactly_what_views_returns(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    window = settings.search_relevance_candidates
    await store_clips(sessionmaker, archive(matching=340, other=60, seed=11))
    by_views = await walk(client, [100], q="clutch", sort="views")
    assert len(by_views) == 340 > window
    by_relevance = await walk(client, [7, 23, 1, 100, 13], q="clutch", sort="relevance")
    assert len(by_relevance) == len(set(by_relevance)) == 340
    assert set(by_relevance) == set(by_views)
    # The window: the most viewed matches, ranked; then the rest in views order.
    assert set(by_relevance[:window]) == set(by_views[:window])
    assert by_relevance[:window] != by_views[:window]  # ranked, not merely by views
    assert by_relevance[window:] == by_views[window:]
    # The default sort with words is relevance, and it walks the same way.
    assert await walk(client, [50], q="clutch") == await walk(
        client, [50], q="clutch", sort="relevance"
    )


async def test_relevance_walk_with_few_matches_has_no_second_part(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await store_clips(sessionmaker, archive(matching=30, other=10, seed=3))
    by_relevance = await walk(client, [4], q="clutch", sort="relevance")
    assert sorted(by_relevance) == sorted(await walk(client, [100], q="clutch", sort="views"))
    assert len(by_relevance) == 30


async def test_views_growing_mid_walk_never_repeat_a_clip(
    settings: Settings,
    cache: CacheManager,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Clips that overtake the window after the first page: the window still holds every
    clip it held (its boundary travels in the cursor), no clip comes twice, the walk ends."""
    window = 20
    clips = [helix_clip(title=f"clutch {i}", view_count=i) for i in range(90)]
    await store_clips(sessionmaker, clips)
    # 30 of the least viewed overtake everyone: more than a window's read (window + 1).
    risers = [c["id"] for c in clips[:30]]

    async def raise_views(page: int) -> None:
        if page == 0:
            async with sessionmaker() as session, session.begin():
                await session.execute(
                    update(Clip)
                    .where(Clip.id.in_(risers))
                    .values(view_count=Clip.view_count + 1000)
                )

    narrow = settings.model_copy(update={"search_relevance_candidates": window})
    async with app_client(narrow, cache=cache) as client:
        seen = await walk(client, [5], raise_views, q="clutch", sort="relevance")
    assert len(seen) == len(set(seen))
    steady = [c["id"] for c in clips[30:]]
    assert set(steady) <= set(seen)


async def test_a_deep_page_keeps_the_gin_plan(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """Past the window a relevance walk reads `sort=views` pages after a (views, seq) key.
    PostgreSQL estimates such a row comparison at a row or two: visible to the sort index,
    it scanned the index's whole range below the key (400 ms at 1M clips for a word in 200
    clips) instead of the GIN plan the price model chose. The bound must stay hidden."""
    if not settings.database_url.startswith("postgresql"):
        return  # SQLite's plans are chosen by count, and name their index
    await store_clips(sessionmaker, archive(matching=40, other=10, seed=5))
    filters = ClipFilters(terms=parse_terms("clutch"), max_seq=10**9)
    async with sessionmaker() as session:
        stmt = await _page_query(session, filters, "views", (0, 10**9), 21)
        sql = str(stmt.compile(dialect=session.bind.dialect))
    assert "@@ to_tsquery" in sql  # the GIN plan (an unknown word counts as rare)
    assert "(coalesce(clip.view_count, clip.view_count), coalesce(clip.seq, clip.seq)) <" in sql
