"""Exports (GET /api/v1/clips/export) against a raw `COPY … TO STDOUT` of the same rows.

python -m bench export [--clips 100000] [--database-url URL] [--format csv|jsonl] [--tagged N]

On PostgreSQL (an archive of its own, or `--database-url` of one already imported): the
whole archive exported newest first through a real `clipwatch serve` over HTTP, read as it
streams, against `COPY (the same columns, the same order) TO STDOUT WITH CSV` through asyncpg
in the same run. Prints rows/s of each and the ratio (target ≥ 0.5), and the server's
resident memory before the export and at its peak during it (sampled every 50 ms; target:
growth < 50 MB at 1M clips, `--clips 1000000`). `--tagged N` puts two community tags on N
random clips first (the export's `tags` column then costs a sub-select per row, in both).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncpg
import httpx

from bench.common import create_database, dataset, drop_database, served
from bench.search import import_path, vacuum_analyze
from clipwatch.accounts import service
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope

# The export's rows, columns and order, for `COPY (…) TO STDOUT WITH CSV`.
RAW_QUERY = (
    "SELECT c.id, c.url, c.title, c.broadcaster_name, c.creator_name, g.name, "
    "c.view_count, c.duration, c.created_at, c.vod_offset, "
    "(SELECT string_agg(t.name, ' ' ORDER BY t.name) FROM clip_tag ct JOIN tag t "
    "ON t.id = ct.tag_id WHERE ct.clip_seq = c.seq AND t.scope = 0) FROM clip c "
    "LEFT JOIN game g ON g.id = c.game_id WHERE c.deleted_at IS NULL "
    "ORDER BY c.created_at DESC, c.seq DESC"
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def token_for(url: str) -> str:
    engine = create_engine(load_settings(database_url=url, secret_key="bench"))
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            user = await service.create_user(session, f"bench{time.monotonic_ns()}")
            _, token = await service.create_token(
                session, user, name="export", scopes=frozenset({"read"})
            )
        return token
    finally:
        await engine.dispose()


async def tag_clips(url: str, count: int) -> None:
    """Two community tags on `count` random clips (one of them on half of those)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(
            "INSERT INTO tag (scope, name, description, created_at, created_by) "
            "VALUES (0, 'bench-one', '', now(), 'bench'), (0, 'bench-two', '', now(), 'bench')"
        )
        for name, share in (("bench-one", 1), ("bench-two", 2)):
            await conn.execute(
                "INSERT INTO clip_tag (tag_id, clip_seq, clip_id, added_at, added_by) "
                "SELECT (SELECT id FROM tag WHERE scope = 0 AND name = $1), seq, id, now(), "
                "'bench' FROM clip ORDER BY random() LIMIT $2",
                name,
                count // share,
            )
        await conn.execute("ANALYZE clip_tag")
    finally:
        await conn.close()


async def raw_copy(url: str) -> tuple[int, float]:
    """Rows and seconds of the raw COPY, its output counted and dropped."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    lines = 0

    async def sink(chunk: bytes) -> None:
        nonlocal lines
        lines += chunk.count(b"\n")

    try:
        started = time.perf_counter()
        await conn.copy_from_query(RAW_QUERY, output=sink, format="csv")
        return lines, time.perf_counter() - started
    finally:
        await conn.close()


def http_export(base: str, token: str, fmt: str, pid: int) -> tuple[int, float, float]:
    """Rows, seconds and the server's peak RSS (MB) of one export read as it streams."""
    peak = rss_mb(pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):  # sampling interval
            peak = max(peak, rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = 0
    started = time.perf_counter()
    try:
        with httpx.stream(
            "GET",
            f"{base}/api/v1/clips/export",
            params={"format": fmt, "sort": "newest"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=600,
        ) as answer:
            answer.raise_for_status()
            for chunk in answer.iter_bytes():
                lines += chunk.count(b"\n")
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - started
    return lines - (1 if fmt == "csv" else 0), seconds, peak


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=100_000)
    parser.add_argument("--database-url", default="", help="An archive already imported")
    parser.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    parser.add_argument("--tagged", type=int, default=0, help="Clips given community tags")
    args = parser.parse_args(argv)
    # One bench client: the rate limit would measure its own waits (each 1,000 rows count).
    os.environ["CLIPWATCH_RATE_LIMIT_USER"] = "100000000/minute"
    os.environ["CLIPWATCH_RATE_LIMIT_TOKEN"] = "100000000/minute"
    name = ""
    url = args.database_url
    try:
        if not url:
            name, url = asyncio.run(create_database())
            seconds = asyncio.run(import_path(url, dataset(args.clips)))
            asyncio.run(vacuum_analyze(url))
            print(f"export: {args.clips:,} clips imported in {seconds:.0f} s")
        if args.tagged:
            asyncio.run(tag_clips(url, args.tagged))
            print(f"  {args.tagged:,} clips tagged")
        token = asyncio.run(token_for(url))
        raw_rows, raw_s = asyncio.run(raw_copy(url))  # warms the cache for both
        raw_rows, raw_s = asyncio.run(raw_copy(url))
        with tempfile.TemporaryDirectory() as workdir, served(url, Path(workdir)) as server:
            before = rss_mb(server.process.pid)
            rows, seconds, peak = http_export(server.base, token, args.format, server.process.pid)
        if rows != raw_rows:
            print(f"  export gave {rows:,} rows, COPY {raw_rows:,}: they must be the same")
            return 1
        ratio = (rows / seconds) / (raw_rows / raw_s)
        print(
            f"  raw COPY … TO STDOUT: {raw_rows:,} rows in {raw_s:.2f} s "
            f"({raw_rows / raw_s:,.0f} rows/s)"
        )
        print(
            f"  export ({args.format}, HTTP): {rows:,} rows in {seconds:.2f} s "
            f"({rows / seconds:,.0f} rows/s): ratio {ratio:.2f} (target ≥ 0.5)"
        )
        print(
            f"  server RSS: {before:.0f} MB before, {peak:.0f} MB at the peak: "
            f"+{peak - before:.0f} MB (target < 50)"
        )
        return 0
    finally:
        if name:
            asyncio.run(drop_database(name))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
