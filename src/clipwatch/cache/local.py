"""The in-process tier: an LRU of ready-to-send answers, bounded by entries and by bytes."""

from __future__ import annotations

import hashlib
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

    def put(self, key: str, entry: Entry) -> None:
        if entry.size > self.max_bytes or self.max_entries == 0:
            return
        self.drop(key)
        self._entries[key] = entry
        self.bytes += entry.size
        for dep in entry.stamp:
            self._by_dep.setdefault(dep, set()).add(key)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self.drop(next(iter(self._entries)))  # the least recently used
            self.evictions += 1

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
