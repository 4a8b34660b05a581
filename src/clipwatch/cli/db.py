"""`clipwatch db upgrade|reindex|backup|restore`."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from clipwatch.cli.common import err_console, fail, run, settings_or_exit, stderr_is_terminal

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from sqlalchemy.ext.asyncio import AsyncEngine

    from clipwatch.config import Settings

T = TypeVar("T")
app = typer.Typer(help="Database schema, search index, backups.", no_args_is_help=True)


async def _on_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[None]]) -> None:
    from clipwatch.db.engine import create_engine

    engine = create_engine(settings)
    try:
        await work(engine)
    finally:
        await engine.dispose()


@app.command("upgrade")
def upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    from clipwatch.db.migrate import upgrade_database

    settings = settings_or_exit(writes=True)
    run(_on_engine(settings, upgrade_database))
    typer.echo("database is up to date")


@app.command("reindex")
def reindex() -> None:
    """Rebuild the full-text search index from the stored clips."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from clipwatch.db.migrate import reindex_database

    settings = settings_or_exit(writes=True)
    with Progress(
        SpinnerColumn(), TextColumn("rebuilding search index"), TimeElapsedColumn(), transient=True
    ) as progress:
        progress.add_task("reindex", total=None)
        run(_on_engine(settings, reindex_database))
    typer.echo("search index rebuilt")


# --- backup and restore (docs/operations.md) --------------------------------------------------

FileArgument = Annotated[Path, typer.Argument(metavar="FILE", help="The backup file")]


@app.command("backup")
def backup(
    file: FileArgument,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists")] = False,
) -> None:
    """Back the database up to FILE, while the service runs: SQLite through its online backup
    API (one consistent moment), PostgreSQL through pg_dump --format=custom."""
    from clipwatch.db import backup as backups

    settings = settings_or_exit()
    if settings.is_postgres:
        target = _guarded(lambda: backups.PgTarget.from_url(settings.database_url))
        command = backups.pg_dump_command(target, file)
        if not backups.tool_available("pg_dump"):
            _print_command_instead("pg_dump", target.shell(command))
        with _spinner("pg_dump"):
            size = _guarded(lambda: backups.backup_postgresql(target, file, force=force))
        typer.echo(f"backed up PostgreSQL database {target.database} to {file} ({_size(size)})")
        return
    database = _guarded(lambda: backups.sqlite_path(settings.database_url))
    with _page_progress("backing up") as progress:
        report = _guarded(
            lambda: backups.backup_sqlite(database, file, force=force, progress=progress)
        )
    typer.echo(f"backed up {database} to {file} ({report.pages} pages, {_size(report.bytes)})")


@app.command("restore")
def restore(file: FileArgument) -> None:
    """Replace the database by the backup in FILE, then migrate it to this version's schema.
    Every clipwatch process using the database must be stopped first (a worker that reported
    in the last 30 s is refused)."""
    from clipwatch.db import backup as backups
    from clipwatch.db.migrate import upgrade_database

    settings = settings_or_exit(writes=True)
    if settings.is_postgres:
        target = _guarded(lambda: backups.PgTarget.from_url(settings.database_url))
        if not backups.tool_available("pg_restore"):
            command = backups.pg_restore_command(target, file)
            _print_command_instead("pg_restore", target.shell(command))
        _refuse_while_running(settings)
        with _spinner("pg_restore"):
            revisions = _guarded(lambda: backups.restore_postgresql(target, file))
        where = f"PostgreSQL database {target.database}"
    else:
        database = _guarded(lambda: backups.sqlite_path(settings.database_url))
        if database.exists():
            _refuse_while_running(settings)
        with _page_progress("restoring") as progress:
            _report, revisions = _guarded(
                lambda: backups.restore_sqlite(file, database, progress=progress)
            )
        where = str(database)
    run(_on_engine(settings, upgrade_database))
    typer.echo(
        f"restored {file} (schema {', '.join(sorted(revisions))}) into {where}; "
        "migrated to this version's schema"
    )


def _refuse_while_running(settings: Settings) -> None:
    running = run(_live_workers(settings))
    if running:
        fail(
            f"clipwatch is running on this database (worker {running[0]}): stop every "
            "clipwatch process (serve and worker) before a restore; a killed one counts as "
            "running until its last report is 30 s old"
        )


async def _live_workers(settings: Settings) -> list[str]:
    """Workers whose heartbeat says they are alive (runtime/status.py's own test)."""
    from sqlalchemy.exc import DBAPIError

    from clipwatch.db.engine import create_engine, create_sessionmaker
    from clipwatch.runtime.status import worker_reports
    from clipwatch.runtime.supervisor import now

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            reports = await worker_reports(session)
    except DBAPIError:  # no worker_task table (or no database) yet: nothing runs on it
        return []
    finally:
        await engine.dispose()
    moment = now()
    return [
        f"{r.worker}, last report {(moment - r.heartbeat_at).total_seconds():.0f} s ago"
        for r in reports
        if r.alive
    ]


def _guarded(work: Callable[[], T]) -> T:
    """Known failures as one line: ours, SQLite's and the file system's."""
    import sqlite3

    from clipwatch.errors import ClipwatchError
    from clipwatch.monitoring.logging import describe_error

    try:
        return work()
    except ClipwatchError as exc:
        fail(str(exc))
    except (sqlite3.Error, OSError) as exc:
        fail(describe_error(exc))


def _print_command_instead(tool: str, command: str) -> NoReturn:
    typer.echo(command)
    fail(f"{tool} is not on PATH: install PostgreSQL's client tools, or run the command above")


@contextmanager
def _page_progress(what: str) -> Iterator[Callable[[int, int], None]]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    if not stderr_is_terminal():  # a script's log gets the result line only
        yield lambda _done, _total: None
        return
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("pages"))
    with Progress(*columns, TimeRemainingColumn(), console=err_console(), transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def _spinner(tool: str) -> Iterator[None]:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not stderr_is_terminal():
        yield
        return
    columns = (SpinnerColumn(), TextColumn(f"{tool} running"), TimeElapsedColumn())
    with Progress(*columns, console=err_console(), transient=True) as progress:
        progress.add_task(tool, total=None)
        yield


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB"
