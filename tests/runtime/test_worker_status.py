"""The worker's tasks say how they are doing, in this process and in `/api/v1/status` and
`clipwatch status` (through `worker_task`), and one that dies is restarted."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.runtime import worker
from clipwatch.runtime.supervisor import Supervisor
from clipwatch.runtime.worker import WorkerStats, run_worker
from clipwatch.twitch import sync
from tests.processes import CLIPWATCH
from tests.twitch.conftest import Sim

DEADLINE_S = 20.0


async def until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """The first truthy answer of `check`, polled until the deadline."""
    async with asyncio.timeout(DEADLINE_S):
        while True:
            answer = await check()
            if answer:
                return answer
            await asyncio.sleep(0.02)
    raise AssertionError(what)  # pragma: no cover - the timeout raises first


def tasks_of(body: dict[str, Any], worker_name: str) -> dict[str, dict[str, Any]]:
    for report in body["workers"]:
        if report["worker"] == worker_name:
            return {t["task"]: t for t in report["tasks"]}
    return {}


async def test_a_dying_delivery_task_is_restarted_and_status_tells(
    twitch_settings: Settings,
    sim: Sim,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    monkeypatch: Any,
) -> None:
    sim.twitch.add_channel("alpha", clips=25, years=0.05)
    async with sim.client() as helix:
        await sync.add_channels(helix, sessionmaker, ["alpha"])
    real = worker.deliver_due
    broken = True
    calls = 0

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if broken:
            raise ZeroDivisionError("a bug in one pass")
        return await real(*args, **kwargs)

    monkeypatch.setattr(worker, "deliver_due", flaky)
    name = "test-host:4242"
    stats = WorkerStats(supervisor=Supervisor(name, restart_s=(0.02, 0.05), heartbeat_s=0.05))
    stop = asyncio.Event()

    async def status() -> dict[str, Any]:
        answer = await client.get("/api/v1/status")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async with sim.client() as helix:
        running = asyncio.create_task(
            run_worker(twitch_settings, helix, sessionmaker, interval=3600, stop=stop, stats=stats)
        )
        try:
            # While deliveries keep dying: restarted again and again, shown as a problem;
            # the sync task is not affected.
            await until(lambda: _true(stats.passes >= 1 and calls >= 3), "sync pass and deaths")
            body = await until(
                lambda: _when(
                    status(),
                    lambda b: (
                        tasks_of(b, name).get("deliveries", {}).get("restarts", 0) >= 2
                        and tasks_of(b, name)["sync"]["last_success_at"] is not None
                    ),
                ),
                "restarts in status",
            )
            deliveries = tasks_of(body, name)["deliveries"]
            assert deliveries["last_error"] == "ZeroDivisionError: a bug in one pass"
            assert deliveries["state"] in ("restarting", "running")
            assert tasks_of(body, name)["sync"]["consecutive_failures"] == 0
            assert any(name in p and "deliveries" in p for p in body["problems"]), body
            assert stats.running

            broken = False  # the bug goes away: the task comes back by itself
            body = await until(
                lambda: _when(
                    status(),
                    lambda b: (
                        tasks_of(b, name).get("deliveries", {}).get("state") in ("idle", "running")
                        and tasks_of(b, name)["deliveries"]["consecutive_failures"] == 0
                    ),
                ),
                "deliveries recovered",
            )
            # The worker is no problem any more; the bug itself is, counted by error
            # tracking for a day.
            assert not any(name in p for p in body["problems"]), body
            bug = "ZeroDivisionError at clipwatch/runtime/worker.py:deliver_forever"
            assert any(bug in p for p in body["problems"]), body
            assert tasks_of(body, name)["deliveries"]["last_success_at"] is not None
        finally:
            stop.set()
            await asyncio.wait_for(running, DEADLINE_S)
    assert not stats.running
    body = await status()
    assert {t["state"] for t in tasks_of(body, name).values()} == {"stopped"}
    assert [w["alive"] for w in body["workers"] if w["worker"] == name] == [False]
    # A worker that stopped cleanly is no problem (the bug it met still is, for a day).
    assert [p for p in body["problems"] if "unexpected error" not in p] == []


async def _true(value: bool) -> bool:
    return value


async def _when(
    answer: Awaitable[dict[str, Any]], test: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    body = await answer
    return body if test(body) else None


async def test_clipwatch_status_shows_every_worker_and_its_problems(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    supervisor = Supervisor("other-host:77")
    supervisor.task("sync").succeeded(passes=3)
    supervisor.task("deliveries").failed(OSError("Discord did not answer"))
    await supervisor.report(sessionmaker)
    env = {**os.environ, "CLIPWATCH_DATABASE_URL": settings.database_url}
    env["CLIPWATCH_SECRET_KEY"] = "x" * 32
    for key in ("CLIPWATCH_TWITCH_CLIENT_ID", "CLIPWATCH_TWITCH_CLIENT_SECRET"):
        env.pop(key, None)

    async def status(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            CLIPWATCH,
            "status",
            *args,
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, " ".join(out.decode().split())

    code, shown = await status()
    assert code == 0, shown
    assert "other-host:77" in shown
    assert "deliveries failing" in shown
    assert "Discord did not answer" in shown
    code, _ = await status("--check")
    assert code == 1
