"""The retry schedule and its grouping: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from clipwatch.discord.delivery import JITTER, SCHEDULE, next_attempt, retry_due
from clipwatch.discord.sender import RetryLater

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FAILED = RetryLater("Discord answered 502")


def test_transient_failures_retry_quickly_at_first_then_on_a_long_tail() -> None:
    waits = [next_attempt(n, NOW, 0) for n in range(1, 6)]
    assert [w - NOW for w in waits if w] == [
        timedelta(seconds=2),
        timedelta(seconds=10),
        timedelta(seconds=30),
        timedelta(minutes=1),
        timedelta(minutes=5),
    ]
    assert SCHEDULE[-1] == timedelta(hours=10)
    assert next_attempt(len(SCHEDULE), NOW) is None  # the dead-letter point
    assert timedelta(hours=24) < sum(SCHEDULE, timedelta(0)) < timedelta(hours=30)


def test_a_30_second_outage_is_over_within_a_minute_of_attempts() -> None:
    """Attempts after the first failure at 0 s: the one after a 30 s outage comes soon."""
    at, times = NOW, []
    for n in range(1, 5):
        due = next_attempt(n, at, 1.0)  # the most jitter
        assert due is not None
        at = due
        times.append((at - NOW).total_seconds())
    after_return = min(t for t in times if t >= 30) - 30
    assert after_return <= 30


@given(st.integers(0, len(SCHEDULE) - 1), st.floats(0, 1))
def test_jitter_only_adds_a_bounded_share(attempts: int, share: float) -> None:
    due = next_attempt(attempts, NOW, share)
    assert due is not None
    delay = SCHEDULE[attempts]
    assert NOW + delay <= due <= NOW + delay + delay * JITTER + timedelta(microseconds=1)


@given(st.lists(st.integers(1, len(SCHEDULE) + 2), min_size=1, max_size=30))
def test_a_failed_group_gets_one_due_time_and_only_exhausted_ones_die(
    attempts: list[int],
) -> None:
    due, dead = retry_due(attempts, FAILED, NOW, 0.5)
    assert dead == [n >= len(SCHEDULE) for n in attempts]
    alive = [n for n in attempts if n < len(SCHEDULE)]
    assert due == next_attempt(max(alive, default=1), NOW, 0.5)


def test_a_rate_limit_wait_kills_nobody_and_is_due_when_it_ends() -> None:
    wait = RetryLater("rate limited for long", after=45.0, rate_limited=True)
    due, dead = retry_due([len(SCHEDULE), 3], wait, NOW)
    assert dead == [False, False]
    assert due == NOW + timedelta(seconds=45)


def test_a_failure_never_comes_due_before_discords_retry_after() -> None:
    slow = RetryLater("Discord answered 503", after=120.0)
    due, _ = retry_due([1], slow, NOW, 0)
    assert due == NOW + timedelta(seconds=120)
