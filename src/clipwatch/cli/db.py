"""`clipwatch db upgrade|reindex`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from clipwatch.cli.common import run, settings_or_exit

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncEngine

    from clipwatch.config import Settings

app = typer.Typer(help="Database schema and search index.", no_args_is_help=True)


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
