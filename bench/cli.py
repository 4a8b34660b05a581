"""Start-up time of the `clipwatch` command: help, a group's help, and a command that reads
the database (a fresh SQLite file, migrated by a first run that is not counted).

The figures: the median wall time of each, absolute and as a ratio to `python -c pass`
measured in the same run (the interpreter's own start), and the median CPU time (user +
system), which other work on the machine changes much less than the wall time. Targets
(#11): help under 0.5 s, a database command under 1.5 s. `--src DIR` times another
checkout's `src/` (e.g. one made with `git archive`) through the same interpreter, for
before/after numbers.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
# The console script's own entry point, so `--src` can point it at another checkout.
CLIPWATCH = [
    PYTHON,
    "-c",
    "import sys; from clipwatch.cli import app; sys.argv[0] = 'clipwatch'; app()",
]
CASES = (
    ("clipwatch --help", ["--help"], 0.5),
    ("clipwatch users --help", ["users", "--help"], 0.5),
    ("clipwatch users list", ["users", "list"], 1.5),
)


def _timed(command: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.decode()[-500:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu


def medians(command: list[str], env: dict[str, str], cwd: str, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds, after one untimed run (the page cache and bytecode warm,
    as for a user's second command)."""
    _timed(command, env, cwd)
    timings = [_timed(command, env, cwd) for _ in range(runs)]
    return statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)


def measure(runs: int, src: Path | None) -> list[tuple[str, float, float, float, float]]:
    """(what, median wall s, ratio to `python -c pass`, median CPU s, target s) per case."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CLIPWATCH_DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'cli.db'}",
            "CLIPWATCH_SECRET_KEY": "bench",
            "CLIPWATCH_LOG_FORMAT": "json",
        }
        if src is not None:
            env["PYTHONPATH"] = str(src.resolve())
        _timed([*CLIPWATCH, "db", "upgrade"], env, tmp)  # the first run migrates
        baseline, baseline_cpu = medians([PYTHON, "-c", "pass"], env, tmp, runs)
        results = [("python -c pass", baseline, 1.0, baseline_cpu, float("inf"))]
        for what, args, target in CASES:
            seconds, cpu = medians([*CLIPWATCH, *args], env, tmp, runs)
            results.append((what, seconds, seconds / baseline, cpu, target))
        return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cli", description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="Timed runs per command (median)")
    parser.add_argument("--src", type=Path, help="Time this src/ instead of the installed one")
    args = parser.parse_args(argv)
    results = measure(args.runs, args.src)
    where = f" of {args.src}" if args.src else ""
    print(f"\n=== cli benchmark{where}: median of {args.runs} runs ===")
    missed = 0
    for what, seconds, ratio, cpu, target in results:
        verdict = ""
        if target != float("inf"):
            verdict = f"(target < {target:.1f} s: {'ok' if seconds < target else 'MISSED'})"
            missed += seconds >= target
        print(
            f"{what:<24} {seconds * 1000:6.0f} ms {ratio:6.1f}x python -c pass, "
            f"CPU {cpu * 1000:4.0f} ms  {verdict}"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
