"""`clipwatch clips import FILE`, `clipwatch clips export [FILE]`, `clipwatch clips hide|unhide`."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, Literal

import typer

from clipwatch.cli.common import err_console, fail, open_engine, run, settings_or_exit

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.progress import Progress, TaskID
    from sqlalchemy.ext.asyncio import AsyncSession

    from clipwatch.clips.importer import ImportReport
    from clipwatch.clips.search import ClipSearch
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


async def _export(
    settings: Settings,
    search: ClipSearch,
    fmt: Literal["csv", "jsonl"],
    max_rows: int | None,
    out: BinaryIO,
) -> int:
    """Write the export to `out` as the API streams it (the same paths); the rows written."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from clipwatch.clips import export
    from clipwatch.db.engine import create_sessionmaker, session_scope

    async def free() -> None:  # the CLI is the operator's: no rate limit
        return None

    rows = 0
    async with open_engine(settings) as (engine, _cache):
        sessionmaker = create_sessionmaker(engine)
        async with session_scope(sessionmaker) as session:
            body = await export.export_body(
                session,
                sessionmaker,
                search,
                fmt,
                dialect=engine.dialect.name,
                key=settings.signing_key,
                relevance_candidates=settings.search_relevance_candidates,
                max_rows=max_rows,
                charge=free,
            )
        with Progress(
            SpinnerColumn(),
            TextColumn("exporting"),
            TextColumn("{task.completed:,.0f} rows"),
            TimeElapsedColumn(),
            console=err_console(),
        ) as progress:
            task = progress.add_task("export", total=None)
            async for chunk in body:
                out.write(chunk)
                lines = chunk.count(b"\n")
                rows += lines
                progress.advance(task, lines)
    return rows - (1 if fmt == "csv" else 0)


@app.command("export")
def export_(
    file: Annotated[str, typer.Argument(help="Where to write; - for stdout")] = "-",
    fmt: Annotated[str, typer.Option("--format", help="csv (a header row) or jsonl")] = "csv",
    q: Annotated[str | None, typer.Option(help="Words in the title, channel or creator")] = None,
    channel: Annotated[
        list[str] | None, typer.Option(help="Channel id or login; repeatable")
    ] = None,
    game: Annotated[list[str] | None, typer.Option(help="Game id or name; repeatable")] = None,
    min_views: Annotated[int | None, typer.Option(min=0)] = None,
    sort: Annotated[str | None, typer.Option(help="relevance, newest, oldest or views")] = None,
    max_rows: Annotated[int | None, typer.Option(min=1, help="Stop after this many")] = None,
) -> None:
    """Export the clips a search finds, every one, as CSV or JSON Lines (as GET
    /api/v1/clips/export: the same columns and order)."""
    from clipwatch.clips.search import ClipSearch

    if fmt not in ("csv", "jsonl"):
        fail(f"--format must be csv or jsonl, not {fmt!r}")
    if sort not in (None, "relevance", "newest", "oldest", "views"):
        fail(f"--sort must be relevance, newest, oldest or views, not {sort!r}")
    search = ClipSearch(
        q=q,
        broadcaster=tuple(channel or ()),
        game=tuple(game or ()),
        min_views=min_views,
        sort=sort,  # type: ignore[arg-type]
    )
    settings = settings_or_exit()
    kind: Literal["csv", "jsonl"] = "csv" if fmt == "csv" else "jsonl"
    if file == "-":
        rows = run(_export(settings, search, kind, max_rows, sys.stdout.buffer))
    else:
        try:
            with Path(file).open("wb") as out:
                rows = run(_export(settings, search, kind, max_rows, out))
        except OSError as exc:
            fail(f"{file}: {exc.strerror or exc}")
    err_console().print(f"{rows:,} clips exported", highlight=False)


@app.command("hide")
def hide(
    clip_id: Annotated[str, typer.Argument(help="The Twitch clip id")],
    reason: Annotated[str, typer.Option(help="Why (one line, up to 500 characters)")],
) -> None:
    """Hide a clip from every public answer (it stays in the archive); audited."""
    from clipwatch.accounts.service import operator
    from clipwatch.cli.common import in_transaction
    from clipwatch.clips import moderation

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> str:
        done = await moderation.hide(session, operator("cli"), clip_id, reason)
        if not done.changed:
            return f"clip {clip_id} was hidden already ({done.row.reason})"
        return (
            f"clip {clip_id} hidden; {done.cancelled} pending Discord messages cancelled, "
            f"{done.changes} posted ones to change"
        )

    typer.echo(run(in_transaction(settings, work)))


@app.command("unhide")
def unhide(clip_id: Annotated[str, typer.Argument(help="The Twitch clip id")]) -> None:
    """Show a hidden clip again; audited."""
    from clipwatch.accounts.service import operator
    from clipwatch.cli.common import in_transaction
    from clipwatch.clips import moderation

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> str:
        if await moderation.unhide(session, operator("cli"), clip_id):
            return f"clip {clip_id} is shown again"
        return f"clip {clip_id} was not hidden"

    typer.echo(run(in_transaction(settings, work)))
