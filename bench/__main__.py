"""`make bench`: every benchmark, one after the other (`python -m bench NAME …` for one)."""

from __future__ import annotations

import sys

from bench import (
    archive,
    body_limit,
    cli,
    delivery,
    export,
    load,
    metrics_overhead,
    search,
    sse,
    web,
)
from bench import sync as sync_bench

BENCHMARKS = {
    "search": search.main,
    "sync": sync_bench.main,
    "delivery": delivery.main,
    "cli": cli.main,
    "body_limit": body_limit.main,
    "metrics_overhead": metrics_overhead.main,
    "sse": sse.main,
    "web": web.main,
    "export": export.main,
    "load": load.main,
    "archive": archive.main,
}
# Run by name only (`python -m bench load`): minutes of a whole scaled setup, or hours of
# building a 10M-clip archive.
BY_NAME_ONLY = {"load", "archive"}


def main() -> int:
    argv = sys.argv[1:]
    if argv and argv[0] in BENCHMARKS:
        return BENCHMARKS[argv[0]](argv[1:])
    failed = 0
    for name, run in BENCHMARKS.items():
        if name not in BY_NAME_ONLY:
            failed |= run(argv if run is search.main else [])
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
