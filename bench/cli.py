"""Start-up time of the `clipwatch` command: help, a group's help, and a command that reads
the database (a fresh SQLite file, migrated by a first run that is not counted).

The figures: the median wall time of each, absolute and as a ratio to `python -c pass`
measured in the same run (the interpreter's own start). Targets (#11): help under 0.5 s, a
database command under 1.5 s. `--src DIR` times another checkout's `src/` (e.g. one made with
`git archive`) through the same interpreter, for before/after numbers.
"""

from __future__ import annotations

import argparse
import os
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


def _timed(command: list[str], env: dict[str, str], cwd: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def median_s(command: list[str], env: dict[str, str], cwd: str, runs: int) -> float:
    _timed(command, env, cwd)  # warm: the page cache and bytecode, as a user's second run
    return statistics.median(_timed(command, env, cwd) for _ in range(runs))


def measure(runs: int, src: Path | None) -> list[tuple[str, float, float, float]]:
    """(what, median seconds, ratio to `python -c pass`, target seconds) per case."""
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
        baseline = median_s([PYTHON, "-c", "pass"], env, tmp, runs)
        results = [("python -c pass", baseline, 1.0, float("inf"))]
        for what, args, target in CASES:
            seconds = median_s([*CLIPWATCH, *args], env, tmp, runs)
            results.append((what, seconds, seconds / baseline, target))
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
    for what, seconds, ratio, target in results:
        verdict = ""
        if target != float("inf"):
            verdict = f"(target < {target:.1f} s: {'ok' if seconds < target else 'MISSED'})"
            missed += seconds >= target
        print(f"{what:<24} {seconds * 1000:7.0f} ms  {ratio:6.1f}x python -c pass  {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
