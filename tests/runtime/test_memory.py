"""Freed heap goes back to the OS (runtime/memory.py): blocks glibc kept after they were freed
(below a live block, so the heap's top cannot shrink by itself) leave the resident set when
trimmed; live memory stays."""

from __future__ import annotations

import asyncio
import sys

import pytest

from clipwatch.runtime import memory

pytestmark = pytest.mark.skipif(
    memory._TRIM is None, reason="malloc_trim is glibc's: nothing to call here"
)
MB = 1024 * 1024


def resident() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_freed_heap_leaves_the_resident_set_when_trimmed() -> None:
    assert sys.platform == "linux"
    memory.trim()
    # 64 KB blocks come from the heap (under glibc's mmap threshold), 160 MB of them, each
    # written so its pages are resident; one kept at the end pins the heap's top.
    blocks = [bytearray(b"x" * (64 * 1024 - 64)) for _ in range(2560)]
    keeper = bytearray(b"k" * (64 * 1024 - 64))
    with_blocks = resident()
    del blocks
    freed = resident()
    assert memory.trim()
    trimmed = resident()
    assert keeper[0] == ord("k")  # live memory is untouched
    assert with_blocks - freed < 40 * MB, "glibc gave the blocks back by itself"
    assert freed - trimmed > 100 * MB, (with_blocks, freed, trimmed)


async def test_trimming_goes_on_until_cancelled() -> None:
    task = asyncio.create_task(memory.trim_forever(every=0.01))
    await asyncio.sleep(0.05)  # several periods
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
