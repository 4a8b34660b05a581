"""Where the next Get Clips window should end, and when one is too full to finish reading.

Get Clips yields about 1,000 clips a query, sorted by views, so a backfill reads time windows
small enough to stay under that cap (twitch/sync.py). Every request counts against the
budget, so the windows should need as few pages as possible: full enough that their last,
partial page is a small share, never so full that they are cut (a cut window's pages are
read again as smaller windows). Three estimates keep both costs down:

- **Density.** The clips a finished window held, per second of it, size the next window:
  `TARGET` clips' worth (growth bounded per step, so one sparse window does not jump over a
  busy stretch).
- **Views.** Pages come most viewed first, so after k pages the k·100th clip's views `v`
  say how full the window is: if a share `F(v)` of the channel's clips have at least `v`
  views, the window holds about k·100 / F(v). `F` comes from the clips of the windows read
  to the end so far (a bounded reservoir). A window estimated over the cap is cut after its
  first pages instead of its ninth.
- **Where in a cut window the clips are.** The clips read before a cut are the window's most
  viewed, and views do not depend on the time of day: their `created_at` spread is a sample
  of the whole window's. The windows that follow inside the cut one end where that sample
  (scaled to the estimated total) says `TARGET` clips have accumulated, so a busy day inside
  a quiet week gets windows of its own at once instead of after halving after halving.

They are estimates: a window that reaches `CAP_GUARD` clips is still cut as before, and a
wrong estimate costs pages, never clips.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

CAP_GUARD = 900  # Twitch stops near 1,000 a query; a window this full may have been cut
TARGET = 700  # clips a window is sized for: 7-8 pages, well under the guard
# Wide windows are reported to leave clips out (reference §3.3: issues #48, #80); windows of
# a month are reported complete. Four weeks at most.
MAX_WINDOW = timedelta(days=28)
MIN_WINDOW = timedelta(seconds=1)
FIRST_WINDOW = timedelta(days=1)
MAX_GROWTH = 4.0  # a window at most this many times the previous one
MIN_SAMPLE = 300  # views of this many clips before the views estimate is trusted
RESERVOIR = 20_000  # views kept for the estimate (a uniform sample of the walk's clips)
PAGE = 100


@dataclass
class _Forecast:
    """What a cut window's clips said of where its clips are: `weight` clips per sampled
    `created_at` in [start, end)."""

    start: datetime
    end: datetime
    times: list[datetime]  # sorted
    weight: float


@dataclass
class WindowPlanner:
    """The windows of one walk over a channel's history (one backfill or pass)."""

    size: timedelta = FIRST_WINDOW
    max_window: timedelta = MAX_WINDOW
    min_window: timedelta = MIN_WINDOW
    seen: int = 0  # clips of finished windows offered to the reservoir
    _forecasts: list[_Forecast] = field(default_factory=list)  # innermost last
    _views: list[int] = field(default_factory=list)  # sorted
    _rng: random.Random = field(default_factory=lambda: random.Random(0))

    def window_end(self, start: datetime, end: datetime) -> datetime:
        """Where the window starting at `start` should end (at most `end`): on a whole
        second, as Twitch's timestamps and the request's parameters are."""
        planned = self._planned_end(start, end)
        if planned >= end:
            return end
        whole = planned.replace(microsecond=0)
        return whole if whole > start else min(start + self.min_window, end)

    def _planned_end(self, start: datetime, end: datetime) -> datetime:
        limit = min(end, start + self.max_window)
        while self._forecasts and start >= self._forecasts[-1].end:
            self._forecasts.pop()
        if not self._forecasts:
            return min(start + self.size, limit)
        forecast = self._forecasts[-1]
        # Inside a cut window: end where the sample says TARGET clips have accumulated.
        first = bisect.bisect_left(forecast.times, start)
        allowed = max(int(TARGET / forecast.weight), 1)
        index = first + allowed
        if index >= len(forecast.times):
            # The rest of the cut window holds fewer than TARGET by the sample.
            return min(forecast.end, limit)
        stop = forecast.times[index]  # the first sampled clip that would be one too many
        return max(min(stop, limit), min(start + self.min_window, limit))

    def finished(self, start: datetime, end: datetime, views: list[int]) -> None:
        """The window [start, end) was read to the end and held clips with these views."""
        for view in views:
            self._sample(view)
        span = end - start
        if not views:
            grown = self.size * MAX_GROWTH
        else:
            grown = min(span * (TARGET / len(views)), self.size * MAX_GROWTH)
        self.size = max(min(grown, self.max_window), self.min_window)

    def estimate(self, views: list[int]) -> float | None:
        """How many clips a window holds whose most viewed `len(views)` clips (in the
        order Twitch sent them) had these views; None while too little is known."""
        if self.seen < MIN_SAMPLE or not views:
            return None
        share = self._share_at_least(min(views))
        if share <= 0:
            return None
        return len(views) / share

    def too_full(self, views: list[int]) -> float | None:
        """After a page: the estimated size of a window that will not fit (None while it
        may). The first pages' estimate is rough, so it must be further over the guard."""
        guess = self.estimate(views)
        if guess is None:
            return None
        pages = max(len(views) // PAGE, 1)
        if guess > CAP_GUARD * (1 + 0.3 / math.sqrt(pages)):
            return guess
        return None

    def cut(
        self,
        start: datetime,
        end: datetime,
        times: list[datetime],
        estimate: float | None,
    ) -> None:
        """The window [start, end) was cut after reading clips created at `times`, holding
        about `estimate` clips (None: unknown, at least the guard)."""
        total = max(estimate or CAP_GUARD * 1.25, CAP_GUARD, len(times))
        inside = sorted(t for t in times if start <= t < end)
        self.size = max((end - start) * min(TARGET / total, 0.5), self.min_window)
        while self._forecasts and self._forecasts[-1].start == start:
            self._forecasts.pop()  # what this cut says of the window replaces the older view
        if len(inside) >= 10:
            self._forecasts.append(_Forecast(start, end, inside, total / len(inside)))

    def _share_at_least(self, view: int) -> float:
        """The share of sampled clips with at least `view` views."""
        index = bisect.bisect_left(self._views, view)
        return (len(self._views) - index) / len(self._views)

    def _sample(self, view: int) -> None:
        self.seen += 1
        if len(self._views) < RESERVOIR:
            bisect.insort(self._views, view)
            return
        slot = self._rng.randrange(self.seen)
        if slot < RESERVOIR:  # reservoir sampling: every clip seen equally likely kept
            self._views.pop(self._rng.randrange(len(self._views)))
            bisect.insort(self._views, view)
