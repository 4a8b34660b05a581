"""Import rate, search latency and API throughput at a million clips, on both databases.

python -m bench.search [--clips N] [--backend both|postgresql|sqlite] [--queries 500]

Figures, each against a baseline from the same run:
- import through `clipwatch clips import`'s path vs a raw asyncpg COPY-into-temp-and-merge
  of the same rows into the same schema (ratio; target ≥ 0.6 and ≥ 10,000 clips/s);
- search latency p50/p95/p99 through the HTTP API, 500 Zipf-drawn 1-2 word queries per sort,
  with and without a channel filter (targets: PostgreSQL p95 ≤ 30 ms, p99 ≤ 60 ms; SQLite
  p95 ≤ 50 ms);
- the same for deep relevance pages: each query walked by cursor to page 10 (20 a page), the
  later pages of the ranked window (2-5) and the pages past it, walked by views (6-10), same
  targets;
- requests/s against the app's trivial /healthz served the same way (ratio), for searches
  that are all different (every one computed) and for 50 hot search pages (the cached run;
  target ≥ 0.6), with the cache's hit ratio over that run. `--redis URL` serves as the
  scaled setup does (cache tier and rate-limit counts in Redis).

`--database-url URL` measures an archive imported before (a 10M one takes hours to build on a
small machine): the serving figures only, no import, and the database is left in place.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import orjson

from bench.common import (
    DATA,
    SEED,
    RawClient,
    create_database,
    dataset,
    drop_database,
    percentile,
    served,
)
from clipwatch.clips.importer import import_clips
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker
from clipwatch.db.migrate import upgrade_database
from clipwatch.db.repositories.clip_writes import HELIX_COLUMNS
from clipwatch.twitch.synthetic import World, Zipf

SORTS = ("relevance", "views", "newest")
DEEP_PAGES = 10  # of 20 clips: past the ranked window (CLIPWATCH_SEARCH_RELEVANCE_CANDIDATES, 100)
WINDOW_PAGES = 5
TARGETS = {"postgresql": (30.0, 60.0), "sqlite": (50.0, None)}
COLUMNS = HELIX_COLUMNS  # the same rows as the import path, in COPY order
RAW_BATCH = 5_000
STAGING = """
CREATE TEMP TABLE IF NOT EXISTS raw_staging (
    id text, url text, embed_url text, broadcaster_id text, broadcaster_name text,
    creator_id text, creator_name text, video_id text, game_id text, language text, title text,
    view_count bigint, created_at timestamptz, thumbnail_url text, duration double precision,
    vod_offset integer, is_featured boolean
) ON COMMIT DELETE ROWS
"""
MERGE = f"""
INSERT INTO clip ({", ".join(COLUMNS)}, first_seen_at, updated_at)
SELECT {", ".join(COLUMNS)}, now(), now() FROM raw_staging
ON CONFLICT (id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "id")}, updated_at = now()
"""


# --- import ---------------------------------------------------------------------------------


async def migrated(url: str) -> None:
    engine = create_engine(load_settings(database_url=url, secret_key="bench"))
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()


async def import_path(url: str, path: Path) -> float:
    """Seconds to import the file through clipwatch's import path (migrated schema)."""
    engine = create_engine(load_settings(database_url=url, secret_key="bench"))
    try:
        await upgrade_database(engine)
        started = time.perf_counter()
        with path.open("rb") as lines:
            report = await import_clips(create_sessionmaker(engine), lines)
        elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    if report.bad_lines or not report.inserted:
        raise RuntimeError(f"import went wrong: {report}")
    return elapsed


def _records(path: Path) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    with path.open("rb") as lines:
        for line in lines:
            clip = orjson.loads(line)
            clip["created_at"] = datetime.fromisoformat(clip["created_at"])
            clip["video_id"] = clip["video_id"] or None
            clip["game_id"] = clip["game_id"] or None
            batch.append(tuple(clip[c] for c in COLUMNS))
            if len(batch) == RAW_BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


async def raw_load(url: str, path: Path) -> float:
    """Seconds for the best hand-written loader: asyncpg COPY into a temp table, then merge."""
    await migrated(url)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        started = time.perf_counter()
        await conn.execute(STAGING)
        for batch in _records(path):
            async with conn.transaction():
                channels = {(r[3], r[4]) for r in batch}
                await conn.executemany(
                    "INSERT INTO channel (id, display_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    list(channels),
                )
                games = {(r[8],) for r in batch if r[8]}
                await conn.executemany(
                    "INSERT INTO game (id) VALUES ($1) ON CONFLICT DO NOTHING", list(games)
                )
                await conn.copy_records_to_table("raw_staging", records=batch, columns=COLUMNS)
                await conn.execute(MERGE)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def count_clips(url: str) -> int:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM clip"))
    finally:
        await conn.close()


async def vacuum_analyze(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


# --- search ---------------------------------------------------------------------------------


def make_queries(count: int) -> tuple[list[str], list[str]]:
    """Zipf-drawn 1-2 word queries (popular words included) and a channel for each."""
    world = World(seed=SEED)
    rng = random.Random(7)
    words = Zipf(len(world.vocabulary), 1.0, rng)
    queries = [
        " ".join(world.vocabulary[words.draw()] for _ in range(rng.randint(1, 2)))
        for _ in range(count)
    ]
    channels = [rng.choice(world.channels).id for _ in range(count)]
    return queries, channels


async def latency(
    base: str,
    queries: list[str],
    channels: list[str],
    sort: str,
    filtered: bool,
    warm_up: list[str],
) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def one(i: int, texts: list[str] = queries) -> tuple[float, int]:
            params: dict[str, Any] = {"q": texts[i], "sort": sort}
            if filtered:
                params["broadcaster"] = channels[i]
            started = time.perf_counter()
            answer = await client.get("/api/v1/clips", params=params)
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise RuntimeError(f"{answer.status_code} for {params}: {answer.text[:200]}")
            return elapsed, len(answer.json()["data"])

        # Warm-up (connections, statistics) with other queries: the measured ones are each
        # asked once, so none is answered from the cache.
        for i in range(len(warm_up)):
            await one(i, warm_up)
        runs = [await one(i) for i in range(len(queries))]
    times = sorted(t for t, _ in runs)
    return {
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "p99": percentile(times, 99),
        "with_results": sum(1 for _, n in runs if n) / len(runs),
    }


async def deep_latency(
    base: str, queries: list[str], channels: list[str], filtered: bool
) -> dict[str, dict[str, float]]:
    """Relevance pages 2 to DEEP_PAGES of every query, walked by cursor; page one is in
    `latency`. Rare words end early, so the deep figures are those of the common ones."""
    by_part: dict[str, list[float]] = {
        f"relevance p2-{WINDOW_PAGES}": [],
        f"relevance p{WINDOW_PAGES + 1}-{DEEP_PAGES}": [],
    }
    parts = list(by_part.values())
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for i, q in enumerate(queries):
            params: dict[str, Any] = {"q": q, "sort": "relevance", "limit": 20}
            if filtered:
                params["broadcaster"] = channels[i]
            for page in range(1, DEEP_PAGES + 1):
                started = time.perf_counter()
                answer = await client.get("/api/v1/clips", params=params)
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    raise RuntimeError(f"{answer.status_code} for {params}: {answer.text[:200]}")
                if page > 1:
                    parts[0 if page <= WINDOW_PAGES else 1].append(elapsed)
                cursor = answer.json()["next_cursor"]
                if not cursor:
                    break
                params["cursor"] = cursor
    out = {}
    for key, times in by_part.items():
        times.sort()
        out[key] = {
            "p50": percentile(times, 50),
            "p95": percentile(times, 95),
            "p99": percentile(times, 99),
            "pages": len(times),
        }
    return out


async def throughput(base: str, targets: list[str], concurrency: int, seconds: float) -> float:
    """Requests/s with `concurrency` keep-alive connections walking through `targets`, each
    from its own slice (so with enough targets no two requests ask the same thing)."""
    stride = max(1, len(targets) // concurrency)
    url = httpx.URL(base)
    clients = [RawClient(url.host, url.port or 80) for _ in range(concurrency)]

    async def worker(client: RawClient, offset: int, until: float) -> int:
        done = 0
        while time.perf_counter() < until:
            status, _ = await client.get(targets[(offset + done) % len(targets)])
            if status != 200:
                raise RuntimeError(f"{status} for {targets[(offset + done) % len(targets)]}")
            done += 1
        return done

    try:
        warm = time.perf_counter() + 1.0
        await asyncio.gather(*(worker(c, i * stride, warm) for i, c in enumerate(clients)))
        started = time.perf_counter()
        counts = await asyncio.gather(
            *(worker(c, i * stride + stride // 2, started + seconds) for i, c in enumerate(clients))
        )
        return sum(counts) / (time.perf_counter() - started)
    finally:
        await asyncio.gather(*(c.close() for c in clients))


def _cache_counts(base: str) -> tuple[int, int]:
    cache = httpx.get(f"{base}/api/v1/status").json()["cache"]
    return cache["hits"], cache["misses"]


def measure_server(database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    queries, channels = make_queries(args.queries + 30)
    warm_up, queries, channels = queries[-30:], queries[:-30], channels[:-30]
    out: dict[str, Any] = {"latency": {}}
    with served(database_url, DATA / "servers", args.redis) as server:
        for sort in SORTS if not args.throughput_only else ():
            for filtered in (False, True):
                key = f"{sort}{' +channel' if filtered else ''}"
                out["latency"][key] = asyncio.run(
                    latency(server.base, queries, channels, sort, filtered, warm_up)
                )
        for filtered in (False, True) if not args.throughput_only else ():
            deep = asyncio.run(deep_latency(server.base, queries, channels, filtered))
            for key, figures in deep.items():
                out["latency"][f"{key}{' +channel' if filtered else ''}"] = figures
        # Every search different (a page size per query and pass): all computed.
        distinct = [
            "/api/v1/clips?" + urlencode({"q": q, "sort": "relevance", "limit": size})
            for size in range(11, 41)
            for q in queries
        ]
        out["search_rps"] = asyncio.run(
            throughput(server.base, distinct, args.concurrency, args.seconds)
        )
        # The cached run: 50 hot search pages.
        hot = ["/api/v1/clips?" + urlencode({"q": q, "sort": "relevance"}) for q in queries[:50]]
        hits, misses = _cache_counts(server.base)
        out["cached_rps"] = asyncio.run(
            throughput(server.base, hot, args.concurrency, args.seconds)
        )
        hits_after, misses_after = _cache_counts(server.base)
        looked = (hits_after - hits) + (misses_after - misses)
        out["hit_ratio"] = (hits_after - hits) / looked if looked else float("nan")
        out["trivial_rps"] = asyncio.run(
            throughput(server.base, ["/healthz"], args.concurrency, args.seconds)
        )
    return out


# --- the run --------------------------------------------------------------------------------


def run_postgresql(path: Path, clips: int, args: argparse.Namespace) -> dict[str, Any]:
    raw_name, raw_url = asyncio.run(create_database())
    try:
        raw_seconds = asyncio.run(raw_load(raw_url, path))
    finally:
        asyncio.run(drop_database(raw_name))
    name, url = asyncio.run(create_database())
    try:
        import_seconds = asyncio.run(import_path(url, path))
        asyncio.run(vacuum_analyze(url))
        result = measure_server(url, args)
    finally:
        asyncio.run(drop_database(name))
    result["import_rate"] = clips / import_seconds
    result["raw_rate"] = clips / raw_seconds
    return result


def run_sqlite(path: Path, clips: int, args: argparse.Namespace) -> dict[str, Any]:
    file = DATA / f"bench-{uuid.uuid4().hex[:8]}.db"
    url = f"sqlite+aiosqlite:///{file}"
    try:
        import_seconds = asyncio.run(import_path(url, path))
        with sqlite3.connect(file) as db:
            db.execute("ANALYZE")
        result = measure_server(url, args)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{file}{suffix}").unlink(missing_ok=True)
    result["import_rate"] = clips / import_seconds
    return result


def print_report(clips: int, results: dict[str, dict[str, Any]], redis: str) -> None:
    setup = "with Redis (scaled setup)" if redis else "embedded (no Redis)"
    print(f"\n=== search benchmark, {clips:,} clips, {setup} ===")
    pg = results.get("postgresql")
    if pg and "import_rate" in pg:
        ratio = pg["import_rate"] / pg["raw_rate"]
        print(
            f"import, PostgreSQL: {pg['import_rate']:,.0f} clips/s; raw asyncpg COPY+merge "
            f"{pg['raw_rate']:,.0f} rows/s; ratio {ratio:.2f} (targets: ratio ≥ 0.60, ≥ 10,000/s)"
        )
    lite = results.get("sqlite")
    if lite:
        line = f"import, SQLite: {lite['import_rate']:,.0f} clips/s"
        if pg and "import_rate" in pg:
            line += f" ({lite['import_rate'] / pg['import_rate']:.2f} x the PostgreSQL import)"
        print(line)
    for backend, result in results.items():
        p95_target, p99_target = TARGETS[backend]
        target = f"p95 ≤ {p95_target:.0f}" + (f", p99 ≤ {p99_target:.0f}" if p99_target else "")
        print(f"\nsearch latency through the API, {backend} (ms; target {target}):")
        print(f"  {'sort':<30}{'p50':>8}{'p95':>8}{'p99':>8}   with results (deep: pages)")
        for key, figures in result["latency"].items():
            if figures.get("pages") == 0:
                print(f"  {key:<30}   (no query had that many pages)")
                continue
            ok = figures["p95"] <= p95_target and (
                p99_target is None or figures["p99"] <= p99_target
            )
            count = (
                f"{figures['pages']:>6,}"
                if "pages" in figures
                else f"{figures['with_results']:>6.0%}"
            )
            print(
                f"  {key:<30}{figures['p50']:>8.1f}{figures['p95']:>8.1f}{figures['p99']:>8.1f}"
                f"   {count}   {'ok' if ok else 'OVER TARGET'}"
            )
        trivial = result["trivial_rps"]
        print(
            f"  throughput vs /healthz {trivial:,.0f} req/s: every search different "
            f"{result['search_rps']:,.0f} req/s (ratio {result['search_rps'] / trivial:.2f}); "
            f"50 hot pages {result['cached_rps']:,.0f} req/s (ratio "
            f"{result['cached_rps'] / trivial:.2f}, target ≥ 0.60), cache hit ratio "
            f"{result['hit_ratio']:.1%}"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["both", "postgresql", "sqlite"], default="both")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--redis",
        default="",
        metavar="URL",
        help="Serve as in the scaled setup, with Redis (cache tier, rate-limit counts)",
    )
    parser.add_argument(
        "--database-url",
        default="",
        metavar="URL",
        help="An archive imported before (postgresql+asyncpg://…): serving figures only",
    )
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="Only the requests/s figures (no latency runs): for A/B runs of a change",
    )
    args = parser.parse_args(argv)
    results: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    if args.database_url:
        backend = "sqlite" if args.database_url.startswith("sqlite") else "postgresql"
        results[backend] = measure_server(args.database_url, args)
        clips = asyncio.run(count_clips(args.database_url)) if backend == "postgresql" else 0
        print_report(clips or args.clips, results, args.redis)
        return 0
    path = dataset(args.clips)
    if args.backend in ("both", "postgresql"):
        results["postgresql"] = run_postgresql(path, args.clips, args)
    if args.backend in ("both", "sqlite"):
        results["sqlite"] = run_sqlite(path, args.clips, args)
    print_report(args.clips, results, args.redis)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = DATA / f"results-search-{stamp}.json"
    out.write_bytes(
        orjson.dumps({"clips": args.clips, "results": results}, option=orjson.OPT_INDENT_2)
    )
    print(f"\n(total {time.perf_counter() - started:.0f} s; figures saved to {out})")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
