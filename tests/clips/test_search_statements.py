"""An uncached search costs as few statements as it can: each one is a round trip and, through
SQLAlchemy and asyncpg, most of a search's CPU (docs/search.md, "Uncached throughput").

A first page reads the newest seq (the walk's bound, carried by its cursor) with its rows, and
every clip's game name with it; neither takes a statement of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.api.clip_filters import clip_read
from clipwatch.clips.search import ClipSearch, search_clips
from clipwatch.config import Settings
from clipwatch.db.models import Clip, ClipTag, Game, Tag
from clipwatch.db.repositories import search_stats
from clipwatch.db.repositories import tags as tag_repo
from tests.factories import helix_clip, store_clips

# Statements of a first page with words, once the word statistics are cached. PostgreSQL:
# the candidates (relevance) or the page, then the page's full rows (relevance). SQLite
# also counts the matches (its plan) and reads the newest seq to weigh that count.
FIRST_PAGE = {
    "postgresql": {"relevance": 2, "views": 1, "newest": 1},
    "sqlite": {"relevance": 4, "views": 3, "newest": 3},
}


@pytest.mark.parametrize("sort", ["relevance", "views", "newest"])
async def test_a_first_page_is_few_statements_and_names_its_games(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    sort: Any,
) -> None:
    clips = [
        helix_clip(title=f"clutch {i}", view_count=i, game_id="33214" if i % 2 else "")
        for i in range(30)
    ]
    await store_clips(sessionmaker, clips)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Game).where(Game.id == "33214").values(name="Fortnite"))
    if engine.dialect.name == "postgresql":  # an analyzed archive: its size is known
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE clip"))

    async def page(cursor: str | None = None) -> Any:
        async with sessionmaker() as session, session.begin():
            search = ClipSearch(q="clutch", sort=sort, limit=7, cursor=cursor)
            return await search_clips(
                session,
                search,
                key=settings.signing_key,
                relevance_candidates=settings.search_relevance_candidates,
                vocabulary=[],  # the API holds the tag vocabulary in its cache
            )

    search_stats._cache.clear()  # another test's statistics (the table is emptied between)
    await page()  # the word statistics and the table's size, cached per process
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        first = await page()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        search_stats._cache.clear()
    assert len(statements) == FIRST_PAGE[engine.dialect.name][sort], statements
    assert len(first.clips) == 7
    assert first.next_cursor
    assert {c.game_id: first.game_names.get(c.game_id) for c in first.clips if c.game_id} == {
        "33214": "Fortnite"
    }
    # The bound read with the rows travels in the cursor: the walk goes on, each clip once.
    seen = [c.id for c in first.clips]
    cursor = first.next_cursor
    while cursor:
        later = await page(cursor)
        seen += [c.id for c in later.clips]
        cursor = later.next_cursor
    assert sorted(seen) == sorted(c["id"] for c in clips)


async def test_one_clip_is_one_statement_with_its_game_and_tags(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """GET /clips/{id} and the clip page (api/clip_filters.py `clip_read`): the clip, its
    game's name and its community tags in one statement (it was three)."""
    await store_clips(sessionmaker, [helix_clip(id="OneStatement", game_id="33214")])
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Game).where(Game.id == "33214").values(name="Fortnite"))
        now = datetime.now(UTC)
        tag = Tag(scope=tag_repo.COMMUNITY, name="clutch", created_at=now, created_by="test")
        session.add(tag)
        await session.flush()
        seq = (await session.execute(select(Clip.seq).where(Clip.id == "OneStatement"))).scalar()
        session.add(
            ClipTag(tag_id=tag.id, clip_seq=seq, clip_id="OneStatement", added_at=now, added_by="t")
        )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with sessionmaker() as session, session.begin():
            read = await clip_read(session, "OneStatement")
            missing = await clip_read(session, "NoSuchClip")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) == 2, statements  # one each
    assert read is not None
    assert missing is None
    assert (read.game_name, read.tags) == ("Fortnite", ["clutch"])
