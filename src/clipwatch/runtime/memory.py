"""Freed memory given back to the operating system, once a minute (glibc's `malloc_trim`).

A long-running process's resident memory followed its heap's high-water mark: glibc keeps
freed blocks for reuse, and a burst (a big search page, a sync pass over many clips) left
its peak resident for good. The 30-minute soak's serves rose ~0.5 MB a minute in a fixed
archive while the Python allocations tracemalloc saw stayed flat (docs/reliability.md).
Trimming returns the free top and whole free pages of every arena; live memory is untouched.
Elsewhere than glibc (musl, macOS) there is nothing to call, and this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

import structlog

TRIM_EVERY_S = 60.0
log = structlog.get_logger("clipwatch.runtime")


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


_TRIM = _malloc_trim()


def trim() -> bool:
    """Give freed heap back to the OS now; whether anything was released (False: nothing
    to release, or not glibc)."""
    return bool(_TRIM(0)) if _TRIM is not None else False


async def trim_forever(every: float = TRIM_EVERY_S) -> None:
    """Trim every `every` seconds until cancelled (a few milliseconds of one thread each)."""
    if _TRIM is None:
        log.info("malloc_trim_unavailable")
        return
    while True:
        await asyncio.sleep(every)  # the period: nothing to wait on but time
        trim()
