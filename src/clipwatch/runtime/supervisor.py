"""Supervision of the worker's tasks: each says how it is doing, and one that dies restarts.

Every task (sync, deliveries, hot data, and those to come) keeps a `TaskState`: its state,
its last success, its last error with the time, and how many times in a row it failed. A
task whose body raises something unexpected is restarted after a backoff (`RESTART_S`),
its traceback logged once per death. The states are written to `worker_task` every
`HEARTBEAT_S`, so `/api/v1/status` and `clipwatch status` show every worker process of the
scaled setup, and a process that stopped reporting shows as not alive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import workers
from clipwatch.monitoring.errors import ErrorTracker
from clipwatch.monitoring.logging import describe_error
from clipwatch.monitoring.metrics import track_supervisor
from clipwatch.waiting import wait_event

log = structlog.get_logger("clipwatch.worker")

HEARTBEAT_S = 5.0
# A process whose last report is older than this is taken for dead (missed 6 heartbeats).
ALIVE_S = 30.0
FORGET_AFTER = timedelta(days=1)
RESTART_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
ERROR_CHARS = 500


def now() -> datetime:
    return datetime.now(UTC)


def describe(error: BaseException | str) -> str:
    return describe_error(error, ERROR_CHARS)


def backoff(failures: int, first: float, cap: float) -> float:
    """`first`, doubled for every further failure in a row, never above `cap`."""
    if failures <= 0:
        return 0.0
    return float(min(cap, first * 2 ** min(failures - 1, 30)))


@dataclass
class TaskState:
    name: str
    state: str = "starting"  # starting | running | idle | failing | restarting | stopped
    started_at: datetime = field(default_factory=now)
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    restarts: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def working(self) -> None:
        self.state = "running"

    def succeeded(self, **detail: Any) -> bool:
        """Record a success; whether it ends a run of failures (worth one log line)."""
        recovered = self.consecutive_failures > 0
        self.state = "idle"
        self.last_success_at = now()
        self.consecutive_failures = 0
        self.detail.update(detail)
        return recovered

    def failed(self, error: BaseException | str) -> bool:
        """Record a failure; whether it is news (the first in a row, or a different error),
        so a failure repeated every few seconds is logged once."""
        text = describe(error)
        news = self.consecutive_failures == 0 or text != self.last_error
        self.state = "failing"
        self.last_error = text
        self.last_error_at = now()
        self.consecutive_failures += 1
        return news

    def row(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "state": self.state,
            "started_at": self.started_at,
            "heartbeat_at": now(),
            "last_success_at": self.last_success_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "consecutive_failures": self.consecutive_failures,
            "restarts": self.restarts,
            "detail": dict(self.detail),
        }


async def wait_for_stop(stop: asyncio.Event, seconds: float) -> None:
    await wait_event(stop, seconds)


TaskBody = Callable[[TaskState], Awaitable[None]]


class Supervisor:
    """The tasks of one worker process."""

    def __init__(
        self,
        worker: str,
        *,
        restart_s: tuple[float, ...] = RESTART_S,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.worker = worker
        self.tasks: dict[str, TaskState] = {}
        self.restart_s = restart_s
        self.heartbeat_s = heartbeat_s
        self._report_failing = False
        # Where a task's death is grouped and counted (monitoring/errors.py); run_worker sets it.
        self.errors: ErrorTracker | None = None
        track_supervisor(self)

    def task(self, name: str) -> TaskState:
        return self.tasks.setdefault(name, TaskState(name))

    @property
    def running(self) -> bool:
        return any(t.state != "stopped" for t in self.tasks.values())

    async def run(self, name: str, body: TaskBody, stop: asyncio.Event) -> None:
        """Run `body` until it returns (it returns when `stop` is set); restart it when it
        raises, after a backoff that grows while it keeps dying."""
        state = self.task(name)
        try:
            while True:
                try:
                    await body(state)
                    return
                except Exception as exc:
                    state.failed(exc)
                    state.restarts += 1
                    state.state = "restarting"
                    log.exception("worker_task_died", task=name, restarts=state.restarts)
                    if self.errors is not None:
                        await self.errors.record(exc, where=name)  # never raises
                delay = self.restart_s[min(state.consecutive_failures, len(self.restart_s)) - 1]
                await wait_for_stop(stop, delay)
                if stop.is_set():
                    return
        finally:
            state.state = "stopped"

    async def report(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        rows = [t.row() for t in self.tasks.values()]
        async with session_scope(sessionmaker) as session:
            await workers.report_tasks(session, self.worker, rows)
            await workers.forget_workers_before(session, now() - FORGET_AFTER)

    async def report_forever(
        self, sessionmaker: async_sessionmaker[AsyncSession], stop: asyncio.Event
    ) -> None:
        """Heartbeats until `stop`. A failed report is logged once while reports keep
        failing (the database is down, say): the tasks go on regardless."""
        while not stop.is_set():
            await self.try_report(sessionmaker)
            await wait_for_stop(stop, self.heartbeat_s)

    async def try_report(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        try:
            await self.report(sessionmaker)
        except Exception as exc:
            if not self._report_failing:
                log.warning("worker_report_failed", error=describe(exc))
            self._report_failing = True
        else:
            if self._report_failing:
                log.info("worker_report_recovered")
            self._report_failing = False
