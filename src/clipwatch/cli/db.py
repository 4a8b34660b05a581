"""`clipwatch db upgrade|reindex`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from clipwatch.cli.common import run, settings_or_exit
from clipwatch.config import Settings
from clipwatch.db.engine import create_engine
from clipwatch.db.migrate import reindex_database, upgrade_database

app = typer.Typer(help="Database schema and search index.", no_args_is_help=True)


async def _on_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[None]]) -> None:
    engine = create_engine(settings)
    try:
        await work(engine)
    finally:
        await engine.dispose()


@app.command("upgrade")
def upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    settings = settings_or_exit()
    run(_on_engine(settings, upgrade_database))
    typer.echo("database is up to date")


@app.command("reindex")
def reindex() -> None:
    """Rebuild the full-text search index from the stored clips."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    settings = settings_or_exit()
    with Progress(
        SpinnerColumn(), TextColumn("rebuilding search index"), TimeElapsedColumn(), transient=True
    ) as progress:
        progress.add_task("reindex", total=None)
        run(_on_engine(settings, reindex_database))
    typer.echo("search index rebuilt")
