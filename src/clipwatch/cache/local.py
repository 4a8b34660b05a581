"""The in-process tier: an LRU of ready-to-send answers, bounded by entries and by bytes."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
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
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size
            self.evictions += 1

    def drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.size

    def drop_where(self, stale: Callable[[Entry], bool]) -> int:
        """Drop every entry `stale` says is stale; how many were dropped."""
        keys = [key for key, entry in self._entries.items() if stale(entry)]
        for key in keys:
            self.drop(key)
        return len(keys)
