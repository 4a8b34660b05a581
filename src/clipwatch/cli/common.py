"""What every command shares: settings, one-line errors, an engine for the command's life."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from clipwatch.cache.manager import CacheManager, cache_from_settings
from clipwatch.config import DEMO_DATABASE_URL, Settings, load_settings
from clipwatch.db.engine import attach_cache, create_engine, create_sessionmaker, session_scope
from clipwatch.db.migrate import upgrade_database
from clipwatch.errors import ClipwatchError

T = TypeVar("T")
err_console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def settings_or_exit(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
    except ClipwatchError as exc:
        fail(str(exc))
    if settings.demo_mode and "database_url" not in overrides and _database_is_default(settings):
        # Demo data never mixes with a real archive.
        settings = settings.model_copy(update={"database_url": DEMO_DATABASE_URL})
    return settings


def _database_is_default(settings: Settings) -> bool:
    return "database_url" not in settings.model_fields_set


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; known failures become one line and exit code 1."""
    try:
        return asyncio.run(coro)
    except ClipwatchError as exc:
        fail(str(exc))
    except (SQLAlchemyError, OSError) as exc:
        fail(f"database: {_one_line(exc)}")
    except KeyboardInterrupt:
        fail("interrupted")


@asynccontextmanager
async def open_engine(
    settings: Settings, *, follow: bool = False
) -> AsyncIterator[tuple[AsyncEngine, CacheManager]]:
    """An engine whose commits reach every process's cache (through Redis when configured);
    `follow`: this process also learns of the others' writes (a long-running worker)."""
    engine = create_engine(settings)
    cache = cache_from_settings(settings)
    attach_cache(engine, cache)
    try:
        if follow:
            await cache.start()
        yield engine, cache
    finally:
        await cache.close()
        await engine.dispose()


async def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """A command's work in one transaction, on a migrated database."""
    async with open_engine(settings) as (engine, _cache):
        await upgrade_database(engine)
        async with session_scope(create_sessionmaker(engine)) as session:
            return await work(session)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


__all__ = ["err_console", "fail", "in_transaction", "open_engine", "run", "settings_or_exit"]
