"""A cancel that arrives as the awaited thing finishes is never lost (clipwatch/waiting.py):
on Python 3.11 `asyncio.wait_for` swallowed it, and the clip stream's hub ran on after its
close, which then waited for ever."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from clipwatch.waiting import bounded, cancel_and_wait, wait_event, within

DEADLINE_S = 5.0


async def _until(condition: Callable[[], bool]) -> None:
    until = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < until, "the loop never waited"
        await asyncio.sleep(0)  # one turn of the loop: the task runs to its wait


async def test_a_cancel_in_the_turn_the_event_is_set_stops_the_waiter() -> None:
    event = asyncio.Event()
    turns = 0

    async def loop() -> None:
        nonlocal turns
        while True:  # a loop that only a cancel ends, as the hub's
            await wait_event(event, 30)
            event.clear()
            turns += 1

    task = asyncio.create_task(loop())
    await _until(lambda: bool(event._waiters))  # parked in wait_event; no public way to ask
    event.set()
    task.cancel()  # the same turn: the event's waiter is done when the cancel lands
    done, _ = await asyncio.wait({task}, timeout=DEADLINE_S)
    assert task in done, "the cancel was swallowed: the loop is still running"
    assert task.cancelled()
    assert turns == 0


async def test_a_cancel_in_the_turn_the_result_comes_stops_the_waiter() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    got: list[int] = []

    async def loop() -> None:
        while True:
            got.append(await within(queue.get(), 30))

    task = asyncio.create_task(loop())
    await _until(lambda: bool(queue._getters))  # parked in queue.get()
    queue.put_nowait(1)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=DEADLINE_S)
    assert task in done, "the cancel was swallowed: the loop is still running"
    assert task.cancelled()


async def test_the_bounds_hold() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    assert await wait_event(event, -1) is False
    event.set()
    assert await wait_event(event, 0) is True
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.01)
    assert await within(asyncio.sleep(0, result=7), 1) == 7


async def test_cancel_and_wait_ends_the_task_and_keeps_the_callers_cancel() -> None:
    forever = asyncio.create_task(asyncio.Event().wait())
    await cancel_and_wait(forever)
    assert forever.cancelled()

    stubborn_started = asyncio.Event()

    async def stubborn() -> None:  # takes a while to end once cancelled
        try:
            stubborn_started.set()
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(asyncio.sleep(0.2))

    inner = asyncio.create_task(stubborn())
    await stubborn_started.wait()
    closer = asyncio.create_task(cancel_and_wait(inner))
    await _until(lambda: inner.cancelling() > 0)
    closer.cancel()  # the caller is cancelled while it waits
    done, _ = await asyncio.wait({closer}, timeout=DEADLINE_S)
    assert closer in done
    assert closer.cancelled(), "the caller's cancel was swallowed"


async def test_cancel_and_wait_in_a_cleanup_after_a_cancel_finishes_the_cleanup() -> None:
    cleaned: list[str] = []
    helper = asyncio.create_task(asyncio.Event().wait())
    parked = asyncio.Event()

    async def owner() -> None:
        try:
            parked.set()
            await asyncio.Event().wait()
        finally:  # the cancel was taken: cleaning up goes on to the end
            await cancel_and_wait(helper)
            cleaned.append("done")

    task = asyncio.create_task(owner())
    await parked.wait()
    task.cancel()
    await asyncio.wait({task}, timeout=DEADLINE_S)
    assert task.cancelled()
    assert helper.cancelled()
    assert cleaned == ["done"]


async def test_a_stop_step_that_hangs_is_left_after_its_bound() -> None:
    """A step that swallows its cancel and waits for ever (a close stuck on a broken
    connection) holds the stop its bound plus one second, then is left; a quick step's result
    and error come through."""
    release = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await release.wait()  # the cancel is swallowed: it never ends by itself

    started = time.monotonic()
    assert await bounded(stuck(), 0.2) is False
    took = time.monotonic() - started
    # At least its bound and the second's grace; the upper bound only shows it was left (the
    # step would hold for an hour), wide for a loaded machine.
    assert 1.1 <= took < 10.0, took
    release.set()

    async def quick() -> int:
        return 1

    assert await bounded(quick(), 1.0) is True

    async def broken() -> None:
        raise RuntimeError("closing failed")

    with pytest.raises(RuntimeError, match="closing failed"):
        await bounded(broken(), 1.0)
