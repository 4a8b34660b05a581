"""Typed, tolerant shapes of Helix objects: liberal in what they read, strict in what they give.

What they read: unknown fields are ignored, empty strings and nulls handled, every timestamp
shape that means an instant is read (`parse_instant`). What they give can be stored on
every database: text without the characters no column holds, cut to the bounds below
(docs/twitch.md, "Hostile input"). A clip that cannot be read this way raises
ValidationError, and only that. Field facts: reference/twitch-api.md §3.2.
"""

from __future__ import annotations

import contextlib
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

# Bounds of what we store. Twitch's own limits are far lower (a clip title has 100
# characters); these only keep a hostile or broken server from filling the database.
TITLE_MAX = 500
NAME_MAX = 128  # broadcaster, creator and game names: the columns' String(128)
LOGIN_MAX = 64
LANGUAGE_MAX = 16
URL_MAX = 2_048
CLIP_ID_MAX = 128
REF_ID_MAX = 64  # user, game and video ids
VIEWS_MAX = 2**63 - 1  # BIGINT
VOD_OFFSET_MAX = 2**31 - 1  # INTEGER

_INSTANT = re.compile(
    r"""\s*(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})
    (?:[Tt]|\s+)(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?
    \s*(?P<zone>[Zz]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?\s*""",
    re.VERBOSE | re.ASCII,
)


def parse_instant(value: Any) -> datetime:
    """An aware UTC datetime from any Helix timestamp shape that means an instant.

    RFC 3339 with `Z` or an offset; lower-case `t`/`z`; a space instead of `T`; fractional
    seconds of any length (cut to microseconds); no seconds; no zone (read as UTC, as Twitch
    means); a leap second (read as :59). An aware datetime is converted to UTC, a naive one is
    taken as UTC. Anything else raises ValueError (and only that) saying what it got."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"{value!r} is out of range in UTC") from None
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 timestamp string, got {type(value).__name__}")
    if len(value) == 20 and value[10] == "T" and value[19] == "Z" and value[:4].isdigit():
        # Twitch's own shape (2026-11-26T10:36:12Z), read in C: 3x faster imports.
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value)
    match = _INSTANT.fullmatch(value)
    if match is None:
        raise ValueError(f"not a timestamp: {value[:40]!r}")
    part = match.groupdict()
    fraction = (part["f"] or "0")[:6].ljust(6, "0")
    try:
        moment = datetime(
            int(part["y"]),
            int(part["mo"]),
            int(part["d"]),
            int(part["h"]),
            int(part["mi"]),
            min(int(part["s"] or 0), 59),  # 60: a leap second
            int(fraction),
            tzinfo=_zone(part["zone"]),
        )
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid instant: {value[:40]!r} ({exc})") from None


def _zone(text: str | None) -> timezone:
    if text is None or text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset out of range: {text}")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


# Line breaks and tabs become spaces (titles and names are one line); every other control
# character (C0, DEL, C1), lone surrogates (no UTF-8 encoding: no driver can send them) and
# the noncharacters U+FFFE/U+FFFF are dropped. NUL is among them: PostgreSQL refuses it.
_SPACES = re.compile(r"[\t\n\r\x0b\x0c\x85\u2028\u2029]")
_DROPPED = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")


def clean_text(value: str, limit: int) -> str:
    """`value` without the characters a database cannot hold, cut to `limit` characters."""
    if value.isprintable():  # the usual case, checked in C; printable excludes all we drop
        return value[:limit]
    return _DROPPED.sub("", _SPACES.sub(" ", value))[:limit]


def usable_id(value: Any, limit: int) -> str | None:
    """An id as a string, if it is one we can key a row by: non-empty, at most `limit`
    characters, printable, no spaces. Numbers are read as their digits. Never cleaned:
    a changed id would name another clip."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        return None
    # Printable excludes every space but " " itself.
    return value if value.isprintable() and " " not in value else None


def _text(limit: int) -> BeforeValidator:
    def read(value: Any) -> Any:
        if value is None:
            return ""
        return clean_text(value, limit) if isinstance(value, str) else value

    return BeforeValidator(read)


def _url(value: Any) -> Any:
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    if len(value) <= URL_MAX and value.isprintable():
        return value.strip()
    cleaned = clean_text(value, URL_MAX + 1).strip()
    return cleaned if len(cleaned) <= URL_MAX else ""  # a cut URL leads nowhere: none at all


def _required_id(limit: int) -> BeforeValidator:
    def read(value: Any) -> str:
        found = usable_id(value, limit)
        if found is None:
            raise ValueError(f"expected an id of 1-{limit} printable characters")
        return found

    return BeforeValidator(read)


def _optional_id(limit: int, *, empty: str | None) -> BeforeValidator:
    """A reference (creator, game, VOD): an unusable one is dropped, the clip is kept."""

    def read(value: Any) -> str | None:
        return usable_id(value, limit) or empty

    return BeforeValidator(read)


def _zero_if_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return 0 if value is None or value == "" else value


def _whole(value: Any) -> Any:
    """Whole numbers from floats too (`12.0`, `12.7`): pydantic refuses a fractional one."""
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return value


def _views(value: int) -> int:
    return min(max(value, 0), VIEWS_MAX)


def _seconds(value: float) -> float:
    return value if math.isfinite(value) and value >= 0 else 0.0


def _offset(value: int | None) -> int | None:
    return value if value is not None and 0 <= value <= VOD_OFFSET_MAX else None


def _none_if_empty(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return None if value == "" else _whole(value)


def _flag(value: Any) -> Any:
    return False if value is None or value == "" else value


def _instant_or_none(value: Any) -> datetime | None:
    """An account's creation only bounds its backfill: unreadable means unknown."""
    try:
        return parse_instant(value)
    except ValueError:
        return None


Instant = Annotated[datetime, BeforeValidator(parse_instant)]
Title = Annotated[str, _text(TITLE_MAX)]
Name = Annotated[str, _text(NAME_MAX)]
Url = Annotated[str, BeforeValidator(_url)]


class HelixClip(BaseModel):
    """One element of Get Clips' `data` array, ready to store."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False, frozen=True)

    id: Annotated[str, _required_id(CLIP_ID_MAX)]
    url: Url = ""
    embed_url: Url = ""
    broadcaster_id: Annotated[str, _required_id(REF_ID_MAX)]
    broadcaster_name: Name = ""
    creator_id: Annotated[str, _optional_id(REF_ID_MAX, empty="")] = ""
    creator_name: Name = ""
    video_id: Annotated[str | None, _optional_id(REF_ID_MAX, empty=None)] = None  # "": no VOD
    game_id: Annotated[str | None, _optional_id(REF_ID_MAX, empty=None)] = None
    language: Annotated[str, _text(LANGUAGE_MAX)] = "other"
    title: Title = ""
    view_count: Annotated[
        int, BeforeValidator(_zero_if_none), BeforeValidator(_whole), AfterValidator(_views)
    ] = 0
    created_at: Instant
    thumbnail_url: Url = ""
    duration: Annotated[float, BeforeValidator(_zero_if_none), AfterValidator(_seconds)] = 0.0
    # null without a VOD, and for minutes after the clip's creation
    vod_offset: Annotated[int | None, BeforeValidator(_none_if_empty), AfterValidator(_offset)] = (
        None
    )
    is_featured: Annotated[bool, BeforeValidator(_flag)] = False


class HelixUser(BaseModel):
    """One element of Get Users' `data` array (the fields a tracked channel keeps)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, _required_id(REF_ID_MAX)]
    login: Annotated[str, _required_id(LOGIN_MAX)]
    display_name: Name = ""
    profile_image_url: Url = ""
    created_at: Annotated[datetime | None, BeforeValidator(_instant_or_none)] = None


class HelixGame(BaseModel):
    """One element of Get Games' `data` array."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, _required_id(REF_ID_MAX)]
    name: Name = ""
    box_art_url: Url = ""


STREAM_TYPE_MAX = 16
VIEWERS_MAX = 2**31 - 1  # INTEGER


def _viewers(value: int) -> int:
    return min(max(value, 0), VIEWERS_MAX)


def _or_default(default: Any) -> WrapValidator:
    """A detail that cannot be read is unknown: the record keeps what it told otherwise."""

    def read(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            return default

    return WrapValidator(read)


class HelixStream(BaseModel):
    """One element of Get Streams' `data` array: a live stream (reference §4). Only the
    broadcaster's id is required: the channel is live whatever else is odd (an unreadable
    detail is unknown: "", 0 or None). `type` "" is Twitch's error state."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: Annotated[str, _required_id(REF_ID_MAX)]
    id: Annotated[str | None, _optional_id(REF_ID_MAX, empty=None)] = None
    user_login: Annotated[str | None, _optional_id(LOGIN_MAX, empty=None)] = None
    game_id: Annotated[str | None, _optional_id(REF_ID_MAX, empty=None)] = None
    game_name: Annotated[Name, _or_default("")] = ""
    type: Annotated[str, _text(STREAM_TYPE_MAX), _or_default("")] = ""
    title: Annotated[Title, _or_default("")] = ""
    viewer_count: Annotated[
        int,
        BeforeValidator(_zero_if_none),
        BeforeValidator(_whole),
        AfterValidator(_viewers),
        _or_default(0),
    ] = 0
    started_at: Annotated[datetime | None, BeforeValidator(_instant_or_none)] = None
    language: Annotated[str, _text(LANGUAGE_MAX), _or_default("")] = ""


def explain_invalid(exc: ValidationError) -> str:
    """The first problem of a refused object, in one short line (`field: what`)."""
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "unreadable"
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"])
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return clean_text(message, 300) + more
