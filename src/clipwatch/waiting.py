"""Waiting with a bound, without losing a cancel.

On Python 3.11, `asyncio.wait_for(awaitable, t)` swallows a cancel that arrives in the same
loop turn as the awaitable's result (it returns the result; fixed in 3.12): a loop that
waits on an event with `wait_for` and is cancelled just as the event is set carries on, and
whoever awaits its end waits for ever (the clip stream's hub did, in a CI run's teardown).
`asyncio.timeout` tells its own cancel from the caller's, so these use it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `event`; whether it is set. A cancel always propagates."""
    if event.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(seconds, 0.0)):
            await event.wait()
    return event.is_set()


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """`awaitable`'s result, or TimeoutError after `seconds`. A cancel always propagates."""
    async with asyncio.timeout(max(seconds, 0.0)):
        return await awaitable


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for its end. A cancel of the caller that arrives meanwhile
    still propagates (a bare `suppress(CancelledError)` around the await swallows it too);
    one the caller had already taken (cleaning up in a `finally`) does not stop the cleanup."""
    current = asyncio.current_task()
    before = current.cancelling() if current is not None else 0
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if current is not None and current.cancelling() > before:
            raise


async def bounded(awaitable: Awaitable[Any], seconds: float) -> bool:
    """A stop step that must not hold a stop for ever: whether `awaitable` finished within
    `seconds`. If not, it is cancelled and given one more second, then left; the caller says
    which step it was (a process that does not stop and says nothing cannot be diagnosed)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=max(seconds, 0.0))
    if done:
        task.result()  # its error, if any, is the caller's
        return True
    task.cancel()
    await asyncio.wait({task}, timeout=1.0)
    return False
