"""Request dependencies: settings, and one transaction scope per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.accounts.ratelimit import RateLimiter
from clipwatch.accounts.service import SessionPolicy
from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.runtime.worker import WorkerStats
from clipwatch.twitch.client import HelixClient


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    limiter: RateLimiter
    session_policy: SessionPolicy
    twitch: HelixClient | None = None  # None without Twitch credentials
    worker: WorkerStats | None = None  # the worker in this process (`serve`), if any
    demo_sink: str | None = None  # demo mode: where the simulated Discord's messages are read
    cache: CacheManager = field(default_factory=CacheManager)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.clipwatch
    return state


async def get_session(
    state: Annotated[AppState, Depends(get_state)],
) -> AsyncIterator[AsyncSession]:
    async with session_scope(state.sessionmaker) as session:
        yield session


State = Annotated[AppState, Depends(get_state)]
# The transaction commits when the handler returns, before the answer leaves: a client never
# reads a 2xx for a write that is not yet committed (or that then fails to commit).
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
