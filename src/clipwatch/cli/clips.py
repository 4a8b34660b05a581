"""`clipwatch clips import FILE`."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from clipwatch.cli.common import err_console, fail, open_engine, run, settings_or_exit

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.progress import Progress, TaskID

    from clipwatch.clips.importer import ImportReport
    from clipwatch.config import Settings

app = typer.Typer(help="The clip archive.", no_args_is_help=True)


def _counting_lines(stream: BinaryIO, progress: Progress, task: TaskID) -> Iterator[bytes]:
    for line in stream:
        progress.advance(task, len(line))
        yield line


async def _import(settings: Settings, stream: BinaryIO, size: int | None) -> ImportReport:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from clipwatch.clips.importer import import_clips
    from clipwatch.db.engine import create_sessionmaker
    from clipwatch.db.migrate import upgrade_database

    async with open_engine(settings) as (engine, _cache):
        await upgrade_database(engine)
        sessionmaker = create_sessionmaker(engine)
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            TextColumn("{task.fields[clips]} clips"),
            TextColumn("{task.fields[bad]} bad lines"),
            TimeRemainingColumn(),
            console=err_console(),
            transient=False,
        ) as progress:
            task = progress.add_task("import", total=size, clips=0, bad=0)

            def on_progress(report: ImportReport) -> None:
                progress.update(task, clips=report.stored, bad=report.bad_lines)

            lines = _counting_lines(stream, progress, task)
            return await import_clips(sessionmaker, lines, on_progress=on_progress)


def _readable(file: str) -> int | None:
    """The file's size when it is a regular file, None for a pipe or a device (read as a
    stream, like stdin); one line and exit 1 when it cannot be read at all."""
    try:
        mode = Path(file).stat().st_mode
    except FileNotFoundError:
        fail(f"{file}: no such file")
    except OSError as exc:
        fail(f"{file}: {exc.strerror or exc}")
    if stat.S_ISDIR(mode):
        fail(f"{file}: is a directory, not a file")
    return Path(file).stat().st_size if stat.S_ISREG(mode) else None


def _import_from(name: str, settings: Settings, stream: BinaryIO, size: int | None) -> ImportReport:
    if not _peek(stream):  # before the database is opened (or created)
        fail(f"{name}: empty input, no clips to import")
    return run(_import(settings, stream, size))


def _peek(stream: BinaryIO) -> bytes:
    peek = getattr(stream, "peek", None)
    return peek(1) if peek is not None else b"?"  # unknown: the import will tell


@app.command("import")
def import_(
    file: Annotated[str, typer.Argument(help="JSON Lines of Helix clip objects, or - for stdin")],
) -> None:
    """Upsert clips from JSON Lines (one Get Clips `data` object per line)."""
    settings = settings_or_exit(writes=True)
    if file == "-":
        report = _import_from("stdin", settings, sys.stdin.buffer, None)
    else:
        size = _readable(file)
        name = file if size is not None else f"{file} (not a regular file, read as a stream)"
        try:
            with Path(file).open("rb") as stream:
                report = _import_from(name, settings, stream, size)
        except OSError as exc:
            fail(f"{file}: {exc.strerror or exc}")
    console = err_console()
    for number, message in report.errors:
        console.print(f"line {number}: {message}", highlight=False, soft_wrap=True)
    if report.bad_lines > len(report.errors):
        console.print(f"… and {report.bad_lines - len(report.errors)} more bad lines")
    typer.echo(
        f"{report.stored} clips stored ({report.inserted} new, {report.updated} updated, "
        f"{report.unchanged} unchanged), {report.bad_lines} bad lines"
    )
    if report.bad_lines:
        raise typer.Exit(code=1)
