"""A 200 MB body to POST /discord/interactions, against a real `clipwatch serve`.

The figure: the time from the request's first byte to the 413's first byte, for a declared
Content-Length and for a chunked body, each as a ratio to the same server's answer to a 1 KB
request on the same path (the baseline, measured in the same run). Targets (issue #11): the
413 in under 100 ms, and the server's resident memory grown by under 5 MB over all the
runs. Also shown: how much of the body the client had pushed (into socket buffers) by then.
"""

from __future__ import annotations

import argparse
import select
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path

from bench.common import served

MB = 1_048_576
HUGE = 200 * MB
PIECE = b"x" * 65_536
TARGET_MS = 100.0
TARGET_RSS_MB = 5.0


@dataclass(frozen=True)
class Answer:
    status: int
    seconds: float  # request's first byte to the answer's first byte
    sent: int  # body bytes the client had sent when the answer began


def post(base: str, size: int, *, chunked: bool) -> Answer:
    """A body of `size` bytes sent as fast as the server takes it, read at the same time;
    sending stops when the answer begins."""
    host, port = base.removeprefix("http://").split(":")
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = f"POST /discord/interactions HTTP/1.1\r\nHost: {host}\r\n{framing}\r\n\r\n".encode()
    frame = b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE
    tail = PIECE[: size % len(PIECE)]
    last = (
        [b"%x\r\n%s\r\n" % (len(tail), tail) if tail else b"", b"0\r\n\r\n"] if chunked else [tail]
    )
    frames = chain(repeat(frame, size // len(PIECE)), last)
    with socket.create_connection((host, int(port))) as sock:
        sock.setblocking(False)
        started = time.perf_counter()
        pending, written, first, answered_at, sent = memoryview(head), 0, b"", 0.0, 0
        done = False
        while not first:
            wanted = [sock] if not done else []
            readable, writable, _ = select.select([sock], wanted, [], 30.0)
            if readable:
                first = sock.recv(65_536)
                answered_at, sent = time.perf_counter(), written - len(head)
                if not first:
                    raise RuntimeError("the server closed the connection without an answer")
            elif writable:
                if not pending:
                    following = next(frames, None)
                    if following is None:
                        done = True
                        continue
                    pending = memoryview(following)
                try:
                    count = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    done = True
                    continue
                pending, written = pending[count:], written + count
            elif not readable and not writable:
                raise RuntimeError("no answer within 30 s")
    return Answer(int(first.split(b" ", 2)[1]), answered_at - started, max(sent, 0))


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench body_limit", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="200 MB requests of each kind")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'body.db'}"
        with served(url, Path(tmp)) as server:
            for _ in range(20):  # warm-up: every path's first answer allocates
                post(server.base, 1024, chunked=False)
                post(server.base, 2 * MB, chunked=True)
            baseline = statistics.median(
                post(server.base, 1024, chunked=False).seconds for _ in range(50)
            )
            before = resident_mb(server.process.pid)
            results = {
                kind: [post(server.base, HUGE, chunked=kind == "chunked") for _ in range(args.runs)]
                for kind in ("declared", "chunked")
            }
            grown = resident_mb(server.process.pid) - before
    print(f"\n=== body limit benchmark: 200 MB to /discord/interactions, {args.runs} runs each ===")
    print(f"baseline: a 1 KB request answered in {baseline * 1000:.2f} ms (median of 50)")
    failed = grown >= TARGET_RSS_MB
    for kind, answers in results.items():
        statuses = {a.status for a in answers}
        median = statistics.median(a.seconds for a in answers)
        worst = max(a.seconds for a in answers)
        sent = max(a.sent for a in answers) / MB
        failed |= statuses != {413} or worst * 1000 >= TARGET_MS
        print(
            f"  {kind:<9} {sorted(statuses)} in {median * 1000:.2f} ms median, "
            f"{worst * 1000:.2f} ms worst (ratio {median / baseline:.1f} to the baseline; "
            f"target < {TARGET_MS:.0f} ms); at most {sent:.2f} MB of 200 sent by then"
        )
    print(f"  server memory grew {grown:+.2f} MB over all runs (target < {TARGET_RSS_MB:.0f} MB)")
    print("  " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
