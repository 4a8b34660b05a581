"""The window planner (twitch/windows.py): sizes from density, early cuts from views."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from clipwatch.twitch.windows import (
    CAP_GUARD,
    MAX_WINDOW,
    MIN_SAMPLE,
    MIN_WINDOW,
    TARGET,
    WindowPlanner,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
FAR = T0 + timedelta(days=3650)


def pareto_views(rng: random.Random, n: int) -> list[int]:
    """Views as the simulator draws them (and as Twitch's long tail looks)."""
    return sorted((int(rng.paretovariate(1.1)) - 1 for _ in range(n)), reverse=True)


def test_the_next_window_holds_about_target_clips_at_the_last_density() -> None:
    planner = WindowPlanner()
    rng = random.Random(1)
    # 350 clips in a day: the next window should be about two days.
    planner.finished(T0, T0 + timedelta(days=1), pareto_views(rng, 350))
    start = T0 + timedelta(days=1)
    assert planner.window_end(start, FAR) == start + timedelta(days=1) * TARGET / 350
    # ... never past the walk's end.
    assert planner.window_end(start, start + timedelta(hours=1)) == start + timedelta(hours=1)


def test_growth_is_bounded_and_capped() -> None:
    planner = WindowPlanner()
    planner.finished(T0, T0 + timedelta(days=1), [])  # empty: grows, by MAX_GROWTH at most
    assert planner.window_end(T0, FAR) == T0 + timedelta(days=4)
    for _ in range(3):
        planner.finished(T0, T0 + timedelta(days=4), [])
    assert planner.window_end(T0, FAR) == T0 + MAX_WINDOW


def test_no_estimate_before_enough_clips_were_seen() -> None:
    planner = WindowPlanner()
    assert planner.estimate([5] * 100) is None
    views = pareto_views(random.Random(2), MIN_SAMPLE - 1)
    planner.finished(T0, T0 + timedelta(days=1), views)
    assert planner.estimate([5] * 100) is None


def test_the_views_estimate_finds_a_full_window_after_one_page() -> None:
    rng = random.Random(3)
    planner = WindowPlanner()
    for _ in range(10):
        planner.finished(T0, T0 + timedelta(days=1), pareto_views(rng, 500))
    busy = pareto_views(rng, 3_000)  # a window three times the cap
    guess = planner.too_full(busy[:100])
    assert guess is not None
    assert 1_500 < guess < 6_000
    quiet = pareto_views(rng, 400)
    assert planner.too_full(quiet[:100]) is None
    # A window of about the target size is not cut early.
    target = pareto_views(rng, TARGET)
    assert planner.too_full(target[:100]) is None


def test_a_cut_always_shrinks_and_follows_the_estimate() -> None:
    planner = WindowPlanner()
    end = T0 + timedelta(days=2)
    planner.cut(T0, end, [], None)
    assert planner.window_end(T0, FAR) <= T0 + timedelta(days=1)
    planner.cut(T0, end, [], TARGET * 4.0)
    assert planner.window_end(T0, FAR) == T0 + timedelta(hours=12)
    planner.cut(T0, end, [], 10.0)  # a cut never grows the window
    assert planner.window_end(T0, FAR) == T0 + timedelta(days=1)
    planner.cut(T0, T0 + MIN_WINDOW, [], 1e9)
    assert planner.window_end(T0, FAR) == T0 + MIN_WINDOW


def test_after_a_cut_the_windows_end_where_the_clips_read_say() -> None:
    """A quiet week holding one busy day: the clips read before the cut show where the
    day is, and the next windows fit around it instead of halving towards it."""
    rng = random.Random(4)
    busy = T0 + timedelta(days=3)
    times = sorted(
        [T0 + timedelta(seconds=rng.uniform(0, 7 * 86_400)) for _ in range(60)]
        + [busy + timedelta(seconds=rng.uniform(0, 86_400)) for _ in range(840)]
    )
    planner = WindowPlanner()
    week = T0 + timedelta(days=7)
    planner.cut(T0, week, times, 3_000.0)  # ~3,000 clips, 2,800 of them on the busy day
    first = planner.window_end(T0, week)
    assert busy <= first < busy + timedelta(hours=6)  # the quiet days before it, in one go
    second = planner.window_end(first, week)
    assert second - first < timedelta(hours=9)  # the busy day in TARGET-sized parts
    # Past the busy day, the rest of the week is one window.
    assert planner.window_end(busy + timedelta(days=1), week) == week
    # Every window moves the walk on, whatever the sample.
    at = T0
    for _ in range(200):
        nxt = planner.window_end(at, week)
        assert nxt > at
        at = nxt
        if at == week:
            break
    assert at == week


@settings(max_examples=200, deadline=None)
@given(
    spans=st.lists(
        st.tuples(
            st.floats(min_value=1, max_value=30 * 86_400, allow_nan=False),
            st.lists(st.integers(min_value=0, max_value=10**9), max_size=CAP_GUARD),
        ),
        max_size=20,
    ),
    read=st.lists(st.integers(min_value=0, max_value=10**9), max_size=1_000),
)
def test_sizes_stay_in_bounds_whatever_the_windows_held(
    spans: list[tuple[float, list[int]]], read: list[int]
) -> None:
    planner = WindowPlanner()
    for seconds, views in spans:
        planner.finished(T0, T0 + timedelta(seconds=seconds), views)
        assert MIN_WINDOW <= planner.window_end(T0, FAR) - T0 <= MAX_WINDOW
    guess = planner.estimate(read)
    assert guess is None or guess >= len(read)
