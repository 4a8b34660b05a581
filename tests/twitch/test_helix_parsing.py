"""Reading Helix objects: every timestamp shape that means an instant, hostile text cleaned and
bounded, and nothing raised but ValidationError; what validates stores on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import select

from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from clipwatch.db.models import Clip
from clipwatch.twitch import helix
from clipwatch.twitch.helix import HelixClip, HelixGame, HelixUser, clean_text, parse_instant
from clipwatch.twitch.intake import ClipsRead, store_clips
from tests.conftest import TEST_SECRET, empty_tables
from tests.factories import helix_clip

# What no stored text may hold (PostgreSQL refuses NUL; no driver encodes a lone surrogate).
FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")

instants = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.just(UTC)
)
offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timedelta(minutes=m))


@st.composite
def rendered_instants(draw: st.DrawFn) -> tuple[str, datetime]:
    """An instant written the way some server might, and the instant it means (to µs)."""
    moment: datetime = draw(instants)
    offset: timedelta = draw(offsets)
    zone = draw(st.sampled_from(["Z", "z", "+hh:mm", "+hhmm", "+hh", "none", "UTC"]))
    if zone in ("Z", "z", "none", "UTC") or (zone == "+hh" and offset.seconds % 3600):
        offset = timedelta(0)
    local = moment.astimezone(timezone(offset)).replace(tzinfo=None)
    separator = draw(st.sampled_from(["T", "t", " "]))
    digits = draw(st.integers(0, 12))
    fraction = f"{local.microsecond:06d}".ljust(digits, "7")[:digits]
    if digits < 6:  # what the text cannot say is not part of the instant
        cut = int(fraction.ljust(6, "0")) if digits else 0
        moment = moment.replace(microsecond=cut)
    sign = "-" if offset < timedelta(0) else "+"
    hours, minutes = divmod(abs(int(offset.total_seconds())) // 60, 60)
    suffix = {
        "Z": "Z",
        "z": "z",
        "none": "",
        "UTC": " UTC",
        "+hh:mm": f"{sign}{hours:02d}:{minutes:02d}",
        "+hhmm": f"{sign}{hours:02d}{minutes:02d}",
        "+hh": f"{sign}{hours:02d}",
    }[zone]
    text = f"{local:%Y-%m-%d}{separator}{local:%H:%M:%S}"
    if digits:
        text += f".{fraction}"
    return text + suffix, moment


@given(rendered_instants())
def test_every_instant_shape_reads_as_aware_utc(case: tuple[str, datetime]) -> None:
    text, moment = case
    parsed = parse_instant(text)
    assert parsed.tzinfo is UTC
    assert parsed == moment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T10:36:12Z", datetime(2026, 11, 26, 10, 36, 12, tzinfo=UTC)),
        ("2026-11-26 10:36:12", datetime(2026, 11, 26, 10, 36, 12, tzinfo=UTC)),
        ("2026-11-26T10:36:12", datetime(2026, 11, 26, 10, 36, 12, tzinfo=UTC)),
        ("2026-11-26t10:36:12.5z", datetime(2026, 11, 26, 10, 36, 12, 500_000, tzinfo=UTC)),
        ("2026-11-26T10:36:12.123456789Z", datetime(2026, 11, 26, 10, 36, 12, 123456, tzinfo=UTC)),
        ("2026-11-26T12:36:12+02:00", datetime(2026, 11, 26, 10, 36, 12, tzinfo=UTC)),
        ("2026-11-26T05:06:12-0530", datetime(2026, 11, 26, 10, 36, 12, tzinfo=UTC)),
        ("2026-11-26T10:36Z", datetime(2026, 11, 26, 10, 36, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
        (" 2026-11-26T10:36:12Z\n", datetime(2026, 11, 26, 10, 36, 12, tzinfo=UTC)),
    ],
)
def test_examples(text: str, expected: datetime) -> None:
    assert parse_instant(text) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2026-11-26",  # a day, not an instant
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-26T24:00:00Z",
        "2026-11-26T10:36:12+25:00",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        "2026-11-26T10:36:12Z trailing",
        "٢٠٢٦-11-26T10:36:12Z",  # digits of another script
        1764153372,
        None,
        ["2026-11-26T10:36:12Z"],
    ],
)
def test_unparseable_is_a_clear_value_error(value: Any) -> None:
    with pytest.raises(ValueError, match=r"timestamp|instant|out of range"):
        parse_instant(value)


@given(st.text(max_size=60) | st.from_regex(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?.{0,8}"))
def test_any_text_is_an_instant_or_a_value_error(text: str) -> None:
    try:
        parsed = parse_instant(text)
    except ValueError:
        return
    assert parsed.tzinfo is UTC


def test_aware_and_naive_datetimes() -> None:
    naive = datetime(2026, 1, 1, 12)
    assert parse_instant(naive) == naive.replace(tzinfo=UTC)
    paris = datetime(2026, 1, 1, 13, tzinfo=timezone(timedelta(hours=1)))
    assert parse_instant(paris) == naive.replace(tzinfo=UTC)


def test_clean_text() -> None:
    assert clean_text("a\x00b\x01c\x7fd\x9be\ud800f\ufffeg", 100) == "abcdefg"
    assert clean_text("one\ttwo\nthree\r\nfour\u2028five", 100) == "one two three  four five"
    assert clean_text("émoji 🎉 ok", 100) == "émoji 🎉 ok"
    assert clean_text("x" * 10, 4) == "xxxx"


# --- HelixClip over hostile input ------------------------------------------------------------

any_char = st.characters(codec=None, exclude_categories=())  # surrogates and controls too
hostile_text = (
    st.text(any_char, max_size=40)
    | st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "\t\n", "\x9b[31m", "\ufeffbom"])
    | st.integers(0, 3).map(lambda k: ("é\x00" * 5_000 + "x") * (k + 1))  # 10k-40k characters
    | st.just("t" * 100_000)
)
odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
odd_times = rendered_instants().map(lambda c: c[0]) | odd_scalars
MISSING = object()


def readable_odd(key: str, good: Any) -> st.SearchStrategy[Any]:
    """Odd values of the field's own type (or null): each clip then has a fair chance."""
    if key == "created_at":
        return rendered_instants().map(lambda c: c[0])
    if key in ("id", "broadcaster_id"):
        return st.integers(0, 10**12) | st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
    if key in ("view_count", "duration", "vod_offset"):
        return st.none() | st.integers() | st.floats() | st.integers(2**62, 2**80)
    if key == "is_featured":
        return st.none() | st.booleans() | st.sampled_from(["true", "0", ""])
    return st.none() | hostile_text


def field_values(good: Any, odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(good), st.just(MISSING), odd)


REQUIRED = ("id", "broadcaster_id", "created_at")


@st.composite
def hostile_clips(draw: st.DrawFn, *, readable_keys: bool = False) -> Any:
    """Clip objects with any field odd or missing; `readable_keys`: the fields without which
    no clip is read are good or odd-but-readable (ids as numbers, timestamps of any shape)."""
    if not readable_keys and draw(st.integers(0, 30)) == 0:
        return draw(odd_scalars)  # not even an object
    base = helix_clip()
    clip: dict[str, Any] = {}
    for key, good in base.items():
        odd = odd_times if key == "created_at" else odd_scalars
        if readable_keys:
            odd = readable_odd(key, good)
        if readable_keys and key in REQUIRED:
            value = draw(st.just(good) | odd)
        else:
            value = draw(field_values(good, odd))
        if value is not MISSING:
            clip[key] = value
    return clip


def assert_storable(clip: HelixClip) -> None:
    texts = {
        "title": helix.TITLE_MAX,
        "broadcaster_name": helix.NAME_MAX,
        "creator_name": helix.NAME_MAX,
        "language": helix.LANGUAGE_MAX,
        "url": helix.URL_MAX,
        "embed_url": helix.URL_MAX,
        "thumbnail_url": helix.URL_MAX,
        "id": helix.CLIP_ID_MAX,
        "broadcaster_id": helix.REF_ID_MAX,
        "creator_id": helix.REF_ID_MAX,
        "video_id": helix.REF_ID_MAX,
        "game_id": helix.REF_ID_MAX,
    }
    for name, bound in texts.items():
        value = getattr(clip, name)
        if value is None:
            continue
        assert isinstance(value, str)
        assert len(value) <= bound, name
        assert not FORBIDDEN.search(value), name
    assert clip.id
    assert clip.broadcaster_id
    assert clip.created_at.tzinfo is UTC
    assert 0 <= clip.view_count <= helix.VIEWS_MAX
    assert math.isfinite(clip.duration)
    assert clip.duration >= 0
    assert clip.vod_offset is None or 0 <= clip.vod_offset <= helix.VOD_OFFSET_MAX
    assert isinstance(clip.is_featured, bool)


@settings(
    max_examples=400, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(hostile_clips())
def test_helix_clip_raises_only_validation_error_and_gives_storable_values(payload: Any) -> None:
    try:
        clip = HelixClip.model_validate(payload)
    except ValidationError:
        return
    assert_storable(clip)


@given(st.dictionaries(st.sampled_from(["id", "login", "display_name", "created_at"]), odd_times))
def test_users_and_games_raise_only_validation_error(payload: dict[str, Any]) -> None:
    for model in (HelixUser, HelixGame):
        with contextlib.suppress(ValidationError):
            model.model_validate(payload)


def test_a_hostile_clip_is_cleaned_not_refused() -> None:
    clip = HelixClip.model_validate(
        helix_clip(
            title="nul\x00 and\x07 bell\x1b[31m red \x9b" + "x" * 100_000,
            creator_name="bad\x00name\ud800",
            broadcaster_name="A" * 300,
            created_at="2026-11-26 10:36:12",
            game_id="33\x0014",  # an id we cannot key by: dropped, the clip kept
            view_count=-5,
            duration=float("nan"),
            vod_offset=2**40,
            thumbnail_url="https://x/" + "y" * 5_000,
        )
    )
    assert clip.title.startswith("nul and bell[31m red x")
    assert len(clip.title) == helix.TITLE_MAX
    assert clip.creator_name == "badname"
    assert len(clip.broadcaster_name) == helix.NAME_MAX
    assert clip.created_at == datetime(2026, 11, 26, 10, 36, 12, tzinfo=UTC)
    assert clip.game_id is None
    assert (clip.view_count, clip.duration, clip.vod_offset) == (0, 0.0, None)
    assert clip.thumbnail_url == ""


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "id"),
        ({"id": ""}, "id"),
        ({"id": "has space"}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"id": "a\x00b"}, "id"),
        ({"broadcaster_id": ""}, "broadcaster_id"),
        ({"broadcaster_id": {"id": 1}}, "broadcaster_id"),
        ({"created_at": "not a time"}, "created_at"),
        ({"created_at": None}, "created_at"),
        ({"title": ["a list"]}, "title"),
    ],
)
def test_unreadable_clips_say_which_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HelixClip.model_validate(helix_clip(**change))
    assert helix.explain_invalid(caught.value).startswith(f"{field}:")


def test_numeric_ids_read_as_digits() -> None:
    clip = HelixClip.model_validate(helix_clip(broadcaster_id=1001, creator_id=5001, game_id=7))
    assert (clip.broadcaster_id, clip.creator_id, clip.game_id) == ("1001", "5001", "7")


# --- what validates, stores on PostgreSQL ----------------------------------------------------


def test_every_validated_clip_stores_on_postgresql(postgresql_url: str) -> None:
    engine = create_engine(load_settings(database_url=postgresql_url, secret_key=TEST_SECRET))
    sessionmaker = create_sessionmaker(engine)
    stored = 0

    async def store(clip: HelixClip) -> None:
        row = dict(vars(clip))
        read = ClipsRead(rows={clip.id: row}, received={clip.id: row})
        async with session_scope(sessionmaker) as session:
            outcome = await store_clips(session, read, notify=False)
        assert outcome.quarantined == 0
        async with session_scope(sessionmaker) as session:
            back = await session.scalar(select(Clip).where(Clip.id == clip.id))
        assert back is not None
        assert (back.title, back.creator_name, back.view_count) == (
            clip.title,
            clip.creator_name,
            clip.view_count,
        )

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(hostile_clips(readable_keys=True))
    def check(payload: Any) -> None:
        nonlocal stored
        try:
            clip = HelixClip.model_validate(payload)
        except ValidationError:
            return
        runner.run(store(clip))
        stored += 1

    with asyncio.Runner() as runner:
        runner.run(empty_tables(engine))
        try:
            check()
        finally:
            runner.run(engine.dispose())
    assert stored > 50  # the property was tried on many clips, not only refused ones
