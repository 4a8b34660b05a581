"""`clipwatch clips import FILE`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from clipwatch.cli.common import err_console, fail, open_engine, run, settings_or_exit
from clipwatch.clips.importer import ImportReport, import_clips
from clipwatch.config import Settings
from clipwatch.db.engine import create_sessionmaker
from clipwatch.db.migrate import upgrade_database

app = typer.Typer(help="The clip archive.", no_args_is_help=True)


def _counting_lines(stream: BinaryIO, progress: Progress, task: TaskID) -> Iterator[bytes]:
    for line in stream:
        progress.advance(task, len(line))
        yield line


async def _import(settings: Settings, stream: BinaryIO, size: int | None) -> ImportReport:
    async with open_engine(settings) as (engine, _cache):
        await upgrade_database(engine)
        sessionmaker = create_sessionmaker(engine)
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            TextColumn("{task.fields[clips]} clips"),
            TextColumn("{task.fields[bad]} bad lines"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        ) as progress:
            task = progress.add_task("import", total=size, clips=0, bad=0)

            def on_progress(report: ImportReport) -> None:
                progress.update(task, clips=report.stored, bad=report.bad_lines)

            lines = _counting_lines(stream, progress, task)
            return await import_clips(sessionmaker, lines, on_progress=on_progress)


@app.command("import")
def import_(
    file: Annotated[str, typer.Argument(help="JSON Lines of Helix clip objects, or - for stdin")],
) -> None:
    """Upsert clips from JSON Lines (one Get Clips `data` object per line)."""
    settings = settings_or_exit()
    if file == "-":
        report = run(_import(settings, sys.stdin.buffer, None))
    else:
        path = Path(file)
        if not path.is_file():
            fail(f"{file}: no such file")
        with path.open("rb") as stream:
            report = run(_import(settings, stream, path.stat().st_size))
    for number, message in report.errors:
        err_console.print(f"line {number}: {message}", highlight=False, soft_wrap=True)
    if report.bad_lines > len(report.errors):
        err_console.print(f"… and {report.bad_lines - len(report.errors)} more bad lines")
    typer.echo(
        f"{report.stored} clips stored ({report.inserted} new, {report.updated} updated, "
        f"{report.unchanged} unchanged), {report.bad_lines} bad lines"
    )
    if report.bad_lines:
        raise typer.Exit(code=1)
