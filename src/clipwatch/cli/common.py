"""What every command shares: settings, one-line errors, an engine for the command's life.

Nothing heavy is imported at module level, here or in any command module: `clipwatch --help`
must not pay for SQLAlchemy, Alembic or the API (#11). Each command imports what it uses.
"""

from __future__ import annotations

import gc
import logging
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine

    from rich.console import Console
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

    from clipwatch.cache.manager import CacheManager
    from clipwatch.config import Settings

T = TypeVar("T")
PIPED_WIDTH = 1000


@dataclass
class GlobalOptions:
    """The options given before the command (`clipwatch --verbose --database URL …`)."""

    verbose: bool = False
    database: str | None = None


options = GlobalOptions()


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def fail(message: str) -> NoReturn:
    err_console().print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def print_table(renderable: object) -> None:
    """A Rich table (or group) on stdout; as wide as it needs when stdout is no terminal (a
    pipe, a file: COLUMNS is not asked there), so no cell is cut for a script or a grep."""
    from rich.console import Console

    Console(width=None if sys.stdout.isatty() else PIPED_WIDTH).print(renderable)


def note(message: str) -> None:
    """One line on stderr that is not an error (stdout stays the command's answer)."""
    err_console().print(f"[yellow]note:[/yellow] {message}", highlight=False, soft_wrap=True)


def settings_or_exit(*, writes: bool = False, **overrides: Any) -> Settings:
    """The settings, `--database` applied; without Twitch credentials and without a database
    of the operator's own, the demo database (never a real archive mixed with demo data).
    `writes`: the command changes data, so it says so when that is the demo database."""
    from clipwatch.config import DEMO_DATABASE_URL, load_settings
    from clipwatch.errors import ClipwatchError

    if options.database is not None and "database_url" not in overrides:
        overrides["database_url"] = options.database
    try:
        settings = load_settings(**overrides)
    except ClipwatchError as exc:
        fail(str(exc))
    if settings.demo_mode and not database_configured(settings):
        settings = settings.model_copy(update={"database_url": DEMO_DATABASE_URL})
    if writes and settings.database_url == DEMO_DATABASE_URL:
        note(demo_write_notice(settings))
    return settings


def database_configured(settings: Settings) -> bool:
    """The operator named a database: CLIPWATCH_DATABASE_URL (environment or .env) or
    `--database`."""
    return "database_url" in settings.model_fields_set


def demo_write_notice(settings: Settings) -> str:
    from clipwatch.config import DEMO_DATABASE_PATH

    why = "CLIPWATCH_DEMO is set" if settings.demo else "no Twitch credentials are set"
    return (
        f"writing to the demo database ({DEMO_DATABASE_PATH}: {why}), "
        "which `clipwatch serve` wipes at every start; --database URL or "
        "CLIPWATCH_DATABASE_URL points elsewhere"
    )


def configure_cli_logging(settings: Settings) -> None:
    """Structured logs as `serve` writes them; other libraries' lines below warnings (Alembic's
    "Running upgrade", httpx's requests, uvicorn's start-up) only with `--verbose`."""
    from clipwatch.monitoring.logging import configure_logging, settings_secrets

    configure_logging(
        settings.log_level,
        settings.log_format,
        settings.log_file,
        max_bytes=settings.log_file_max_mb * 2**20,
        backups=settings.log_file_backups,
        secrets=settings_secrets(settings),
    )
    if not options.verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_own_lines)


def _own_lines(record: logging.LogRecord) -> bool:
    # clipwatch.access: the request log, which `serve --access-log` asks for by itself.
    own = record.name.startswith("clipwatch")
    return own or record.levelno >= logging.WARNING


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def started() -> None:
    """Startup is over (`clipwatch.cli.main` turned the collector off for it): what it made
    is kept out of later collections (gc.freeze), which are on again. Idempotent; called
    where a command's work begins."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; known failures become one line and exit code 1."""
    import asyncio

    started()

    from sqlalchemy.exc import SQLAlchemyError

    from clipwatch.errors import ClipwatchError

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
) -> AsyncIterator[tuple[AsyncEngine, CacheManager | None]]:
    """An engine whose commits reach every process's cache through Redis when configured;
    `follow`: this process also learns of the others' writes (a long-running worker). A
    short command without Redis gets no cache: its own would tell no other process (they
    learn of its writes within the staleness bound, docs/cache.md), and importing one costs
    a tenth of a second."""
    from clipwatch.db.engine import attach_cache, create_engine

    engine = create_engine(settings)
    cache = None
    if settings.redis_url or follow:
        from clipwatch.cache.manager import cache_from_settings

        cache = cache_from_settings(settings)
        attach_cache(engine, cache)
    try:
        if follow and cache is not None:
            await cache.start()
        yield engine, cache
    finally:
        if cache is not None:
            await cache.close()
        await engine.dispose()


async def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """A command's work in one transaction, on a migrated database."""
    from clipwatch.db.engine import create_sessionmaker, session_scope
    from clipwatch.db.migrate import upgrade_database

    async with open_engine(settings) as (engine, _cache):
        await upgrade_database(engine)
        async with session_scope(create_sessionmaker(engine)) as session:
            return await work(session)


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


__all__ = [
    "configure_cli_logging",
    "database_configured",
    "err_console",
    "fail",
    "in_transaction",
    "note",
    "open_engine",
    "options",
    "print_table",
    "run",
    "settings_or_exit",
]
