"""Build a big PostgreSQL archive for the search benchmark (10M clips), and measure the import
at that size.

python -m bench archive --clips 10000000 [--name clipwatch_bench_10m] [--import-sample 200000]

Building 10M clips through the import path takes hours on a small machine (index upkeep bounds
it: ~1,700 clips/s at 2M). The archive's *contents* are what the search benchmark needs, so this
builds them the way a bulk load would: the migrated schema, the clip table's secondary indexes
dropped, the synthetic clips (`World.clips`, in chunks of 250,000 by start index) COPYed
straight into `clip` by two processes, then the indexes built again and the table analyzed.
The rows, the generated text column and the indexes are the ones an import makes.

Then the import figure, at that size: `--import-sample` new clips through `clipwatch clips
import`'s path, against a raw asyncpg COPY+merge (bench/search.py's baseline) of as many other
new clips of the same distribution, into the same database, one after the other (ratio; target
≥ 0.6). The disk per million clips is printed, and the database is left in place for
`python -m bench search --database-url URL --backend postgresql`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench.common import DATA, POSTGRES_ADMIN_URL, SEED
from bench.search import COLUMNS, import_path, migrated, raw_load, vacuum_analyze
from clipwatch.twitch.synthetic import World

CHUNK = 250_000
COPY_BATCH = 10_000


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _row(clip: dict[str, Any]) -> tuple[Any, ...]:
    clip["created_at"] = datetime.fromisoformat(clip["created_at"])
    clip["video_id"] = clip["video_id"] or None
    clip["game_id"] = clip["game_id"] or None
    return tuple(clip[c] for c in COLUMNS)


async def _load_chunks(url: str, starts: list[int]) -> int:
    """COPY the chunks of CHUNK clips starting at `starts` into clip (indexes dropped)."""
    world = World(seed=SEED)
    conn = await asyncpg.connect(_plain(url))
    loaded = 0
    try:
        for start in starts:
            batch: list[tuple[Any, ...]] = []
            for clip in world.clips(CHUNK, start_index=start):
                batch.append(_row(clip))
                if len(batch) == COPY_BATCH:
                    await conn.copy_records_to_table("clip", records=batch, columns=COLUMNS)
                    loaded += len(batch)
                    batch = []
            if batch:
                await conn.copy_records_to_table("clip", records=batch, columns=COLUMNS)
                loaded += len(batch)
            print(f"    chunk at {start:,} loaded", flush=True)
    finally:
        await conn.close()
    return loaded


def _load_process(url: str, starts: list[int]) -> int:
    return asyncio.run(_load_chunks(url, starts))


async def _create(name: str) -> str:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


async def _drop_indexes(url: str) -> tuple[list[str], list[str]]:
    """Drop clip's secondary indexes and unique constraints: (CREATE INDEX …, ADD …) to redo."""
    conn = await asyncpg.connect(_plain(url))
    try:
        constraints = await conn.fetch(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
            "WHERE conrelid = 'clip'::regclass AND contype = 'u'"
        )
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'clip' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'clip'::regclass)"
        )
        for c in constraints:
            await conn.execute(f'ALTER TABLE clip DROP CONSTRAINT "{c["conname"]}"')
        for i in indexes:
            await conn.execute(f'DROP INDEX "{i["indexname"]}"')
        # Every channel and game the world names, once (the loaders write clips only).
        world = World(seed=SEED)
        await conn.executemany(
            "INSERT INTO channel (id, display_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(c.id, c.display_name) for c in world.channels],
        )
        await conn.executemany(
            "INSERT INTO game (id) VALUES ($1) ON CONFLICT DO NOTHING",
            [(g.id,) for g in world.games],
        )
    finally:
        await conn.close()
    return (
        [i["indexdef"] for i in indexes],
        [f'ALTER TABLE clip ADD CONSTRAINT "{c["conname"]}" {c["def"]}' for c in constraints],
    )


async def _rebuild(url: str, statements: list[str]) -> None:
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 2")
        await conn.execute("SET statement_timeout = 0")
        for statement in statements:
            started = time.perf_counter()
            await conn.execute(statement)
            print(f"    {time.perf_counter() - started:6.0f} s  {statement[:90]}", flush=True)
    finally:
        await conn.close()


async def disk(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(_plain(url))
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS clips, pg_total_relation_size('clip') AS total, "
            "pg_relation_size('clip') AS heap, pg_indexes_size('clip') AS indexes FROM clip"
        )
        return dict(row)
    finally:
        await conn.close()


def _sample_file(start: int, count: int) -> Path:
    """New clips of the same distribution, numbered past the archive: a JSON Lines file."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"clips-{SEED}-{count}-at-{start}.jsonl"
    if not path.exists():
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            for clip in World(seed=SEED).clips(count, start_index=start):
                out.write(orjson.dumps(clip) + b"\n")
        partial.rename(path)
    return path


def build(url: str, clips: int) -> None:
    started = time.perf_counter()
    asyncio.run(migrated(url))
    indexes, constraints = asyncio.run(_drop_indexes(url))
    starts = list(range(0, clips, CHUNK))
    halves = [starts[0::2], starts[1::2]]
    print(f"  loading {clips:,} clips by COPY in two processes…", flush=True)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        loaded = sum(pool.starmap(_load_process, [(url, half) for half in halves if half]))
    print(f"  loaded {loaded:,} in {time.perf_counter() - started:.0f} s; building indexes…")
    asyncio.run(_rebuild(url, constraints + indexes))
    asyncio.run(vacuum_analyze(url))
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)


def measure_import(url: str, at: int, sample: int) -> tuple[float, float]:
    """(import clips/s, raw COPY+merge rows/s) for `sample` new clips each, at this size."""
    ours = _sample_file(at, sample)
    theirs = _sample_file(at + sample, sample)
    raw_seconds = asyncio.run(raw_load(url, theirs))
    import_seconds = asyncio.run(import_path(url, ours))
    return sample / import_seconds, sample / raw_seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench archive",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=10_000_000)
    parser.add_argument("--name", default="clipwatch_bench_10m")
    parser.add_argument("--import-sample", type=int, default=200_000)
    parser.add_argument("--skip-build", action="store_true", help="the archive exists already")
    args = parser.parse_args(argv)
    if args.clips % CHUNK:
        parser.error(f"--clips must be a multiple of {CHUNK:,}")
    if args.skip_build:
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        url = f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{args.name}"
    else:
        url = asyncio.run(_create(args.name))
        build(url, args.clips)
    before = asyncio.run(disk(url))
    millions = before["clips"] / 1e6
    print(
        f"\n=== archive {args.name}: {before['clips']:,} clips ===\n"
        f"disk per million clips: {before['total'] / millions / 1e9:.2f} GB "
        f"(heap {before['heap'] / millions / 1e9:.2f}, indexes "
        f"{before['indexes'] / millions / 1e9:.2f}); total {before['total'] / 1e9:.1f} GB"
    )
    if args.import_sample:
        ours, raw = measure_import(url, before["clips"], args.import_sample)
        print(
            f"import at {before['clips']:,} clips, {args.import_sample:,} new clips each: "
            f"clipwatch {ours:,.0f} clips/s; raw asyncpg COPY+merge {raw:,.0f} rows/s; "
            f"ratio {ours / raw:.2f} (target ≥ 0.60)"
        )
        asyncio.run(vacuum_analyze(url))
    print(f"\nserve it: python -m bench search --backend postgresql --database-url {url}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
