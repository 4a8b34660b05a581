"""A write is committed before its answer leaves: a client that reads right after a 2xx sees
what it wrote, and a commit that fails can never follow a success answer."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.api.app import create_app
from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from tests.api.test_accounts import bearer, make_user


async def test_the_commit_comes_before_the_answer(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], cache: CacheManager
) -> None:
    _, token = await make_user(sessionmaker, "alice")
    app = create_app(settings, cache=cache)
    events: list[str] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def noting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                events.append("answer")
            await send(message)

        await app(scope, receive, noting)

    async with app.router.lifespan_context(app):
        engine = app.state.clipwatch.engine.sync_engine
        event.listen(engine, "commit", lambda _conn: events.append("commit"))
        transport = httpx.ASGITransport(app=recording)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            login = await http.post("/auth/token-login", headers=bearer(token))
            assert login.status_code == 200
            events.clear()
            jar = {"Cookie": f"cw_session={login.cookies['cw_session']}"}
            out = await http.post(
                "/auth/logout", headers={**jar, "X-CSRF-Token": login.json()["csrf_token"]}
            )
            assert out.status_code == 204
            assert events[-2:] == ["commit", "answer"], events
            assert (await http.get("/api/v1/me", headers=jar)).status_code == 401
