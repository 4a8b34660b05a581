"""The stream's filter (clips/stream_filter.py, tested on one clip in Python) picks exactly the
clips GET /clips's search (SQL, per dialect) answers, for any mix of the /clips filters: live
events and Last-Event-ID replays mean what the same query means on /clips."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from clipwatch.clips.search import ClipSearch, search_clips
from clipwatch.clips.stream_filter import resolve_filter
from clipwatch.config import Settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from clipwatch.db.models import Clip
from clipwatch.db.repositories import catalog
from clipwatch.db.repositories.sync_state import mark_deleted
from tests.conftest import empty_tables
from tests.factories import helix_clip, store_clips

VOCAB = ["pog", "poggers", "clutch", "fail", "win", "lul"]
CREATORS = {"5001": "Someone", "5002": "Other Person"}
GAMES = {"33214": "Fortnite", "509658": "Just Chatting", "77": None}

clip_fields = st.fixed_dictionaries(
    {
        "title": st.lists(st.sampled_from(VOCAB), min_size=1, max_size=4).map(" ".join),
        "view_count": st.integers(0, 3),
        "day": st.integers(1, 4),
        "channel": st.sampled_from(["1", "2", "3"]),
        "game": st.sampled_from([*GAMES, ""]),
        "creator": st.sampled_from(list(CREATORS)),
        "language": st.sampled_from(["en", "es", "pt-br"]),
        "duration": st.sampled_from([5.0, 30.5, 60.0]),
        "featured": st.booleans(),
        "deleted": st.booleans(),
    }
)
# Each filter's values; a query sets a few of them (all at once would match nothing).
FILTERS: dict[str, st.SearchStrategy[Any]] = {
    "q": st.sampled_from(["pog", "pogg", "clutch", "pog fail", "win ", "lul clu", "!!"]),
    "broadcaster": st.sampled_from([("1",), ("2", "chan3"), ("nobody",)]),
    "game": st.sampled_from([("fortnite",), ("509658", "77"), ("Unknown Game",)]),
    "creators": st.sampled_from([("someone",), ("5002",), ("other person", "5001")]),
    "languages": st.sampled_from([("en",), ("pt-br",)]),
    "min_views": st.integers(0, 3),
    "max_views": st.integers(0, 3),
    "min_duration": st.sampled_from([5.0, 30.5]),
    "max_duration": st.sampled_from([30.5, 59.0]),
    "featured": st.booleans(),
    "created_after": st.sampled_from([datetime(2025, 1, d, tzinfo=UTC) for d in (2, 3)]),
    "created_before": st.sampled_from([datetime(2025, 1, d, tzinfo=UTC) for d in (2, 4)]),
    "include_deleted": st.booleans(),
    "follow_channels": st.sampled_from([("1",), ("chan2", "3")]),
    "follow_games": st.sampled_from([("Just Chatting",), ("fortnite", "77")]),
}


@st.composite
def queries(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.sets(st.sampled_from(sorted(FILTERS)), max_size=3))
    return {name: draw(FILTERS[name]) for name in names}


def to_helix(n: int, fields: dict[str, Any]) -> dict[str, Any]:
    return helix_clip(
        id=f"P{n:03d}",
        title=fields["title"],
        view_count=fields["view_count"],
        created_at=f"2025-01-0{fields['day']}T00:00:00Z",
        broadcaster_id=fields["channel"],
        broadcaster_name=f"Chan{fields['channel']}",
        game_id=fields["game"],
        creator_id=fields["creator"],
        creator_name=CREATORS[fields["creator"]],
        language=fields["language"],
        duration=fields["duration"],
        is_featured=fields["featured"],
    )


async def compare(
    app_settings: Settings, rows: list[dict[str, Any]], query: dict[str, Any]
) -> None:
    engine = create_engine(app_settings)
    try:
        await empty_tables(engine)
        sessionmaker = create_sessionmaker(engine)
        clips = [to_helix(n, fields) for n, fields in enumerate(rows)]
        if clips:
            await store_clips(sessionmaker, clips)
        async with session_scope(sessionmaker) as session:
            await catalog.ensure_games(session, {g for g in GAMES})
            for game_id, name in GAMES.items():
                if name:
                    await session.execute(
                        text("UPDATE game SET name = :n WHERE id = :i"), {"n": name, "i": game_id}
                    )
            deleted = [c["id"] for c, f in zip(clips, rows, strict=True) if f["deleted"]]
            await mark_deleted(session, deleted, datetime.now(UTC))
        search = ClipSearch(**query, sort="oldest", limit=100)
        if (search.min_views or 0) > (search.max_views if search.max_views is not None else 9):
            return  # bounds that exclude each other are a 422 before any search
        async with session_scope(sessionmaker) as session:
            page = await search_clips(session, search, key=b"k", relevance_candidates=100)
            expected = {c.id for c in page.clips}
            stream_filter = await resolve_filter(session, search)
            stored = (await session.scalars(select(Clip))).all()
            names = await catalog.game_names(session, {c.game_id for c in stored if c.game_id})
            picked = {c.id for c in stored if stream_filter.matches(c, names.get(c.game_id or ""))}
        assert picked == expected, query
    finally:
        await engine.dispose()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(clip_fields, max_size=25), query=queries())
def test_the_stream_filter_picks_what_clips_answers(
    settings: Settings, rows: list[dict[str, Any]], query: dict[str, Any]
) -> None:
    asyncio.run(compare(settings, rows, query))
