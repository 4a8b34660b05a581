"""Prometheus's own programs in tests: promtool, prometheus and Alertmanager (Debian's
`prometheus` and `prometheus-alertmanager` packages; `make deps` installs them).

Each server runs on spare ports with its configuration and data in the test's tmp_path, and
is stopped by its handle. Debian's systemd services are never used.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port, unavailable

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
START_DEADLINE_S = 30.0
INSTALL_HINT = "apt-get install prometheus prometheus-alertmanager, or make deps"


def binary(*names: str) -> str:
    """The first of these programs found; skipped when none is (failed with CI=true)."""
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    unavailable(f"{' or '.join(names)} (the program; {INSTALL_HINT})")
    raise AssertionError  # unavailable() never returns


def wait_for(
    check: Callable[[], Any], what: str, deadline_s: float, process: subprocess.Popen[bytes]
) -> Any:
    """Until `check()` returns something true (returned), failing when the process dies or
    the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while True:
        assert process.poll() is None, f"{what}: the process exited"
        try:
            found = check()
        except httpx.TransportError:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {deadline_s:.0f} s"
        time.sleep(0.1)  # polling interval while waiting on the condition above


@contextmanager
def running(
    command: list[str], workdir: Path, ready_url: str, name: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` started with its output in workdir/<name>.log, until `ready_url` answers
    200; terminated (then killed) by its handle afterwards."""
    log = (workdir / f"{name}.log").open("wb")
    process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for(
                lambda: httpx.get(ready_url, timeout=1).status_code == 200,
                f"{name} ready",
                START_DEADLINE_S,
                process,
            )
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n{(workdir / f'{name}.log').read_text()[-3000:]}"
            ) from None
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        log.close()


@contextmanager
def prometheus(workdir: Path, config: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Prometheus of the test's own with this configuration; yields its base URL and
    process."""
    program = binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(config)
    port = free_port()
    command = [
        program,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    base = f"http://127.0.0.1:{port}"
    with running(command, workdir, f"{base}/-/ready", "prometheus") as process:
        yield base, process


@contextmanager
def alertmanager(workdir: Path, config: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """An Alertmanager of the test's own (clustering off) with this configuration; yields
    its base URL and process. Debian names the program prometheus-alertmanager."""
    program = binary("prometheus-alertmanager", "alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(config)
    port = free_port()
    command = [
        program,
        f"--config.file={workdir / 'alertmanager.yml'}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port: a single instance
    ]
    base = f"http://127.0.0.1:{port}"
    with running(command, workdir, f"{base}/-/ready", "alertmanager") as process:
        yield base, process
