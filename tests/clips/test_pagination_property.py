"""Walking next_cursor yields exactly the ordered result as of the first page.

The expectation is computed here, independently: match the words, filter, sort by the key
with insertion order as the tie-breaker (relevance: the `candidates` most viewed matches by
score, then the rest by views). Clips inserted between page requests must not appear in
the walk (a walk is a snapshot of the clips stored when it began).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.api.app import create_app
from clipwatch.clips.relevance import relevance_score
from clipwatch.config import Settings
from clipwatch.db.engine import create_engine, create_sessionmaker
from clipwatch.db.search import parse_terms
from tests.conftest import empty_tables
from tests.factories import helix_clip, store_clips

VOCAB = ["pog", "poggers", "clutch", "fail", "win", "lul"]
QUERIES = [None, "pog", "pogg", "clutch", "pog fail", "win ", "lul clu", "nothing"]
WORD = re.compile(r"[^\W_]+")

clip_fields = st.fixed_dictionaries(
    {
        "title": st.lists(st.sampled_from(VOCAB), min_size=1, max_size=4).map(" ".join),
        "view_count": st.integers(0, 3),
        "day": st.integers(1, 4),
        "channel": st.sampled_from(["1", "2"]),
        "duration": st.sampled_from([5.0, 30.5, 60.0]),
        "creator": st.sampled_from(["5001", "5002"]),
    }
)
CREATOR_NAMES = {"5001": "Someone", "5002": "Other Person"}
queries = st.fixed_dictionaries(
    {
        "q": st.sampled_from(QUERIES),
        "broadcaster": st.sampled_from([None, "1", "2"]),
        "min_views": st.sampled_from([None, 0, 2]),
        "max_views": st.sampled_from([None, 2, 3]),
        "min_duration": st.sampled_from([None, 30.5]),
        "max_duration": st.sampled_from([None, 30.5, 59]),
        "creator": st.sampled_from([None, ["someone"], ["5002"], ["other person", "5001"]]),
        "sort": st.sampled_from([None, "views", "newest", "oldest", "relevance"]),
        "limit": st.integers(1, 7),
    }
)


def to_helix(fields: dict[str, Any]) -> dict[str, Any]:
    return helix_clip(
        title=fields["title"],
        view_count=fields["view_count"],
        created_at=f"2025-01-0{fields['day']}T00:00:00Z",
        broadcaster_id=fields["channel"],
        broadcaster_name=f"Chan{fields['channel']}",
        duration=fields.get("duration", 30.0),
        creator_id=fields.get("creator", "5001"),
        creator_name=CREATOR_NAMES[fields.get("creator", "5001")],
    )


def matches(q: str, clip: dict[str, Any]) -> bool:
    words = list(dict.fromkeys(WORD.findall(q.lower())))
    tokens = set(
        WORD.findall(f"{clip['title']} {clip['creator_name']} {clip['broadcaster_name']}".lower())
    )
    if not words:
        return False
    *exact, last = words
    if not all(w in tokens for w in exact):
        return False
    if q[-1:].isspace() or len(last) < 2:
        return last in tokens
    return any(t.startswith(last) for t in tokens)


def creator_matches(keys: list[str] | None, clip: dict[str, Any]) -> bool:
    if keys is None:
        return True
    return any(k in (clip["creator_id"], clip["creator_name"].lower()) for k in keys)


def in_range(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def expected_ids(clips: list[dict[str, Any]], query: dict[str, Any], candidates: int) -> list[str]:
    """Clips in insertion order; the answer the API must give, computed without it."""
    q = query["q"]
    rows = [
        (seq, c)
        for seq, c in enumerate(clips)
        if (q is None or matches(q, c))
        and (query["broadcaster"] is None or c["broadcaster_id"] == query["broadcaster"])
        and in_range(c["view_count"], query["min_views"], query["max_views"])
        and in_range(c["duration"], query["min_duration"], query["max_duration"])
        and creator_matches(query["creator"], c)
    ]
    sort = query["sort"] or ("relevance" if q else "newest")
    if sort == "relevance" and not q:
        sort = "views"
    if sort == "relevance":
        terms = parse_terms(q)

        def key(item: tuple[int, dict[str, Any]]) -> tuple[Any, ...]:
            seq, c = item
            score = relevance_score(
                terms,
                title=c["title"],
                creator_name=c["creator_name"],
                broadcaster_name=c["broadcaster_name"],
                view_count=c["view_count"],
            )
            return (score, seq)

        rows.sort(key=lambda item: (item[1]["view_count"], item[0]), reverse=True)
        rows = sorted(rows[:candidates], key=key, reverse=True) + rows[candidates:]
    elif sort == "views":
        rows.sort(key=lambda item: (item[1]["view_count"], item[0]), reverse=True)
    elif sort == "newest":
        rows.sort(key=lambda item: (item[1]["created_at"], item[0]), reverse=True)
    else:
        rows.sort(key=lambda item: (item[1]["created_at"], item[0]))
    return [c["id"] for _, c in rows]


async def walk(
    app_settings: Settings,
    clips: list[dict[str, Any]],
    query: dict[str, Any],
    between_pages: Callable[[async_sessionmaker[AsyncSession], int], Awaitable[None]],
) -> list[str]:
    engine = create_engine(app_settings)
    await empty_tables(engine)
    sessionmaker = create_sessionmaker(engine)
    if clips:
        await store_clips(sessionmaker, clips)
    app = create_app(app_settings)
    seen: list[str] = []
    params = {k: v for k, v in query.items() if v is not None}
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for page_number in range(200):
                    answer = await client.get("/api/v1/clips", params=params)
                    assert answer.status_code == 200, answer.text
                    body = answer.json()
                    seen += [c["id"] for c in body["data"]]
                    assert len(body["data"]) <= query["limit"]
                    if not body["next_cursor"]:
                        break
                    params["cursor"] = body["next_cursor"]
                    await between_pages(sessionmaker, page_number)
    finally:
        await engine.dispose()
    return seen


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    initial=st.lists(clip_fields, max_size=30),
    query=queries,
    later=st.lists(st.lists(clip_fields, min_size=1, max_size=3), max_size=4),
    # A narrow window (below the setting's floor of 20) so that small walks cross it.
    candidates=st.sampled_from([1, 3, 5000]),
)
def test_cursor_walk_is_the_full_ordered_snapshot(
    settings: Settings,
    initial: list[dict[str, Any]],
    query: dict[str, Any],
    later: list[list[dict[str, Any]]],
    candidates: int,
) -> None:
    app_settings = settings.model_copy(update={"search_relevance_candidates": candidates})
    clips = [to_helix(f) for f in initial]
    inserted: list[str] = []

    async def insert(sessionmaker: async_sessionmaker[AsyncSession], page: int) -> None:
        if page < len(later):
            batch = [to_helix(f) for f in later[page]]
            inserted.extend(c["id"] for c in batch)
            await store_clips(sessionmaker, batch)

    seen = asyncio.run(walk(app_settings, clips, query, insert))
    assert seen == expected_ids(clips, query, candidates)
    assert not set(seen) & set(inserted)


def test_inserts_between_pages_do_not_shift_a_walk(settings: Settings) -> None:
    clips = [
        to_helix({"title": "pog", "view_count": 1, "day": 2, "channel": "1"}) for _ in range(5)
    ]
    query = {"q": "pog", "sort": "views", "limit": 2}
    newcomers: list[str] = []

    async def insert_top_clip(sessionmaker: async_sessionmaker[AsyncSession], _page: int) -> None:
        clip = to_helix({"title": "pog", "view_count": 0, "day": 4, "channel": "1"})
        newcomers.append(clip["id"])
        await store_clips(sessionmaker, [clip])

    seen = asyncio.run(walk(settings, clips, query, insert_top_clip))
    # Equal views: newest inserted first; the fewer-viewed newcomers sort after the cursor
    # and still never appear.
    assert seen == [c["id"] for c in reversed(clips)]
    assert len(newcomers) == 2
