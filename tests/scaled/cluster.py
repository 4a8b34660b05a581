"""The scaled setup as an operator runs it, in processes of its own: a PostgreSQL cluster
(initdb on a spare port, so it can be stopped), a redis-server, the Twitch and Discord
simulators, N `clipwatch serve --no-worker` and M `clipwatch worker`.

Used by tests/scaled/test_scaled.py and bench/load.py. Every wait has a deadline; everything
is stopped by its handle (PID, data directory) when the `cluster()` context exits, also on
failure.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.conftest import SERVER_START_S, RedisServer, free_port
from tests.processes import CLIPWATCH, TwitchProcess, simulator

PG_BIN = Path(os.environ.get("CLIPWATCH_PG_BIN", "/usr/local/bin"))
PG_USER = "postgres"
PG_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0
READY_DEADLINE_S = 180.0
DATABASE = "clipwatch"
REDIS_PREFIX = "scaled"
CHANNELS = 20
DRAIN_S = 1.5


def log(line: str) -> None:
    """A progress line (shown by pytest -s and by bench/load.py)."""
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def _as_postgres() -> list[str]:
    """PostgreSQL refuses to run as root: its commands run as the `postgres` OS user."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", PG_USER, "--"]


def _run(command: list[str], timeout: float = PG_DEADLINE_S) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command[-4:]} failed: {(done.stderr or done.stdout)[-2000:]}")


class Postgres:
    """A PostgreSQL 15 cluster of its own: initdb into a temporary directory readable by the
    `postgres` user, fsync off, started and stopped with pg_ctl on its data directory."""

    def __init__(self) -> None:
        # Outside pytest's 0700 temporary tree: the postgres user must reach the data dir.
        self.root = Path(tempfile.mkdtemp(prefix="clipwatch-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.stopped_at: float | None = None
        self.started_at: float | None = None

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def dsn(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{DATABASE}"

    def init(self) -> None:
        self.data.mkdir()
        self.log.touch()
        if os.geteuid() == 0:
            shutil.chown(self.data, PG_USER, PG_USER)
            shutil.chown(self.log, PG_USER, PG_USER)
        _run(
            [
                *_as_postgres(),
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            ]
        )
        self.start()
        asyncio.run(self._create_database())

    async def _create_database(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.data} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c shared_buffers=32MB -c max_connections=200"
        )
        _run(
            [
                *_as_postgres(),
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(PG_DEADLINE_S)),
                "start",
            ]
        )
        self.started_at = time.monotonic()

    def stop(self, mode: str = "fast") -> None:
        """Stopped by its data directory (pg_ctl reads the postmaster's PID from it)."""
        if not (self.data / "postmaster.pid").exists():
            return
        _run(
            [
                *_as_postgres(),
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                mode,
                "-w",
                "-t",
                str(int(STOP_DEADLINE_S)),
                "stop",
            ]
        )
        self.stopped_at = time.monotonic()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pid(self) -> int | None:
        return self._postmaster_pid()

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pid = self._postmaster_pid()  # pg_ctl failed: the postmaster by its own PID
            if pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.dsn, timeout=5)
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()

        return asyncio.run(run())


@dataclass
class Proc:
    """One clipwatch process (`serve --no-worker` or `worker`), restartable, with its log."""

    kind: str
    index: int
    env: dict[str, str]
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    kills: list[float] = field(default_factory=list)  # time.time() of each kill -9
    pids: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.index}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def worker_name(self) -> str:
        """What the process reports itself as in `worker_task` (twitch/sync.worker_name)."""
        assert self.process is not None
        return f"{socket.gethostname()}:{self.process.pid}"

    def command(self) -> list[str]:
        if self.kind == "serve":
            return [CLIPWATCH, "serve", "--no-worker", "--port", str(self.port)]
        return [CLIPWATCH, "worker"]

    def start(self) -> None:
        if self.kind == "serve" and not self.port:
            self.port = free_port()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.pids.append(self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        """SIGTERM and wait for it to end (killed at the deadline)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.wait(timeout=STOP_DEADLINE_S)
            raise RuntimeError(
                f"{self.name} did not stop on SIGTERM in {STOP_DEADLINE_S} s"
            ) from exc

    def kill9(self) -> None:
        assert self.process is not None
        self.kills.append(time.time())
        self.process.kill()
        self.process.wait(timeout=STOP_DEADLINE_S)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_DEADLINE_S)


class Cluster:
    """The running setup. Built by `cluster()`; its methods are the faults and the checks."""

    def __init__(self, workdir: Path, pg: Postgres, redis: RedisServer) -> None:
        self.workdir = workdir
        self.pg = pg
        self.redis = redis
        self.twitch: TwitchProcess | None = None
        self.discord = ""
        self.serves: list[Proc] = []
        self.workers: list[Proc] = []
        self.webhooks: list[str] = []  # webhook ids, one per route
        self._clips_stop = threading.Event()
        self._clips_thread: threading.Thread | None = None
        self.clips_added = 0
        self.out_of_rotation: set[str] = set()  # serves a load balancer would not send to
        self.ops = threading.Lock()  # one fault on processes at a time (restarts, kills)

    @property
    def processes(self) -> list[Proc]:
        return [*self.serves, *self.workers]

    # --- readiness ----------------------------------------------------------------------------

    def serve_ready(self, proc: Proc) -> bool:
        try:
            return httpx.get(f"{proc.base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def worker_ready(self, proc: Proc, since: datetime) -> bool:
        """The worker wrote a heartbeat into `worker_task` after `since` (it reports every
        5 s; a report that fails while the database is down is retried at the next)."""
        if not proc.alive():
            return False
        try:
            rows = self.pg.query(
                "SELECT max(heartbeat_at) FROM worker_task WHERE worker = $1", proc.worker_name
            )
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        latest = rows[0][0] if rows else None
        return latest is not None and latest > since

    def describe(self, proc: Proc) -> str:
        """A process's state in a line, for a failure message."""
        if proc.kind == "serve":
            try:
                answer = httpx.get(f"{proc.base}/readyz", timeout=2)
                state = f"/readyz {answer.status_code} {answer.text[:200]}"
            except httpx.HTTPError as exc:
                state = f"/readyz {type(exc).__name__}"
        else:
            state = f"pid {proc.process.pid if proc.process else None}"
        return f"{proc.name} (alive: {proc.alive()}, {state}, log {proc.log_path})"

    def ready(self, proc: Proc, since: datetime | None = None) -> bool:
        if not proc.alive():
            return False
        if proc.kind == "serve":
            return self.serve_ready(proc)
        return self.worker_ready(proc, since or datetime.fromtimestamp(0, UTC))

    def wait_ready(
        self, procs: list[Proc], since: datetime, deadline_s: float = READY_DEADLINE_S
    ) -> dict[str, float]:
        """Until every one of `procs` is ready: seconds each took, from now."""
        started = time.monotonic()
        took: dict[str, float] = {}
        while len(took) < len(procs):
            for proc in procs:
                if proc.name not in took:
                    assert proc.alive(), f"{proc.name} exited (see {proc.log_path})"
                    if self.ready(proc, since):
                        took[proc.name] = time.monotonic() - started
            if len(took) < len(procs):
                if time.monotonic() - started >= deadline_s:
                    waiting = [self.describe(p) for p in procs if p.name not in took]
                    raise AssertionError(f"not ready in {deadline_s} s: {waiting}")
                time.sleep(0.1)  # polling interval while waiting on the condition above
        return took

    # --- faults -------------------------------------------------------------------------------

    def rotation(self) -> list[tuple[str, str]]:
        """The serves in service (name, base URL), as a load balancer sees them."""
        return [(p.name, p.base) for p in self.serves if p.name not in self.out_of_rotation]

    def restart(self, proc: Proc) -> float:
        """SIGTERM, wait, start again, wait until ready: the seconds from the start to ready.
        A serve is taken out of rotation first and drained, as a load balancer does."""
        with self.ops:
            if proc.kind == "serve":
                self.out_of_rotation.add(proc.name)
                # The drain: clients' idle connections (kept 1 s) expire; a fixed period.
                time.sleep(DRAIN_S)
            since = datetime.now(UTC)
            proc.terminate()
            proc.start()
            took = self.wait_ready([proc], since)[proc.name]
            self.out_of_rotation.discard(proc.name)
            return took

    def rolling_restart(self) -> dict[str, float]:
        return {proc.name: self.restart(proc) for proc in self.processes}

    def kill_random_worker(self, rng: random.Random) -> Proc:
        """`kill -9` of a worker, started again at once (its supervisor's job)."""
        with self.ops:
            proc = rng.choice(self.workers)
            proc.kill9()
            proc.start()
            return proc

    # --- clips appearing over time ------------------------------------------------------------

    def start_clips(self, every_s: float = 1.0, seed: int = 7) -> None:
        """A new clip on a random channel every `every_s` seconds, visible at once."""
        assert self.twitch is not None
        base = self.twitch.base
        ids = [c["id"] for c in httpx.get(f"{base}/_sim/channels").json()["data"]]
        rng = random.Random(seed)

        def run() -> None:
            with httpx.Client(timeout=5) as http:
                while not self._clips_stop.wait(every_s):
                    answer = http.get(
                        f"{base}/_sim/clip",
                        params={"broadcaster_id": rng.choice(ids), "visible": "now"},
                    )
                    answer.raise_for_status()
                    self.clips_added += 1

        self._clips_thread = threading.Thread(target=run, name="new-clips", daemon=True)
        self._clips_thread.start()

    def stop_clips(self) -> None:
        self._clips_stop.set()
        if self._clips_thread is not None:
            self._clips_thread.join(timeout=10)

    # --- what the simulators and the database hold --------------------------------------------

    def stored_ids(self) -> set[str]:
        return {r[0] for r in self.pg.query("SELECT id FROM clip")}

    def sync_states(self) -> list[tuple[Any, ...]]:
        """The channels behind (a backoff, a lease, an error): for a failure message."""
        rows = self.pg.query(
            "SELECT channel_id, lease_owner, next_try_at, consecutive_failures, last_error "
            "FROM channel_sync WHERE lease_owner IS NOT NULL OR next_try_at IS NOT NULL "
            "OR last_error IS NOT NULL"
        )
        return [tuple(r) for r in rows]

    def discord_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = httpx.get(
            f"{self.discord}/_sim/messages", timeout=10
        ).json()["messages"]
        return messages

    def rss_kb(self) -> dict[str, int]:
        """Each running process's resident memory (VmRSS, KiB)."""
        sizes: dict[str, int] = {}
        for proc in self.processes:
            if proc.process is None or not proc.alive():
                continue
            try:
                for line in Path(f"/proc/{proc.process.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes[proc.name] = int(line.split()[1])
            except OSError:
                continue
        return sizes


def _clipwatch(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [CLIPWATCH, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"clipwatch {args[:2]} failed: {done.stderr[-2000:]}")
    return done.stdout


@contextmanager
def cluster(
    workdir: Path,
    *,
    serves: int = 2,
    workers: int = 3,
    channels: int = CHANNELS,
    clips_per_channel: int = 30,
    years: float = 0.05,
    routes: int = 2,
    claim_seconds: int = 10,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Cluster]:
    """The whole setup, running and ready; everything stopped by handle at exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        pg = Postgres()
        stack.callback(pg.destroy)
        pg.init()
        redis = RedisServer(workdir)
        stack.callback(redis.stop)
        redis.start()
        specs = [
            a for i in range(channels) for a in ("--channel", f"chan{i:02d}:{clips_per_channel}")
        ]
        twitch_base, twitch_process = stack.enter_context(
            simulator("twitch", "--seed", "16", "--years", str(years), *specs)
        )
        discord_base, _ = stack.enter_context(simulator("discord", "--webhooks", "0"))
        c = Cluster(workdir, pg, redis)
        c.twitch = TwitchProcess(twitch_base, twitch_process)
        c.discord = discord_base
        stack.callback(c.stop_clips)
        env = c.twitch.env(
            pg.url,
            CLIPWATCH_REDIS_URL=redis.url,
            CLIPWATCH_REDIS_KEY_PREFIX=REDIS_PREFIX,
            CLIPWATCH_DISCORD_API_URL=f"{discord_base}/api/v10",
            CLIPWATCH_DELIVERY_CLAIM_SECONDS=str(claim_seconds),
            CLIPWATCH_LIVE_POLL_SECONDS="10",
            CLIPWATCH_LIVE_SYNC_SECONDS="10",
            CLIPWATCH_OFFLINE_SYNC_SECONDS="10",
            CLIPWATCH_SYNC_INTERVAL_SECONDS="10",
            CLIPWATCH_DELETION_CONFIRM_MINUTES="0",
            CLIPWATCH_DB_POOL_SIZE="5",
            CLIPWATCH_DB_MAX_OVERFLOW="5",
            CLIPWATCH_DB_POOL_TIMEOUT="5",
            CLIPWATCH_RATE_LIMIT_ANONYMOUS="1000000/minute",
            CLIPWATCH_LOG_FORMAT="json",
            CLIPWATCH_LOG_LEVEL="info",
            **(extra_env or {}),
        )
        _clipwatch(env, workdir, "db", "upgrade")
        _clipwatch(env, workdir, "users", "create", "owner")
        for i in range(routes):
            channel = f"9{i:017d}"
            httpx.post(f"{discord_base}/_sim/channels", params={"channel_id": channel})
            hook = httpx.post(f"{discord_base}/_sim/webhooks", params={"channel_id": channel})
            hook.raise_for_status()
            h = hook.json()
            c.webhooks.append(h["id"])
            url = f"https://discord.com/api/webhooks/{h['id']}/{h['token']}"
            _clipwatch(env, workdir, "routes", "add", "owner", f"route{i}", url)
        logins = [f"chan{i:02d}" for i in range(channels)]
        _clipwatch(env, workdir, "channels", "add", *logins)

        c.serves = [Proc("serve", i, env, workdir) for i in range(serves)]
        c.workers = [Proc("worker", i, env, workdir) for i in range(workers)]
        for proc in c.processes:
            stack.callback(proc.stop)
            proc.start()
        c.wait_ready(c.processes, datetime.fromtimestamp(0, UTC))
        yield c


@dataclass
class FaultLog:
    """When each fault happened (time.time()) and what recovery took."""

    restarts: dict[str, float] = field(default_factory=dict)  # process → seconds to ready
    kills: list[tuple[str, float]] = field(default_factory=list)  # (worker, when)
    redis_down: tuple[float, float] = (0.0, 0.0)
    pg_down: tuple[float, float] = (0.0, 0.0)  # stop issued, start returned
    pg_ready: dict[str, float] = field(default_factory=dict)  # seconds after the start
    pg_all_serves_ready_at: float = 0.0  # time.time() when every serve answered /readyz 200


def run_faults(
    c: Cluster,
    *,
    redis_s: float = 20.0,
    pg_s: float = 10.0,
    kill_every_s: float = 6.0,
    seed: int = 3,
    ready_deadline_s: float = 30.0,
    redis_with_restart: bool = False,
) -> FaultLog:
    """The issue's faults, while `kill -9` of a random worker every `kill_every_s` runs
    beside the first two: a rolling restart of every process; Redis stopped for `redis_s`
    (after the restart, or from its start with `redis_with_restart`); then, the kills
    paused, PostgreSQL stopped for `pg_s` and started, and every process waited for until
    ready (at most `ready_deadline_s`)."""
    faults = FaultLog()
    rng = random.Random(seed)
    stop_kills = threading.Event()

    def killer() -> None:
        while not stop_kills.wait(kill_every_s):
            proc = c.kill_random_worker(rng)
            faults.kills.append((proc.name, proc.kills[-1]))

    def redis_outage() -> None:
        down = time.time()
        c.redis.stop()
        time.sleep(redis_s)  # the outage's length: the fault itself, not a wait on a condition
        c.redis.start()
        faults.redis_down = (down, time.time())
        log("redis back")

    kills = threading.Thread(target=killer, name="kill-9", daemon=True)
    kills.start()
    outage = threading.Thread(target=redis_outage, name="redis-outage", daemon=True)
    try:
        if redis_with_restart:
            outage.start()  # beside the rolling restart: processes start without Redis too
        faults.restarts = c.rolling_restart()
        log(f"rolling restart done: {faults.restarts}")
        if not redis_with_restart:
            outage.start()
        outage.join(timeout=redis_s + SERVER_START_S + 10)
        assert not outage.is_alive(), "Redis did not come back"
    finally:
        stop_kills.set()
        kills.join(timeout=STOP_DEADLINE_S + READY_DEADLINE_S)
    # Every worker killed last is up before the database goes (its start needs it).
    c.wait_ready(c.workers, datetime.fromtimestamp(0, UTC))
    down = time.time()
    c.pg.stop()
    time.sleep(pg_s)  # the outage's length: the fault itself, not a wait on a condition
    c.pg.start()
    up = time.time()
    faults.pg_down = (down, up)
    log("postgresql back")
    faults.pg_ready = c.wait_ready(c.processes, datetime.now(UTC), ready_deadline_s)
    faults.pg_all_serves_ready_at = up + max(faults.pg_ready[p.name] for p in c.serves)
    log(f"ready after postgresql: {faults.pg_ready}")
    return faults
