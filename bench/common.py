"""What the benchmarks share: data sets, scratch databases, a served app, percentiles."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import orjson
import redis

from clipwatch.twitch.synthetic import World

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"
POSTGRES_ADMIN_URL = os.environ.get(
    "CLIPWATCH_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CLIPWATCH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SEED = 42


def dataset(clips: int, seed: int = SEED) -> Path:
    """A JSON Lines file of `clips` Helix clips, generated once and kept for later runs."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"clips-{seed}-{clips}.jsonl"
    if not path.exists():
        partial = path.with_suffix(".partial")
        started = time.perf_counter()
        with partial.open("wb") as out:
            for clip in World(seed=seed).clips(clips):
                out.write(orjson.dumps(clip) + b"\n")
        partial.rename(path)
        print(f"  generated {clips:,} clips in {time.perf_counter() - started:.0f} s → {path.name}")
    return path


async def create_database() -> tuple[str, str]:
    """A fresh PostgreSQL database: (name, SQLAlchemy URL)."""
    name = f"clipwatch_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]


@contextmanager
def served(
    database_url: str,
    workdir: Path,
    redis_url: str = "",
    *,
    prefix: str | None = None,
    report_stop: bool = False,
) -> Iterator[Server]:
    """`clipwatch serve` on a free port (live mode, API only, no access log), stopped by its
    handle. With `redis_url`, the scaled setup: cache tier and rate-limit counts in Redis
    (under `prefix` when the bench writes through it too, as another process would).
    `report_stop`: print how long the server took to stop after SIGTERM."""
    port = free_port()
    prefix = prefix or f"bench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CLIPWATCH_DATABASE_URL": database_url,
        "CLIPWATCH_SECRET_KEY": "bench",
        "CLIPWATCH_TWITCH_CLIENT_ID": "bench",
        "CLIPWATCH_TWITCH_CLIENT_SECRET": "bench",
        "CLIPWATCH_LOG_LEVEL": "warning",
        "CLIPWATCH_LOG_FORMAT": "json",
        # One client sends every request: limits would measure the limiter's refusals.
        # The limiter still counts each request (in memory), so its cost is in the figures.
        "CLIPWATCH_RATE_LIMIT_ANONYMOUS": "100000000/minute",
        "CLIPWATCH_REDIS_URL": redis_url,
        "CLIPWATCH_REDIS_KEY_PREFIX": prefix,
    }
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "clipwatch"),
            "serve",
            "--port",
            str(port),
            "--no-access-log",
            "--no-worker",
        ],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: see {log.name}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 120 s")
            time.sleep(0.1)  # polling interval while waiting for the server
        yield Server(base, process)
    finally:
        stopping = time.monotonic()
        process.terminate()
        try:
            process.wait(timeout=20)
            if report_stop:
                print(f"  server stopped {time.monotonic() - stopping:.1f} s after SIGTERM")
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            if report_stop:
                print("  server did NOT stop within 20 s of SIGTERM (killed)")
        log.close()
        if redis_url:  # the run's keys (the generations hash has no expiry)
            drop_redis_keys(redis_url, prefix)


def drop_redis_keys(redis_url: str, prefix: str) -> None:
    """Every key of a run's own prefix."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


class RawClient:
    """A minimal HTTP/1.1 keep-alive client for load: httpx's per-request overhead (~0.3 ms)
    would make the client, not the server, the bottleneck of a throughput figure."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\nConnection: keep-alive\r\n\r\n".encode()
        )
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()
