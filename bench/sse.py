"""The clip stream (GET /api/v1/stream) against a real `clipwatch serve` process.

python -m bench sse [--clips 100000] [--backend sqlite|postgresql] [--redis URL]
                    [--latency-clips 200] [--idle-clients 1000] [--queries 300]

- Latency: a clip committed by this process (the scaled setup's writer: another process,
  its generations bumped through Redis pub/sub) until an SSE client of the server has read
  its event; p95 over 200 clips, target < 1 s. Without Redis the server learns of another
  process's writes only by its once-a-second look (printed for reference).
- 1,000 idle SSE clients on one serve process: the process's RSS growth (target < 100 MB),
  and search p95 through the API with them connected against without (rounds interleaved,
  p95 of all searches of each kind, each search a new one the server computes; ratio,
  target ≤ 1.10).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from sqlalchemy import text

from bench.common import (
    REDIS_URL,
    RawClient,
    create_database,
    dataset,
    drop_database,
    drop_redis_keys,
    percentile,
    served,
)
from clipwatch.cache.manager import CacheManager
from clipwatch.clips.importer import import_clips
from clipwatch.config import load_settings
from clipwatch.db.engine import attach_cache, create_engine, create_sessionmaker, session_scope
from clipwatch.db.migrate import upgrade_database
from clipwatch.db.repositories import catalog, clip_writes

LATENCY_TARGET_S = 1.0
RSS_TARGET_MB = 100.0
SEARCH_RATIO_TARGET = 1.10


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class SseReader:
    """One raw SSE connection; `arrivals` maps each clip id read to when it was read."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.arrivals: dict[str, float] = {}
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.connected.wait(), 60)

    async def _read(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: text/event-stream\r\n\r\n"
        )
        writer.write(request.encode())
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b": connected"):
                    self.connected.set()
                elif line.startswith(b"data: {"):
                    arrived = time.perf_counter()
                    clip_id = orjson.loads(line[6:]).get("id")
                    if clip_id:
                        self.arrivals[clip_id] = arrived
        finally:
            writer.close()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self.task


def _clip_row(n: int, run: str) -> dict[str, Any]:
    slug = f"SseBench{run}-{n:05d}"
    return {
        "id": slug,
        "url": f"https://clips.twitch.tv/{slug}",
        "embed_url": f"https://clips.twitch.tv/embed?clip={slug}",
        "broadcaster_id": "990001",
        "broadcaster_name": "SseBench",
        "creator_id": "990002",
        "creator_name": "SseBencher",
        "video_id": None,
        "game_id": None,
        "language": "en",
        "title": f"stream latency clip {n}",
        "view_count": 1,
        "created_at": datetime.now(UTC),
        "thumbnail_url": "https://clips-media-assets2.twitch.tv/x-preview-480x272.jpg",
        "duration": 30.0,
        "vod_offset": None,
        "is_featured": False,
    }


async def measure_latency(url: str, base: str, cache: CacheManager, clips: int) -> list[float]:
    """Seconds from just before each commit to the event's arrival, one clip at a time."""
    engine = create_engine(load_settings(database_url=url, secret_key="bench"))
    attach_cache(engine, cache)
    sessionmaker = create_sessionmaker(engine)
    parts = urlsplit(base)
    reader = SseReader(parts.hostname or "127.0.0.1", parts.port or 80, "/api/v1/stream")
    await reader.start()
    run = uuid.uuid4().hex[:6]
    committed: dict[str, float] = {}
    try:
        async with session_scope(sessionmaker) as session:
            await catalog.ensure_channels(session, {"990001": "SseBench"})
        for n in range(clips):
            row = _clip_row(n, run)
            async with session_scope(sessionmaker) as session:
                await clip_writes.upsert_clips(session, [row])
                committed[row["id"]] = time.perf_counter()  # the commit and bump follow
            await asyncio.sleep(random.uniform(0.01, 0.05))  # writes spread out
        for _ in range(600):  # up to 30 s for the last events
            if len(reader.arrivals) >= clips:
                break
            await asyncio.sleep(0.05)
    finally:
        await reader.close()
        await engine.dispose()
    missing = clips - len(reader.arrivals)
    if missing:
        print(f"  {missing} clips never arrived (counted as 30 s)")
    return sorted(reader.arrivals.get(i, t + 30) - t for i, t in committed.items())


async def search_latencies(base: str, queries: list[str]) -> list[float]:
    parts = urlsplit(base)
    client = RawClient(parts.hostname or "127.0.0.1", parts.port or 80)
    latencies = []
    try:
        for q in queries:
            started = time.perf_counter()
            status, body = await client.get(f"/api/v1/clips?{q}")
            latencies.append(time.perf_counter() - started)
            assert status == 200, (status, q, body)
    finally:
        await client.close()
    return latencies


@asynccontextmanager
async def idle_clients(base: str, count: int) -> AsyncIterator[list[SseReader]]:
    parts = urlsplit(base)
    readers = [
        SseReader(parts.hostname or "127.0.0.1", parts.port or 80, "/api/v1/stream")
        for _ in range(count)
    ]
    try:
        for start in range(0, count, 100):
            await asyncio.gather(*(r.start() for r in readers[start : start + 100]))
        yield readers
    finally:
        await asyncio.gather(*(r.close() for r in readers))


async def measure_idle(
    base: str, pid: int, count: int, queries: int, clips: int, rounds: int
) -> dict[str, Any]:
    """Rounds alternate without and with the clients; each round's searches are new ones."""
    await search_latencies(base, query_strings(clips, queries, seed=0))  # warm: plans, pools
    without: list[float] = []
    with_clients: list[float] = []
    rss_growth = []
    pairs = []
    for n in range(rounds):
        alone = await search_latencies(base, query_strings(clips, queries, seed=2 * n + 1))
        before = rss_mb(pid)
        async with idle_clients(base, count):
            await asyncio.sleep(2)  # every connection settled
            rss_growth.append(rss_mb(pid) - before)
            beside = await search_latencies(base, query_strings(clips, queries, seed=2 * n + 2))
        without += alone
        with_clients += beside
        pairs.append((percentile(sorted(alone), 95) * 1000, percentile(sorted(beside), 95) * 1000))
    return {
        "without_ms": percentile(sorted(without), 95) * 1000,
        "with_ms": percentile(sorted(with_clients), 95) * 1000,
        "rss_growth_mb": max(rss_growth),
        "rounds": rounds,
        "searches": len(without),
        "pairs": pairs,
    }


async def prepare(backend: str, clips: int, workdir: Path) -> tuple[str, str | None]:
    if backend == "postgresql":
        name, url = await create_database()
    else:
        name, url = None, f"sqlite+aiosqlite:///{workdir / 'sse.db'}"
    engine = create_engine(load_settings(database_url=url, secret_key="bench"))
    try:
        await upgrade_database(engine)
        if clips:
            lines = dataset(clips).read_bytes().splitlines()
            await import_clips(create_sessionmaker(engine), lines)
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    return url, name


def query_strings(clips: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = dataset(clips).read_bytes().splitlines()[:5000]
    words = [w for line in lines for w in orjson.loads(line)["title"].split() if w.isalpha()]
    # A page size of its own makes each search one the server computes (no cached answer).
    return [
        urlencode({"q": rng.choice(words), "limit": rng.randint(10, 100)}) for _ in range(count)
    ]


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url, pg_name = await prepare(args.backend, args.clips, workdir)
        prefix = f"bench-sse-{uuid.uuid4().hex[:8]}"
        cache = CacheManager(args.redis, prefix=prefix)
        await cache.start()
        failed = 0
        try:
            with served(url, workdir, args.redis, prefix=prefix, report_stop=True) as server:
                base, process = server.base, server.process
                if args.redis:
                    for _ in range(200):  # the bench's own feed, before writing (≤ 10 s)
                        if cache.feed_is_current():
                            break
                        await asyncio.sleep(0.05)
                latencies = await measure_latency(url, base, cache, args.latency_clips)
                p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
                mode = "through Redis pub/sub" if args.redis else "no Redis: the 1 s look"
                verdict = "ok" if p95 < LATENCY_TARGET_S else "OVER TARGET"
                print(f"commit → SSE client, {len(latencies)} clips ({mode}):")
                print(f"  p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max "
                      f"{latencies[-1] * 1000:.0f} ms (target p95 < 1 s: {verdict})")  # fmt: skip
                if args.redis and p95 >= LATENCY_TARGET_S:
                    failed = 1
                idle = await measure_idle(
                    base, process.pid, args.idle_clients, args.queries, args.clips, args.rounds
                )
                ratio = idle["with_ms"] / idle["without_ms"]
                rss_ok = idle["rss_growth_mb"] < RSS_TARGET_MB
                ratio_ok = ratio <= SEARCH_RATIO_TARGET
                print(
                    f"{args.idle_clients} idle SSE clients on one serve process ({args.backend}, "
                    f"{args.clips:,} clips, {idle['searches']} searches each way in "
                    f"{idle['rounds']} interleaved rounds):"
                )
                print(
                    f"  RSS growth {idle['rss_growth_mb']:.1f} MB "
                    f"(target < {RSS_TARGET_MB:.0f} MB: {'ok' if rss_ok else 'OVER TARGET'})"
                )
                verdict = "ok" if ratio_ok else "OVER TARGET"
                print(f"  search p95 {idle['with_ms']:.1f} ms with them vs "
                      f"{idle['without_ms']:.1f} ms without: ratio {ratio:.2f} "
                      f"(target ≤ {SEARCH_RATIO_TARGET:.2f}: {verdict})")  # fmt: skip
                rounds = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in idle["pairs"])
                print(f"  each round's p95 without/with (ms): {rounds}")
                failed |= int(not (rss_ok and ratio_ok))
        finally:
            await cache.close()
            if args.redis:
                drop_redis_keys(args.redis, prefix)
            if pg_name:
                await drop_database(pg_name)
        return failed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench sse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis", default=REDIS_URL, metavar="URL", help="'' for none")
    parser.add_argument("--latency-clips", type=int, default=200)
    parser.add_argument("--idle-clients", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200, help="Searches a round")
    parser.add_argument("--rounds", type=int, default=10, help="Rounds without/with clients")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * args.idle_clients + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # the server inherits it
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
