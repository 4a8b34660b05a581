"""Handlers marked `reads_only` read without a transaction of their own on PostgreSQL: no
BEGIN and COMMIT round trips around an uncached search (docs/search.md, "Uncached
throughput"). Every other handler keeps its transaction, and SQLite keeps them all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection

import httpx
import pytest
from fastapi import FastAPI, Request, routing
from fastapi.responses import PlainTextResponse
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.api.app import create_app
from clipwatch.api.deps import Session, is_reads_only, reads_only
from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from clipwatch.db.engine import touch
from clipwatch.db.models import Game

# The hot reads an anonymous visitor makes: each must be marked.
MARKED = {
    ("/api/v1/clips", "list_clips"),
    ("/api/v1/clips/{clip_id}", "get_clip"),
    ("/api/v1/channels", "list_channels"),
    ("/api/v1/channels/{login}", "get_channel"),
    ("/api/v1/games", "list_games"),
    ("/", "search_page"),
    ("/clips/{clip_id}", "clip_page"),
    ("/channels/{login}", "channel_page"),
}


class Failed(Exception):
    pass


def with_probes(app: FastAPI) -> None:
    """Two GET handlers alike but for the mark: each tells whether its statement ran in a
    transaction begun before it, then adds a game and fails when asked to."""

    async def probe(session: AsyncSession, game: str | None) -> dict[str, bool]:
        began = text(TRANSACTION_START[session.bind.dialect.name])
        first = (await session.execute(began)).scalar()
        second = (await session.execute(began)).scalar()
        if game is not None:
            session.add(Game(id=game, name=game))
            await session.flush()
            touch(session, "catalog")
            raise Failed(game)
        return {"one_transaction": first == second}

    @app.get("/probe/reading")
    @reads_only
    async def reading(session: Session, game: str | None = None) -> dict[str, bool]:
        return await probe(session, game)

    @app.get("/probe/writing")
    async def writing(session: Session, game: str | None = None) -> dict[str, bool]:
        return await probe(session, game)

    @app.exception_handler(Failed)
    async def failed(_request: Request, _exc: Failed) -> PlainTextResponse:
        return PlainTextResponse("failed", status_code=409)


# When the statement's transaction began: two statements in one transaction read the same,
# two in autocommit (each its own transaction) different ones, round trips apart.
TRANSACTION_START = {
    "postgresql": "SELECT transaction_timestamp()",
    "sqlite": "SELECT 1",  # not observable this way; the writes of the next test tell
}


@pytest.fixture
async def http(settings: Settings, cache: CacheManager) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, cache=cache)
    with_probes(app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_only_marked_reads_skip_the_transaction_on_postgresql(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    postgresql = engine.dialect.name == "postgresql"
    for _ in range(3):  # on fresh and on reused pooled connections
        reading = await http.get("/probe/reading")
        writing = await http.get("/probe/writing")
        assert reading.status_code == writing.status_code == 200
        assert reading.json() == {"one_transaction": not postgresql}
        assert writing.json() == {"one_transaction": True}


async def test_a_write_in_a_reading_session_commits_by_itself_on_postgresql_only(
    http: httpx.AsyncClient,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    cache: CacheManager,
) -> None:
    bumped: list[Collection[str]] = []
    cache.add_listener(bumped.append)
    assert (await http.get("/probe/writing", params={"game": "w"})).status_code == 409
    assert (await http.get("/probe/reading", params={"game": "r"})).status_code == 409
    async with sessionmaker() as session:
        kept = set((await session.execute(select(Game.id))).scalars())
    # A failing handler's transaction rolls back; a reading session on PostgreSQL had none.
    assert kept == ({"r"} if engine.dialect.name == "postgresql" else set())
    assert bumped == []  # neither ended its scope cleanly: no bump


async def test_a_reading_session_bumps_the_cache_it_shares_with_the_engine(
    settings: Settings, cache: CacheManager, engine: AsyncEngine
) -> None:
    app = create_app(settings, cache=cache)

    @app.get("/probe/touch")
    @reads_only
    async def touching(session: Session) -> dict[str, bool]:
        touch(session, "catalog")
        return {"ok": True}

    bumped: list[Collection[str]] = []
    async with app.router.lifespan_context(app):
        cache.add_listener(bumped.append)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.get("/probe/touch")).status_code == 200
    assert [set(changed) for changed in bumped] == [{"catalog"}]


def test_the_hot_reads_are_marked(settings: Settings) -> None:
    app = create_app(settings)
    routes = {
        (str(context.path_format), context.original_route.endpoint.__name__): context.original_route
        for context in routing.iter_route_contexts(app.routes)
        if isinstance(context.original_route, routing.APIRoute)
    }
    missing = MARKED - routes.keys()
    assert not missing, missing
    unmarked = [key for key in MARKED if not is_reads_only(routes[key].endpoint)]
    assert not unmarked, unmarked
    writers = [
        key
        for key, route in routes.items()
        if is_reads_only(route.endpoint) and route.methods != {"GET"}
    ]
    assert not writers, writers
