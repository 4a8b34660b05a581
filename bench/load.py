"""Load and soak: the scaled setup (tests/scaled/cluster.py: its own PostgreSQL and Redis,
2 `serve --no-worker` + 3 `worker`, the Twitch and Discord simulators, 20 channels, a new
clip every second, two routes) under mixed API traffic at a target rate for N minutes, with
sync and delivery running.

python -m bench load [--minutes 1] [--rate 30] [--clients 4] [--sse-clients 2] [--clip-every 1]
                     [--serves 2] [--workers 3] [--faults]

Reports, per endpoint (search, clip_api, clip_page, channel_clips, healthz, stream): count,
p50/p95/p99 latency and error rate (5xx or no answer); the saturated throughput of the mix
against the trivial endpoint (/healthz) measured in the same run (the same clients, as fast
as they go, 10 s each); and each process's resident memory (VmRSS) at the start and end of
the timed phase, with its growth. Target of the 30-minute soak (--minutes 30): growth < 10 %
per process. --faults runs the test's faults during the timed phase (tests/scaled/test_scaled.py:
a rolling restart, kill -9 of a random worker every 8 s, Redis stopped 20 s, PostgreSQL 10 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from tests.scaled.cluster import Cluster, FaultLog, cluster, run_faults
from tests.scaled.traffic import Answer, Traffic, percentile

SATURATE_S = 10.0
RSS_GROWTH_TARGET = 0.10
RSS_EVERY_S = 60.0


def _saturated(c: Cluster, only: str | None, clients: int) -> float:
    """Requests a second answered 2xx by `clients` closed-loop clients over SATURATE_S."""
    traffic = Traffic(c.rotation, clients=clients, rate=0.0, sse_clients=0, only=only, seed=9)
    traffic.clip_ids = known_ids(c)
    traffic.start()
    time.sleep(SATURATE_S)  # the measurement's length, not a wait on a condition
    traffic.stop()
    ok = [a for a in traffic.snapshot() if a.status is not None and a.status < 400]
    return len(ok) / SATURATE_S


def known_ids(c: Cluster) -> list[str]:
    return [r[0] for r in c.pg.query("SELECT id FROM clip ORDER BY random() LIMIT 500")]


def report(answers: list[Answer], seconds: float) -> None:
    by: dict[str, list[Answer]] = defaultdict(list)
    for a in answers:
        by[a.endpoint].append(a)
    heads = ("count", "rps", "p50 ms", "p95 ms", "p99 ms", "errors")
    print(f"  {'endpoint':<14} " + " ".join(f"{h:>8}" for h in heads))
    for endpoint, items in sorted(by.items()):
        times = [a.seconds * 1000 for a in items if a.status is not None]
        errors = sum(1 for a in items if a.status is None or a.status >= 500)
        print(
            f"  {endpoint:<14} {len(items):>8} {len(items) / seconds:>8.1f} "
            f"{percentile(times, 0.50):>8.1f} {percentile(times, 0.95):>8.1f} "
            f"{percentile(times, 0.99):>8.1f} {errors / len(items):>8.2%}"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=1.0, help="The timed phase")
    parser.add_argument("--rate", type=float, default=30.0, help="Requests a second in all")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sse-clients", type=int, default=2)
    parser.add_argument("--serves", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--faults", action="store_true", help="The test's faults meanwhile")
    parser.add_argument(
        "--clip-every",
        type=float,
        default=1.0,
        help="Seconds between new Twitch clips (0: none: the archive stays the same size)",
    )
    parser.add_argument("--workdir", default="", help="Logs kept here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate < 0 or args.clients < 1:
        parser.error("--minutes must be > 0, --rate >= 0, --clients >= 1")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="clipwatch-load-"))
    print(f"load: {args.serves} serve + {args.workers} worker, logs in {workdir}")
    started = time.monotonic()
    with cluster(workdir, serves=args.serves, workers=args.workers) as c:
        print(f"  cluster up in {time.monotonic() - started:.0f} s")
        if args.clip_every > 0:
            c.start_clips(every_s=args.clip_every)
        healthz = _saturated(c, "healthz", args.clients)
        mixed = _saturated(c, None, args.clients)
        print(
            f"  saturated ({args.clients} clients, {SATURATE_S:.0f} s each): "
            f"mix {mixed:.0f} req/s, /healthz {healthz:.0f} req/s: ratio {mixed / healthz:.3f}"
        )
        traffic = Traffic(
            c.rotation, clients=args.clients, rate=args.rate, sse_clients=args.sse_clients
        )
        traffic.clip_ids = known_ids(c)
        rss_start = c.rss_kb()
        samples: list[dict[str, int]] = []  # every RSS_EVERY_S: is growth a leak or a plateau
        timed = args.minutes * 60
        faults: FaultLog | None = None
        traffic.start()
        began = time.monotonic()
        try:
            if args.faults:
                result: list[FaultLog] = []
                runner = threading.Thread(target=lambda: result.append(run_faults(c)))
                runner.start()
                runner.join(timeout=timed + 600)
                faults = result[0] if result else None
            while (left := timed - (time.monotonic() - began)) > 0:
                time.sleep(min(left, RSS_EVERY_S))  # the timed phase's length, in steps
                samples.append(c.rss_kb())
        finally:
            traffic.stop()
        seconds = time.monotonic() - began
        rss_end = c.rss_kb()
        answers = traffic.snapshot()
        stored = len(c.stored_ids())
        messages = len(c.discord_messages())
        print(
            f"  timed phase: {seconds:.0f} s at a target of {args.rate:.0f} req/s: "
            f"{len(answers)} answers ({len(answers) / seconds:.1f}/s), "
            f"{traffic.sse_events} SSE events; {stored} clips stored, {messages} Discord messages"
        )
        report(answers, seconds)
        if faults is not None:
            print(
                f"  faults: restarts {faults.restarts}; {len(faults.kills)} kills; "
                f"ready after PostgreSQL {faults.pg_ready}"
            )
        worst = 0.0
        print("  resident memory (VmRSS): start → end")
        for name in sorted(rss_start):
            if name not in rss_end:
                continue
            growth = (rss_end[name] - rss_start[name]) / rss_start[name]
            restarted = args.faults  # a restarted process's start is not this phase's start
            note = " (restarted meanwhile)" if restarted else ""
            if not restarted:
                worst = max(worst, growth)
            print(
                f"    {name:<9} {rss_start[name] / 1024:7.1f} MB → {rss_end[name] / 1024:7.1f} MB "
                f"{growth:+.1%}{note}"
            )
        print(f"  VmRSS every {RSS_EVERY_S:.0f} s (MB), and the growth over the second half:")
        for name in sorted(rss_start):
            series = [s[name] / 1024 for s in samples if name in s]
            if len(series) >= 2:
                half = series[len(series) // 2]
                late = (series[-1] - half) / half
                shown = " ".join(f"{mb:.0f}" for mb in series)
                print(f"    {name:<9} {shown}  (second half {late:+.1%})")
        if not args.faults:
            verdict = "met" if worst < RSS_GROWTH_TARGET else "NOT met"
            print(f"  largest growth {worst:+.1%} (target < {RSS_GROWTH_TARGET:.0%}): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
