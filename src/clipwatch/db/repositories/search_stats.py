"""How common each search word and each channel is, from PostgreSQL's own statistics.

`repositories/clip_search.py` prices three plans for a text search (walk a sort index, GIN
with every word, GIN with the exact words only) from these frequencies. PostgreSQL's
planner has the same numbers but cannot price our forced plans, and it treats every word
outside its most-common list as a few hundred matches.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

REFRESH_SECONDS = 600.0
_cache: dict[str, tuple[float, SearchStats]] = {}


@dataclass(frozen=True)
class SearchStats:
    """Most common lexemes (sorted) with their row frequencies; rarer ones are below `floor`.

    `channels` maps the most common broadcaster ids to their share of all rows; a channel
    missing from it is rarer than `channel_floor`.
    """

    lexemes: tuple[str, ...]
    freqs: tuple[float, ...]
    floor: float
    channels: dict[str, float] = field(default_factory=dict)
    channel_floor: float = 1.0
    rows: int = 0  # the table's rows as ANALYZE last counted them (0: never analyzed)

    def exact(self, word: str) -> float:
        i = bisect.bisect_left(self.lexemes, word)
        if i < len(self.lexemes) and self.lexemes[i] == word:
            return self.freqs[i]
        return self.floor / 2

    def prefix(self, word: str) -> float:
        lo = bisect.bisect_left(self.lexemes, word)
        hi = bisect.bisect_left(self.lexemes, word + "\U0010ffff")
        # Lexemes below the statistics' floor add up too: count at least one floor's worth.
        return min(1.0, sum(self.freqs[lo:hi]) + self.floor)

    def channel_share(self, broadcaster_ids: tuple[str, ...]) -> float:
        return min(1.0, sum(self.channels.get(b, self.channel_floor) for b in broadcaster_ids))


async def search_stats(session: AsyncSession) -> SearchStats:
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    cached = _cache.get(key)
    if cached and time.monotonic() - cached[0] < REFRESH_SECONDS:
        return cached[1]
    lexemes: tuple[str, ...] = ()
    freqs: tuple[float, ...] = ()
    channels: dict[str, float] = {}
    rows = (
        await session.execute(
            text(
                "SELECT attname, most_common_elems::text::text[], most_common_elem_freqs, "
                "most_common_vals::text::text[], most_common_freqs FROM pg_stats "
                "WHERE tablename = 'clip' AND attname IN ('search_vector', 'broadcaster_id') "
                "AND schemaname = current_schema()"
            )
        )
    ).all()
    for name, elems, elem_freqs, vals, val_freqs in rows:
        if name == "search_vector" and elems:
            # The frequency array ends with extra summary values (two for tsvector); drop them.
            pairs = sorted(zip(elems, elem_freqs[: len(elems)], strict=True))
            lexemes, freqs = tuple(p[0] for p in pairs), tuple(float(p[1]) for p in pairs)
        elif name == "broadcaster_id" and vals:
            channels = {v: float(f) for v, f in zip(vals, val_freqs, strict=True)}
    reltuples = (
        await session.execute(
            text("SELECT reltuples FROM pg_class WHERE oid = to_regclass('clip')")
        )
    ).scalar()
    stats = SearchStats(
        lexemes,
        freqs,
        min(freqs, default=0.0),
        channels,
        # Not among the most common values: at most as common as the least common of them.
        min(channels.values(), default=1.0),
        max(int(reltuples or 0), 0),  # -1: never analyzed
    )
    _cache[key] = (time.monotonic(), stats)
    return stats
