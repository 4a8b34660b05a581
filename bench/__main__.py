"""`make bench`: every benchmark, one after the other (`python -m bench NAME …` for one)."""

from __future__ import annotations

import sys

from bench import body_limit, cli, delivery, metrics_overhead, search, sse
from bench import sync as sync_bench

BENCHMARKS = {
    "search": search.main,
    "sync": sync_bench.main,
    "delivery": delivery.main,
    "cli": cli.main,
    "body_limit": body_limit.main,
    "metrics_overhead": metrics_overhead.main,
    "sse": sse.main,
}


def main() -> int:
    argv = sys.argv[1:]
    if argv and argv[0] in BENCHMARKS:
        return BENCHMARKS[argv[0]](argv[1:])
    failed = 0
    for run in BENCHMARKS.values():
        failed |= run(argv if run is search.main else [])
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
