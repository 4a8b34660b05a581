"""The search page against the API's search: the same queries in the same run, over HTTP.

python -m bench web [--clips 1000000] [--database postgresql|sqlite] [--requests 400]

The app served as the other benches serve it (`clipwatch serve --no-worker --no-access-log`
on a loopback port, bench.common.served) over a database of its own holding the data set
(bench/search.py's loader). For each kind of search (common and rare words in each sort,
the front page without words, a channel filter, a views range, a date range, a page-2
cursor) `--requests` instances, each asked as the page (`GET /?…`) and as the API
(`GET /api/v1/clips?…&limit=24`, the page's size) back to back, which one first
alternating, the kinds shuffled together:

- uncached: a server with its cache off (CLIPWATCH_CACHE_MAX_ENTRIES=0), every instance a
  different search: every request is computed, page and API alike;
- cached: the usual server, 5 instances of each kind asked over and over after one warm-up
  request (the page and the API share the entry, docs/web.md).

Printed per mode: p50/p95/p99 ms of page and API, the page/API p95 ratio, the cache hit
ratio the server counted (proof of the mode), p95 per kind; and the bytes of a 24-card page
with every stylesheet and script it links. Targets (issue 14): page p95 < 50 ms at 1M clips on
PostgreSQL, and < 100 KB of HTML+CSS+JS for a 24-card page before images.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from bench.common import DATA, SEED, RawClient, dataset, percentile, served
from bench.metrics_overhead import prepare as prepare_database
from clipwatch.twitch.synthetic import EPOCH_END, World

PAGE_SIZE = 24  # the search page's size (clipwatch.web.render.PAGE_SIZE)
PAGE_P95_TARGET_MS = 50.0
WEIGHT_TARGET = 100_000  # bytes of HTML+CSS+JS for a 24-card page
SORTS_ASKED = ("relevance", "views", "newest")
CACHED_INSTANCES = 5  # searches per kind asked over and over in the cached mode
WARM_UP = 2  # searches of each kind asked before measuring (connections, plans, pools)
COMMON_RANKS = range(0, 60)  # the vocabulary is Zipf-drawn: rank 60 is in ~0.7 % of titles
RARE_RANKS = range(3_000, 20_000)  # a few to a few hundred clips each at 1M
CARD = re.compile(rb'<li class="card">')
ASSET = re.compile(rb'<(?:link rel="stylesheet" href|script src)="(/static/[^"]+)"')

Params = list[tuple[str, str]]


@dataclass(frozen=True)
class Search:
    kind: str
    params: Params

    def page(self) -> str:
        return "/?" + urlencode(self.params) if self.params else "/"

    def api(self) -> str:
        return "/api/v1/clips?" + urlencode([*self.params, ("limit", str(PAGE_SIZE))])


# --- the searches ---------------------------------------------------------------------------


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def common_queries(words: list[str], rng: random.Random) -> Iterator[str]:
    """Common words, one or two (every third query two, then only pairs): none twice."""
    singles = iter(words)
    pairs = [f"{a} {b}" for a in words for b in words if a < b]
    rng.shuffle(pairs)
    for n, pair in enumerate(pairs):
        if n % 3 != 2 and (single := next(singles, None)) is not None:
            yield single
        yield pair


def make_searches(count: int, offset: int = 0) -> list[Search]:
    """`count` different searches of every kind (page-2 kinds without their cursor yet; the
    front page has only its sorts), drawn from the data set's own vocabulary and channels;
    another `offset` draws another set."""
    world = World(seed=SEED)
    rng = random.Random(11 + offset)
    common = [world.vocabulary[r] for r in COMMON_RANKS]
    rare = [world.vocabulary[r] for r in RARE_RANKS]
    rng.shuffle(common)
    rng.shuffle(rare)
    words = itertools.cycle(common_queries(common, rng))  # past 1,830 queries, again
    out: list[Search] = []
    for i in range(count):
        word = next(words)
        few = rare[i % len(rare)]
        channel = rng.choice(world.channels[:40]).id  # the channels that have clips at any size
        end = EPOCH_END - timedelta(days=rng.randint(0, 3 * 365 - 30))
        for sort in SORTS_ASKED:
            out.append(Search(f"common word, {sort}", [("q", word), ("sort", sort)]))
            out.append(Search(f"rare word, {sort}", [("q", few), ("sort", sort)]))
        # The front page has no words; its sorts make its instances differ.
        sort = ("newest", "views", "oldest")[i % 3]
        out.append(Search("no words (front page)", [("sort", sort)]))
        out.append(Search("channel filter", [("q", word), ("broadcaster", channel)]))
        low = rng.choice((0, 1, 5, 20))
        out.append(
            Search(
                "views range",
                [("q", word), ("min_views", str(low)), ("max_views", str(low * 50 + 100))],
            )
        )
        out.append(
            Search(
                "date range",
                [
                    ("q", word),
                    ("created_after", _day(end - timedelta(days=30))),
                    ("created_before", _day(end)),
                    ("sort", "newest"),
                ],
            )
        )
        out.append(Search("page 2 (cursor)", [("q", word), ("sort", "relevance")]))
    return out


async def with_cursors(client: RawClient, searches: list[Search]) -> list[Search]:
    """Page-2 searches get the cursor of their first page (asked through the API, not timed);
    one whose first page is the last is replaced by the most common word that has a second
    (in a small data set those repeat)."""
    common = [
        Search("", [("q", word), ("sort", "relevance")])
        for word in World(seed=SEED).vocabulary[:20]
    ]
    out = []
    for search in searches:
        if not search.kind.startswith("page 2"):
            out.append(search)
            continue
        for candidate in (search, *common):
            status, body = await client.get(candidate.api())
            if status != 200:
                raise RuntimeError(f"{status} for {candidate.api()}: {body[:200]!r}")
            cursor = orjson.loads(body)["next_cursor"]
            if cursor:
                out.append(Search(search.kind, [*candidate.params, ("cursor", cursor)]))
                break
        else:
            raise RuntimeError("not even the most common words have a second page")
    return out


# --- measuring ------------------------------------------------------------------------------


async def timed(client: RawClient, target: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    status, body = await client.get(target)
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200:
        raise RuntimeError(f"{status} for {target}: {body[:300]!r}")
    return elapsed, body


async def measure(base: str, searches: list[Search], rounds: int, warm: bool) -> dict[str, Any]:
    """Every search `rounds` times as page and as API, back to back (the order alternating),
    in a shuffled order; the milliseconds of each, by target and by kind. `warm`: each search
    asked once first, untimed (its answer then in the cache)."""
    url = httpx.URL(base)
    client = RawClient(url.host, url.port or 80)
    try:
        for search in make_searches(WARM_UP, offset=500):
            await timed(client, search.page())
            await timed(client, search.api())
        searches = await with_cursors(client, searches)
        if warm:
            for search in searches:
                await timed(client, search.page())
        hits, misses = await cache_counts(client)
        order = [s for _ in range(rounds) for s in searches]
        random.Random(5).shuffle(order)
        times: dict[str, list[float]] = {"page": [], "api": []}
        by_kind: dict[str, dict[str, list[float]]] = {}
        for n, search in enumerate(order):
            kind = by_kind.setdefault(search.kind, {"page": [], "api": []})
            pair = [("page", search.page()), ("api", search.api())]
            bodies = {}
            for target, path in pair if n % 2 == 0 else pair[::-1]:
                elapsed, bodies[target] = await timed(client, path)
                times[target].append(elapsed)
                kind[target].append(elapsed)
            cards, clips = (
                len(CARD.findall(bodies["page"])),
                len(orjson.loads(bodies["api"])["data"]),
            )
            if cards != clips:  # not the same search: the figures would compare nothing
                raise RuntimeError(f"{cards} cards on {search.page()}, {clips} clips from the API")
        hits_after, misses_after = await cache_counts(client)
    finally:
        await client.close()
    looked = (hits_after - hits) + (misses_after - misses)
    return {
        "requests": len(order),
        "hit_ratio": (hits_after - hits) / looked if looked else float("nan"),
        "all": {target: figures(values) for target, values in times.items()},
        "kinds": {
            kind: {target: figures(values) for target, values in by_target.items()}
            for kind, by_target in by_kind.items()
        },
    }


def figures(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {p: percentile(ordered, float(p[1:])) for p in ("p50", "p95", "p99")}


async def cache_counts(client: RawClient) -> tuple[int, int]:
    status, body = await client.get("/api/v1/status")
    if status != 200:
        raise RuntimeError(f"{status} for /api/v1/status")
    cache = orjson.loads(body)["cache"]
    return cache["hits"], cache["misses"]


async def page_weight(base: str) -> dict[str, int]:
    """Bytes of the first 24-card page of common-word searches, and of every stylesheet and
    script it links (as served, before compression and images)."""
    url = httpx.URL(base)
    client = RawClient(url.host, url.port or 80)
    try:
        for search in make_searches(10, offset=2_000):
            if search.kind != "common word, views":
                continue
            _, html = await timed(client, search.page())
            if len(CARD.findall(html)) == PAGE_SIZE:
                break
        else:
            raise RuntimeError(f"no common-word search gave a page of {PAGE_SIZE} cards")
        assets = {}
        for link in dict.fromkeys(ASSET.findall(html)):
            _, body = await timed(client, link.decode())
            assets[link.decode()] = len(body)
    finally:
        await client.close()
    return {"html": len(html), **assets, "total": len(html) + sum(assets.values())}


@contextmanager
def cache_off() -> Iterator[None]:
    """The next server started holds no answer (bench.common.served copies os.environ)."""
    os.environ["CLIPWATCH_CACHE_MAX_ENTRIES"] = "0"
    try:
        yield
    finally:
        del os.environ["CLIPWATCH_CACHE_MAX_ENTRIES"]


def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = DATA / "servers"
    result: dict[str, Any] = {}
    with cache_off(), served(url, workdir) as server:
        searches = make_searches(args.requests)
        result["uncached"] = asyncio.run(measure(server.base, searches, 1, warm=False))
    with served(url, workdir) as server:
        hot = make_searches(min(CACHED_INSTANCES, args.requests), offset=100)
        rounds = max(1, args.requests // CACHED_INSTANCES)
        result["cached"] = asyncio.run(measure(server.base, hot, rounds, warm=True))
        result["weight"] = asyncio.run(page_weight(server.base))
    return result


# --- the report -----------------------------------------------------------------------------


def print_report(args: argparse.Namespace, result: dict[str, Any], target_applies: bool) -> bool:
    print(
        f"\n=== search page vs API search, {args.database}, {args.clips:,} clips, "
        f"loopback HTTP, one client ==="
    )
    held = True
    for mode in ("uncached", "cached"):
        run_ = result[mode]
        page, api = run_["all"]["page"], run_["all"]["api"]
        ratio = page["p95"] / api["p95"]
        ok = bool(page["p95"] < PAGE_P95_TARGET_MS)
        held &= ok
        print(
            f"\n{mode}: {run_['requests']:,} searches, each as page and as API "
            f"(server's cache hit ratio {run_['hit_ratio']:.0%})"
        )
        print(f"  {'':<24}{'p50':>8}{'p95':>8}{'p99':>8}  ms")
        for name, figs in (("page  GET /?…", page), ("API   GET /api/v1/clips", api)):
            print(f"  {name:<24}{figs['p50']:>8.1f}{figs['p95']:>8.1f}{figs['p99']:>8.1f}")
        verdict = "ok" if ok else "OVER TARGET"
        print(
            f"  page/API p95 ratio {ratio:.2f}; page p95 {page['p95']:.1f} ms "
            f"(target < {PAGE_P95_TARGET_MS:.0f} ms: {verdict})"
        )
        print(f"  p95 by kind (ms):  {'page':>7}{'API':>7}{'ratio':>7}")
        for kind, figs in sorted(run_["kinds"].items()):
            p, a = figs["page"]["p95"], figs["api"]["p95"]
            print(f"    {kind:<24}{p:>7.1f}{a:>7.1f}{p / a:>7.2f}")
    weight = result["weight"]
    parts = ", ".join(f"{name} {size:,}" for name, size in weight.items() if name != "total")
    ok = bool(weight["total"] < WEIGHT_TARGET)
    held &= ok
    print(
        f"\na {PAGE_SIZE}-card page: {weight['total']:,} bytes of HTML+CSS+JS ({parts}; "
        f"target < {WEIGHT_TARGET:,}: {'ok' if ok else 'OVER TARGET'})"
    )
    if not target_applies:
        print("(the 50 ms target is for 1M clips on PostgreSQL; this run is only indicative)")
    return held


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench web",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument(
        "--requests", type=int, default=400, help="Searches of each kind, per target and mode"
    )
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    started = time.perf_counter()
    path = dataset(args.clips)
    url, drop = prepare_database(args.database, path)
    loaded = time.perf_counter()
    try:
        result = run(url, args)
    finally:
        drop()
    target_applies = args.database == "postgresql" and args.clips >= 1_000_000
    held = print_report(args, result, target_applies)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = DATA / f"results-web-{stamp}.json"
    out.write_bytes(
        orjson.dumps(
            {"clips": args.clips, "database": args.database, "results": result},
            option=orjson.OPT_INDENT_2,
        )
    )
    busy = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(
        f"(load {loaded - started:.0f} s, measure {time.perf_counter() - loaded:.0f} s; "
        f"load average {busy} on {os.cpu_count()} CPUs; figures saved to {out})"
    )
    return 0 if held or not target_applies else 1


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
