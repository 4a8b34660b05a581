"""The supervisor's pure parts and its restart loop (no database needed)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clipwatch.runtime.supervisor import ERROR_CHARS, Supervisor, TaskState, backoff, describe


async def reach(state: TaskState, wanted: str) -> None:
    async with asyncio.timeout(5):
        while True:
            if state.state == wanted:
                return
            await asyncio.sleep(0.005)


@given(st.integers(min_value=0, max_value=10_000), st.floats(0.1, 100), st.floats(1, 10_000))
def test_backoff_grows_and_stays_under_its_cap(failures: int, first: float, cap: float) -> None:
    delay = backoff(failures, first, cap)
    assert 0 <= delay <= max(cap, 0)
    if failures == 0:
        assert delay == 0
    elif failures == 1:
        assert delay == min(first, cap)
    else:
        assert delay >= min(backoff(failures - 1, first, cap), cap)


@given(st.text(max_size=5_000))
def test_an_error_line_is_one_bounded_line(text: str) -> None:
    line = describe(RuntimeError(text))
    assert "\n" not in line
    assert "\r" not in line
    assert len(line) <= ERROR_CHARS
    assert line.startswith("RuntimeError")


def test_an_error_line_carries_no_webhook_token() -> None:
    token = "A" * 68
    line = describe(f"POST https://discord.com/api/webhooks/123456789012345678/{token} failed")
    assert token not in line


def test_a_repeated_failure_is_news_once_and_a_success_ends_it() -> None:
    state = TaskState("sync")
    assert state.failed(OSError("database down")) is True
    assert state.failed(OSError("database down")) is False
    assert state.failed(OSError("something else")) is True
    assert state.consecutive_failures == 3
    assert state.state == "failing"
    assert state.succeeded(passes=1) is True
    assert (state.consecutive_failures, state.state, state.detail) == (0, "idle", {"passes": 1})
    assert state.last_error == "OSError: something else"  # kept for the record
    assert state.succeeded() is False


async def test_a_task_that_dies_is_restarted_until_it_runs() -> None:
    supervisor = Supervisor("host:1", restart_s=(0.01, 0.02))
    stop = asyncio.Event()
    runs = 0

    async def body(state: TaskState) -> None:
        nonlocal runs
        runs += 1
        state.working()
        if runs <= 3:
            raise ZeroDivisionError("a bug")
        state.succeeded()
        await stop.wait()

    task = asyncio.create_task(supervisor.run("deliveries", body, stop))
    state = supervisor.task("deliveries")
    await reach(state, "idle")
    assert (runs, state.restarts) == (4, 3)
    assert state.last_error == "ZeroDivisionError: a bug"
    assert supervisor.running
    stop.set()
    await asyncio.wait_for(task, 5)
    assert state.state == "stopped"
    assert not supervisor.running


async def test_a_stop_during_the_restart_backoff_ends_the_task() -> None:
    supervisor = Supervisor("host:1", restart_s=(3600.0,))
    stop = asyncio.Event()

    async def body(state: TaskState) -> None:
        raise RuntimeError("always")

    task = asyncio.create_task(supervisor.run("sync", body, stop))
    await reach(supervisor.task("sync"), "restarting")
    stop.set()
    await asyncio.wait_for(task, 5)  # not an hour
    assert supervisor.task("sync").state == "stopped"


async def test_cancellation_is_not_a_death() -> None:
    supervisor = Supervisor("host:1", restart_s=(0.01,))

    async def body(state: TaskState) -> None:
        state.working()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervisor.run("sync", body, asyncio.Event()))
    await reach(supervisor.task("sync"), "running")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (supervisor.task("sync").state, supervisor.task("sync").restarts) == ("stopped", 0)
