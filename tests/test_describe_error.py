"""The one line operators read for an error (status, a channel's or a route's last error)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clipwatch.monitoring.logging import describe_error


@given(st.text(max_size=3_000), st.integers(min_value=2, max_value=600))
def test_any_error_is_one_bounded_storable_line(message: str, limit: int) -> None:
    line = describe_error(ValueError(message), limit)
    assert len(line) <= limit
    assert line.isprintable()  # no NUL, no control character, no lone surrogate
    assert line == " ".join(line.split())
    assert line.startswith("ValueError"[: limit - 1])


def test_secrets_in_an_error_are_removed() -> None:
    line = describe_error(
        OSError(
            "connect postgresql://clip:hunter2@db/archive failed\n"
            "GET /oauth2/token?client_secret=s3cr3t&grant_type=x"
        )
    )
    assert "hunter2" not in line
    assert line == "OSError: connect postgresql://[redacted]@db/archive failed"  # first line
    assert "s3cr3t" not in describe_error("GET /token?client_secret=s3cr3t&grant_type=x")
