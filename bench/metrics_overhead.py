"""What the metrics cost: bench/search.py's throughput figures with instrumentation on and off.

python -m bench.metrics_overhead [--clips N] [--backend sqlite|postgresql] [--rounds 3]

The app served as bench/search.py serves it (`clipwatch serve --no-worker --no-access-log`),
twice at once on the same database: CLIPWATCH_METRICS_ENABLED=true and =false. Short runs
against each, alternated (`--rounds` pairs per figure, the order flipped every round); the
median of the pairs' on/off ratios is the result, so a machine whose load drifts moves both
sides of a pair alike. Figures: requests/s for searches that are all different, for 50 hot
(cached) pages and for /healthz; and bench/search.py's ratios (each against /healthz).
Target: with metrics on, every figure within 5 % of metrics off. Also printed: the layer's
own cost per request, measured in process (CPU time, no network).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.common import DATA, Server, create_database, dataset, drop_database, served
from bench.search import import_path, make_queries, throughput, vacuum_analyze

TARGET = 0.95
FIGURES = ("search_rps", "cached_rps", "trivial_rps")


def targets(args: argparse.Namespace) -> dict[str, list[str]]:
    queries, _ = make_queries(args.queries)
    return {
        # Every search different (a page size per query and pass): all computed.
        "search_rps": [
            "/api/v1/clips?" + urlencode({"q": q, "sort": "relevance", "limit": size})
            for size in range(11, 41)
            for q in queries
        ],
        # The cached run: 50 hot search pages.
        "cached_rps": [
            "/api/v1/clips?" + urlencode({"q": q, "sort": "relevance"}) for q in queries[:50]
        ],
        "trivial_rps": ["/healthz"],
    }


@contextmanager
def server(url: str, enabled: bool, args: argparse.Namespace) -> Iterator[Server]:
    os.environ["CLIPWATCH_METRICS_ENABLED"] = "true" if enabled else "false"
    try:
        with served(url, DATA / "servers", args.redis) as running:
            del os.environ["CLIPWATCH_METRICS_ENABLED"]
            yield running
    finally:
        os.environ.pop("CLIPWATCH_METRICS_ENABLED", None)


def compare(url: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Both servers up at once (each idle while the other is measured); short runs,
    alternated, the order flipped every round: a machine whose load drifts moves both
    figures of a pair alike, so the pairs' ratios are compared, not two long averages."""
    paths = targets(args)
    runs: dict[str, dict[str, list[float]]] = {"on": {}, "off": {}}
    shares: dict[str, list[float]] = {}
    # --aa: both servers alike (metrics on), to see the noise floor of the pairing itself.
    with server(url, args.aa, args) as off, server(url, True, args) as on:
        bases = {"off": off.base, "on": on.base}
        for round_ in range(args.rounds):
            order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
            figures: dict[str, dict[str, float]] = {"on": {}, "off": {}}
            for key, wanted in paths.items():
                for which in order:
                    figures[which][key] = asyncio.run(
                        throughput(bases[which], wanted, args.concurrency, args.seconds)
                    )
            for which in ("on", "off"):
                f = figures[which]
                f["search_ratio"] = f["search_rps"] / f["trivial_rps"]
                f["cached_ratio"] = f["cached_rps"] / f["trivial_rps"]
                for key, figure in f.items():
                    runs[which].setdefault(key, []).append(figure)
            for key in figures["on"]:
                shares.setdefault(key, []).append(figures["on"][key] / figures["off"][key])
    out: dict[str, dict[str, float]] = {
        which: {key: statistics.median(values) for key, values in by_key.items()}
        for which, by_key in runs.items()
    }
    out["share"] = {key: statistics.median(values) for key, values in shares.items()}
    out["aa"] = {"on": 1.0} if args.aa else {}
    return out


def layer_cost(requests: int = 20_000) -> dict[str, float]:
    """Microseconds the telemetry layer adds to one request, in process (no network, no
    server): a trivial ASGI answer bare, behind the layer with metrics off, and on."""
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, Router

    from clipwatch.api.telemetry import RequestTelemetry

    async def endpoint(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    router = Router([Route("/api/v1/clips/{clip_id}", endpoint)])
    apps = {
        "bare": router,
        "off": RequestTelemetry(router, router=router, metrics=False, access=False),
        "on": RequestTelemetry(router, router=router, metrics=True, access=False),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Any) -> None:
        return None

    async def run(app: Any) -> float:
        started = time.process_time()
        for n in range(requests):
            scope = {
                "type": "http",
                "method": "GET",
                "path": f"/api/v1/clips/c{n % 500}",
                "raw_path": b"",
                "query_string": b"",
                "headers": [],
                "client": ("127.0.0.1", 1),
            }
            await app(scope, receive, send)
        return (time.process_time() - started) / requests * 1e6

    costs = {name: min(asyncio.run(run(app)) for _ in range(3)) for name, app in apps.items()}
    return {"off_us": costs["off"] - costs["bare"], "on_us": costs["on"] - costs["bare"]}


def prepare(backend: str, path: Path) -> tuple[str, Any]:
    """A database holding the data set: (URL, how to drop it)."""
    if backend == "postgresql":
        name, url = asyncio.run(create_database())
        asyncio.run(import_path(url, path))
        asyncio.run(vacuum_analyze(url))
        return url, lambda: asyncio.run(drop_database(name))
    file = DATA / f"bench-{uuid.uuid4().hex[:8]}.db"
    url = f"sqlite+aiosqlite:///{file}"
    asyncio.run(import_path(url, path))
    with sqlite3.connect(file) as db:
        db.execute("ANALYZE")

    def drop() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{file}{suffix}").unlink(missing_ok=True)

    return url, drop


def print_report(
    backend: str, clips: int, result: dict[str, dict[str, float]], cost: dict[str, float]
) -> bool:
    on, off, share = result["on"], result["off"], result["share"]
    print(f"\n=== metrics overhead, {backend}, {clips:,} clips (medians of paired runs) ===")
    if result.get("aa"):
        print("  (--aa: metrics on in both servers; the ratios below are the noise floor)")
    ok = True
    for key in (*FIGURES, "search_ratio", "cached_ratio"):
        within = share[key] >= TARGET
        ok &= within
        unit = " req/s" if key.endswith("rps") else "      "
        print(
            f"  {key:<14} off {off[key]:>10,.2f}{unit}   on {on[key]:>10,.2f}{unit}   "
            f"on/off {share[key]:.3f}   {'ok' if within else 'OVER 5 %'}"
        )
    print(
        f"  the telemetry layer in process: {cost['on_us']:.1f} µs a request with metrics on, "
        f"{cost['off_us']:.1f} µs off (request id only; access log off as in the runs above)"
    )
    extra = cost["on_us"] - cost["off_us"]
    shares = ", ".join(
        f"{key.removesuffix('_rps')} {extra * off[key] / 1e6:.2%}" for key in FIGURES
    )
    print(f"  so the metrics' own work is this share of one process's request time: {shares}")
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.metrics_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=200_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0, help="One run's length")
    parser.add_argument("--rounds", type=int, default=9, help="Paired runs per figure")
    parser.add_argument("--redis", default="", metavar="URL", help="Serve with Redis")
    parser.add_argument(
        "--aa", action="store_true", help="Metrics on in both servers: the noise floor"
    )
    args = parser.parse_args(argv)
    path = dataset(args.clips)
    url, drop = prepare(args.backend, path)
    try:
        result = compare(url, args)
    finally:
        drop()
    print_report(args.backend, args.clips, result, layer_cost())
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
