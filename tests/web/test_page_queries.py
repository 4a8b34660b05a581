"""Property tests: any query string a person or a crawler sends to the pages is a page (200,
a tidying 303, or the 4xx that says what is wrong), never a 500; anything Twitch sent us is
shown escaped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.api.routers.pages import FORM_FIELDS
from clipwatch.config import Settings
from clipwatch.web.render import age, duration, render, views
from tests.factories import helix_clip, store_clips
from tests.web.live import serving_app

NAMES = st.sampled_from([*FORM_FIELDS, "cursor", "include_deleted", "featured", "feed", "x"])
VALUES = st.text(max_size=30) | st.sampled_from(
    ["", " ", "2025-01-03", "2025-02-30", "1e999", "-1", "nan", "true", "views", "0"]
)


@pytest.fixture
async def seeded(engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await store_clips(sessionmaker, [helix_clip(title=f"clip {n}") for n in range(5)])


@pytest.fixture
def http(settings: Settings, seeded: None) -> Iterator[httpx.Client]:
    # Many requests from one address in a few seconds: above the anonymous rate limit.
    roomy = settings.model_copy(update={"rate_limit_anonymous": "100000/minute"})
    with serving_app(roomy) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield client


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_any_search_query_is_a_page_never_a_500(
    http: httpx.Client, pairs: list[tuple[str, str]]
) -> None:
    answer = http.get("/?" + urlencode(pairs), follow_redirects=True)
    assert answer.status_code in (200, 400, 401, 422), answer.text[:500]
    assert answer.headers["content-type"].startswith("text/html")
    assert "<main" in answer.text


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(min_size=1, max_size=40))
def test_any_clip_path_is_a_page_never_a_500(http: httpx.Client, clip_id: str) -> None:
    answer = http.get("/clips/" + quote(clip_id, safe=""))
    # 307: Starlette's trailing-slash redirect (an id of "/" makes the path "/clips//").
    assert answer.status_code in (200, 307, 404, 405, 422), answer.text[:500]


TWITCH_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60
) | st.sampled_from(["<script>x</script>", '"><img src=x onerror=1>', "\x00\x1f", "&amp;"])


@given(
    title=TWITCH_TEXT,
    name=TWITCH_TEXT,
    count=st.integers(-5, 10**13),
    seconds=st.floats(allow_nan=True, allow_infinity=True) | st.none(),
)
def test_cards_escape_whatever_twitch_sent(
    title: str, name: str, count: int, seconds: float | None
) -> None:
    created = datetime(2025, 1, 1, tzinfo=UTC)
    clip = SimpleNamespace(
        id="C1",
        title=title,
        thumbnail_url="https://clips-media-assets2.twitch.tv/x.jpg",
        duration=seconds,
        broadcaster_id="1",
        broadcaster_name=name,
        game_id=None,
        game_name=None,
        creator_id="2",
        creator_name=name,
        view_count=count,
        created_at=created,
        deleted_at=None,
        tags=["funny", "epic-fail"],  # ours: validated names
    )
    html = render("_card.html", clip=clip)
    benign = render(
        "_card.html",
        clip=SimpleNamespace(
            **{**vars(clip), "title": "t", "broadcaster_name": "n", "creator_name": "n"}
        ),
    )
    # Whatever the text, the card's markup is the card's own: the same tags, in the same order.
    assert _tags(html) == _tags(benign)
    assert "<script" not in html
    assert "<img src=x" not in html


def _tags(html: str) -> list[str]:
    seen: list[str] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            seen.append(tag)

    Tags().feed(html)
    return seen


@given(st.integers(-(10**15), 10**15))
def test_views_are_short(count: int) -> None:
    shown = views(count)
    assert len(shown) <= 12
    assert shown


@given(st.floats(allow_nan=True, allow_infinity=True) | st.none())
def test_duration_never_raises(seconds: float | None) -> None:
    assert ":" in duration(seconds)


@given(st.timedeltas(min_value=timedelta(days=-400), max_value=timedelta(days=40_000)))
def test_age_reads_any_distance(distance: timedelta) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    said = age(now - distance, now)
    assert said == "just now" or said.endswith(" ago")
