"""The in-process tier: an LRU of ready-to-send answers, bounded by entries and by bytes."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

ENTRY_OVERHEAD = 256  # bytes per entry beyond its body: key, stamp, bookkeeping (an estimate)


@dataclass(slots=True)
class Entry:
    """One cached answer, stamped with the generation of each thing it was computed from."""

    body: bytes
    etag: str
    stamp: dict[str, int]  # dependency ("clips", "catalog", "ch:ID", ...) -> generation
    created: float  # wall-clock seconds when its computation began (shared across processes)
    expires: float  # wall-clock seconds after which it is never served

    @property
    def size(self) -> int:
        return len(self.body) + ENTRY_OVERHEAD


def etag_of(body: bytes) -> str:
    """A strong ETag from the bytes themselves (so equal answers share a tag everywhere)."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


class LocalTier:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self.expired = 0  # dropped because their time was up
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        # dependency -> keys of the entries stamped with it: a bump looks at those only
        self._by_dep: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry, now: float | None = None) -> None:
        if entry.size > self.max_bytes or self.max_entries == 0:
            return
        self.drop_expired(time.time() if now is None else now)
        self.drop(key)
        self._entries[key] = entry
        self.bytes += entry.size
        for dep in entry.stamp:
            self._by_dep.setdefault(dep, set()).add(key)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self.drop(next(iter(self._entries)))  # the least recently used
            self.evictions += 1

    def drop_expired(self, now: float) -> None:
        """Drop expired entries from the least recently used end, up to the first live one.

        An expired entry is never served, but until now it stayed until the LRU bounds pushed
        it out: with many different searches and no write to outdate them, a process's cache
        filled to `cache_max_mb` with answers nobody could be given (the serves' slow memory
        rise in the 30-minute soak, docs/reliability.md). Each put drops what it passes, so
        the work is amortized; an expired entry behind a live one goes when it is next read.
        """
        while self._entries:
            key, first = next(iter(self._entries.items()))
            if first.expires > now:
                return
            self.drop(key)
            self.expired += 1

    def drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self.bytes -= entry.size
        for dep in entry.stamp:
            keys = self._by_dep.get(dep)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_dep[dep]

    def clear(self) -> None:
        self._entries.clear()
        self._by_dep.clear()
        self.bytes = 0

    def drop_where(self, deps: Iterable[str], stale: Callable[[Entry], bool]) -> int:
        """Drop the entries stamped with any of `deps` that `stale` says are stale."""
        keys = {key for dep in deps for key in self._by_dep.get(dep, ())}
        dropped = [key for key in keys if stale(self._entries[key])]
        for key in dropped:
            self.drop(key)
        return len(dropped)
