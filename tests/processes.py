"""Running clipwatch's own processes in tests: the console script, its simulators, waiting."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET
from tests.conftest import TEST_SECRET, free_port

CLIPWATCH = str(Path(sys.executable).parent / "clipwatch")
START_DEADLINE_S = 60.0


def wait_until_up(url: str, process: subprocess.Popen[bytes], what: str = "process") -> None:
    """Until `url` answers 200, failing at once if the process dies first."""
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        assert process.poll() is None, f"{what} exited"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{what} did not start in time"
        time.sleep(0.05)  # polling interval while waiting on the condition above


def stop_process(process: subprocess.Popen[bytes], what: str, seconds: float = 30.0) -> None:
    """SIGTERM, then wait; one that does not stop in `seconds` is killed and fails the test
    (after whatever failure is already on its way, which stays in the report)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{what} did not stop within {seconds:g} s of SIGTERM") from None


def log_tail(path: Path, chars: int = 4000) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return text[-chars:]


@dataclass(frozen=True)
class TwitchProcess:
    base: str
    process: subprocess.Popen[bytes]

    def env(self, database_url: str, **extra: str) -> dict[str, str]:
        """Settings for a clipwatch process that talks to this simulator."""
        return {
            **os.environ,
            "CLIPWATCH_DATABASE_URL": database_url,
            "CLIPWATCH_SECRET_KEY": TEST_SECRET,
            "CLIPWATCH_TWITCH_CLIENT_ID": CLIENT_ID,
            "CLIPWATCH_TWITCH_CLIENT_SECRET": CLIENT_SECRET,
            "CLIPWATCH_TWITCH_API_URL": f"{self.base}/helix",
            "CLIPWATCH_TWITCH_AUTH_URL": f"{self.base}/oauth2",
            **extra,
        }

    def truth(self) -> set[str]:
        """Every clip a complete archive of all its channels holds now."""
        ids: set[str] = set()
        for channel in httpx.get(f"{self.base}/_sim/channels").json()["data"]:
            answer = httpx.get(f"{self.base}/_sim/truth", params={"broadcaster_id": channel["id"]})
            ids |= set(answer.json()["ids"])
        return ids


@contextmanager
def simulator(kind: str, *args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`clipwatch simulate twitch|discord` on a spare port, answering; stopped by its handle
    afterwards. Yields its base URL and the process."""
    port = free_port()
    process = subprocess.Popen(
        [CLIPWATCH, "simulate", kind, "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    ready = "/_sim/channels" if kind == "twitch" else "/_sim/messages"
    try:
        wait_until_up(base + ready, process, f"the {kind} simulator")
        yield base, process
    finally:
        stop_process(process, f"the {kind} simulator", 15)


@contextmanager
def twitch_simulator(*args: str) -> Iterator[TwitchProcess]:
    with simulator("twitch", *args) as (base, process):
        yield TwitchProcess(base, process)


@contextmanager
def serving(
    workdir: Path, env: dict[str, str], *args: str, log_name: str = "serve.log"
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`clipwatch serve` on a spare port with `env`, output to workdir/log_name; stopped by
    its handle afterwards."""
    port = free_port()
    log = (workdir / log_name).open("wb")
    process = subprocess.Popen(
        [CLIPWATCH, "serve", "--port", str(port), *args],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_up(f"{base}/healthz", process, "clipwatch serve")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log ends:\n{log_tail(workdir / log_name)}") from None
        yield base, process
    finally:
        try:
            stop_process(process, "clipwatch serve")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log ends:\n{log_tail(workdir / log_name)}") from None
        finally:
            log.close()


@contextmanager
def python_process(
    script: str, *args: str, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -c script args…` with `env`, output dropped; stopped by its handle afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        stop_process(process, "the python process", 10)
