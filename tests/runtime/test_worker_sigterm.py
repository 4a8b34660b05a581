"""`clipwatch worker` stops on SIGTERM as `serve` does (a rolling restart, systemd, docker
stop): its tasks finish, report "stopped", and it exits 0 — not at once, as `kill -9` would
(a delivery Discord accepted would be sent again)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.processes import CLIPWATCH, twitch_simulator
from tests.twitch.test_kill_resume import empty, query

DEADLINE_S = 60.0


def test_sigterm_stops_the_worker_cleanly(sqlite_url: str, tmp_path: Path) -> None:
    # The signal handling is the process's, not the database's: one database is enough.
    database_url = sqlite_url
    empty(database_url)
    with twitch_simulator("--channel", "solo:5") as twitch:
        env = twitch.env(database_url, CLIPWATCH_LOG_FORMAT="json")
        worker = subprocess.Popen(
            [CLIPWATCH, "worker"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        name = f"{socket.gethostname()}:{worker.pid}"
        sql = f"SELECT task, state FROM worker_task WHERE worker = '{name}'"
        try:
            deadline = time.monotonic() + DEADLINE_S
            while not query(database_url, sql):
                assert worker.poll() is None, "the worker exited"
                assert time.monotonic() < deadline, "the worker never reported"
                time.sleep(0.1)  # polling interval while waiting on the condition above
            worker.send_signal(signal.SIGTERM)
            _, err = worker.communicate(timeout=DEADLINE_S)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=DEADLINE_S)
        assert worker.returncode == 0, err.decode()[-2000:]
        # Its last report, written as it stopped: the tasks that ran under the stop did stop.
        states = dict(query(database_url, sql))
        assert states["sync"] == states["deliveries"] == states["live_poll"] == "stopped", states
