"""Exports (issue 17): the clips a `/clips` search finds, as CSV or JSON Lines, streamed.

The rows come from the same keyset walk as `/clips` pages (clips/search.py), one page of
`PAGE` clips at a time, each read in a short transaction of its own: memory stays constant
whatever the size, no transaction is held open while a slow client reads, and the walk sees
the clips stored when it began, each once. After every `BLOCK` rows `charge` is awaited
(the API counts a block as one request against the caller's rate limit and waits there while
the limit is spent).
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.clips.search import ClipPage, ClipSearch, export_filters, search_clips
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Clip
from clipwatch.db.repositories import clip_export
from clipwatch.db.repositories.clip_search import ClipFilters, KeysetSort
from clipwatch.waiting import cancel_and_wait

Format = Literal["csv", "jsonl"]
PAGE = 500
BLOCK = 1_000
COLUMNS = (
    "id",
    "url",
    "title",
    "channel",
    "creator",
    "game",
    "views",
    "duration",
    "created_at",
    "vod_offset",
    "tags",
)
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
}


def row_of(clip: Clip, game_name: str | None, tags: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": clip.id,
        "url": clip.url,
        "title": clip.title,
        "channel": clip.broadcaster_name,
        "creator": clip.creator_name,
        "game": game_name,
        "views": clip.view_count,
        "duration": clip.duration,
        "created_at": clip.created_at.isoformat(timespec="microseconds"),
        "vod_offset": clip.vod_offset,
        "tags": " ".join(tags or ()),
    }


def _csv_safe(value: Any) -> Any:
    """A cell a spreadsheet would run as a formula (=, +, -, @ first) is quoted as text;
    numbers as PostgreSQL's COPY writes them (30.0 is 30), so both paths give one text."""
    if isinstance(value, str) and value[:1] in clip_export.FORMULA_STARTS:
        return "'" + value
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return "" if value is None else value


def encode(rows: list[dict[str, Any]], fmt: Format, *, header: bool) -> bytes:
    if fmt == "jsonl":
        return b"".join(orjson.dumps(r) + b"\n" for r in rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([_csv_safe(r[c]) for c in COLUMNS])
    return out.getvalue().encode()


async def first_page(
    session: AsyncSession, search: ClipSearch, *, key: bytes, relevance_candidates: int
) -> ClipPage:
    """The walk's first page: read before the answer starts, so a bad cursor or filter is a
    4xx, not a broken download."""
    return await search_clips(
        session,
        replace(search, limit=PAGE, cursor=None),
        key=key,
        relevance_candidates=relevance_candidates,
    )


async def stream(
    sessionmaker: async_sessionmaker[AsyncSession],
    search: ClipSearch,
    first: ClipPage,
    fmt: Format,
    *,
    key: bytes,
    relevance_candidates: int,
    max_rows: int | None,
    charge: Callable[[], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """The export's bytes: the header (CSV), then every row the walk finds, up to `max_rows`."""
    page, sent, header = first, 0, fmt == "csv"
    if header and not page.clips:
        yield encode([], fmt, header=True)
    while page.clips:
        rows = [
            row_of(c, page.game_names.get(c.game_id or ""), page.tags.get(c.seq))
            for c in page.clips
        ]
        if max_rows is not None:
            rows = rows[: max_rows - sent]
        blocks_before = sent // BLOCK
        sent += len(rows)
        yield encode(rows, fmt, header=header)
        header = False
        for _ in range(sent // BLOCK - blocks_before):
            await charge()
        if page.next_cursor is None or (max_rows is not None and sent >= max_rows):
            return
        async with session_scope(sessionmaker) as session:
            page = await search_clips(
                session,
                replace(search, limit=PAGE, cursor=page.next_cursor),
                key=key,
                relevance_candidates=relevance_candidates,
            )


async def copy_stream(
    sessionmaker: async_sessionmaker[AsyncSession],
    filters: ClipFilters | None,
    sort: KeysetSort,
    *,
    max_rows: int | None,
    charge: Callable[[], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """CSV on PostgreSQL: the header, then `COPY (…) TO STDOUT` as it comes (one statement,
    one snapshot; a bounded queue between PostgreSQL and the client holds the server back
    while the client reads). Each BLOCK lines charge once."""
    yield encode([], "csv", header=True)
    if filters is None:
        return
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)

    async def put(chunk: bytes) -> None:  # asyncpg hands out a bytearray
        await queue.put(bytes(chunk))

    async def produce() -> None:
        async with session_scope(sessionmaker) as session:
            await clip_export.copy_csv(session, filters, sort, put, limit=max_rows)
        await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        lines = charged = 0
        while (chunk := await _next(queue, task)) is not None:
            yield chunk
            lines += chunk.count(b"\n")
            while lines // BLOCK > charged:
                charged += 1
                await charge()
        await task  # its failure, if any, ends the download
    finally:
        if not task.done():
            await cancel_and_wait(task)


async def _next(queue: asyncio.Queue[bytes | None], task: asyncio.Task[None]) -> bytes | None:
    """The next chunk; None at the end. A producer that failed before its end marker ends
    the stream with its error instead of leaving the reader waiting."""
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    task.result()  # raises what stopped the producer
    return None if queue.empty() else queue.get_nowait()


async def export_body(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    search: ClipSearch,
    fmt: Format,
    *,
    dialect: str,
    key: bytes,
    relevance_candidates: int,
    max_rows: int | None,
    charge: Callable[[], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """The export's bytes, the way that fits: PostgreSQL's COPY for CSV in a keyset order,
    else the walk's pages. What is read here (the first page, the names resolved) comes
    before the answer begins, so a bad query is an error, never a broken download."""
    if fmt == "csv" and dialect == "postgresql":
        resolved, sort = await export_filters(session, search)
        if sort != "relevance":
            return copy_stream(sessionmaker, resolved, sort, max_rows=max_rows, charge=charge)
    first = await first_page(session, search, key=key, relevance_candidates=relevance_candidates)
    return stream(
        sessionmaker,
        search,
        first,
        fmt,
        key=key,
        relevance_candidates=relevance_candidates,
        max_rows=max_rows,
        charge=charge,
    )
