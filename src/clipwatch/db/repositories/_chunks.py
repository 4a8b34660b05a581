"""Long lists of keys read in pieces: one `IN (…)` of at most IN_CHUNK values a statement."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

K = TypeVar("K", int, str)
# Far under both databases' bound-parameter limits (SQLite 32,766, PostgreSQL 32,767), and short
# enough that a statement's plan stays an index probe per value.
IN_CHUNK = 500


def in_chunks(keys: Iterable[K], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    """The distinct keys, sorted, in lists of at most `size`."""
    ordered = sorted(set(keys))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]
