"""Validated query parameter types shared by the routers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

# Printable text only: NUL and other control characters never reach the database.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

SearchText = Annotated[str, StringConstraints(max_length=200, pattern=_PRINTABLE)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_PRINTABLE)]
# Language tags are case-insensitive (RFC 5646): any case is taken, and stored and compared in
# lower case, as Twitch writes them ("en", "pt-br", "other").
Language = Annotated[
    str,
    StringConstraints(
        pattern=r"^(?:[A-Za-z]{2,3}(?:-[A-Za-z]{2,4})?|[Oo][Tt][Hh][Ee][Rr])$", to_lower=True
    ),
]
ClipId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
]
# A tag's name: words of letters and digits (any script) joined by single hyphens, in lower
# case (docs/tags.md); any case is taken.
TAG_NAME_PATTERN = r"^[^\W_]+(?:-[^\W_]+)*$"
TagName = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=TAG_NAME_PATTERN, to_lower=True)
]
Cursor = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_-]+$")
]


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def _clamped_instant(value: datetime) -> datetime:
    """Any valid date-time is accepted; far-off ones are clamped (no clip is that old or new),
    which also keeps the time-zone conversion of year 1 or 9999 from overflowing."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value.year < 1970:
        return EARLIEST
    if value.year >= 3000:
        return LATEST
    return value.astimezone(UTC)


Instant = Annotated[datetime, AfterValidator(_clamped_instant)]
