"""The search and clip pages, /docs and the static assets, in-process on both databases."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.api.middleware import PAGE_CSP
from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from tests.conftest import app_client
from tests.factories import helix_clip, store_clips
from tests.web.test_admin_page import person


@pytest.fixture
async def archive(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    clips: list[dict[str, Any]] = [
        helix_clip(
            id="ClipA",
            title="Insane clutch play",
            view_count=1500,
            broadcaster_id="1001",
            broadcaster_name="AlphaStreams",
            creator_id="7001",
            creator_name="ClipperOne",
            created_at="2025-01-03T10:00:00Z",
            duration=75.0,
        ),
        helix_clip(
            id="ClipB",
            title="poggers <script>alert(1)</script> moment",
            view_count=50,
            broadcaster_id="1002",
            broadcaster_name="BetaGaming",
            creator_id="7002",
            creator_name="SomeoneElse",
            language="es",
            created_at="2025-01-05T10:00:00Z",
        ),
        helix_clip(
            id="ClipGone",
            title="removed later",
            view_count=5,
            created_at="2025-01-04T10:00:00Z",
        ),
    ]
    clips += [
        helix_clip(id=f"Bulk{n:03d}", title=f"bulk clip {n}", broadcaster_id="1003")
        for n in range(30)
    ]
    await store_clips(sessionmaker, clips)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE clip SET deleted_at = created_at WHERE id = 'ClipGone'"))


def card_ids(html: str) -> list[str]:
    return re.findall(r'<h2 class="title"><a href="/clips/([^"]+)">', html)


async def test_search_page_lists_cards_with_the_api_order(
    client: httpx.AsyncClient, archive: None
) -> None:
    page = await client.get("/", params={"broadcaster": "1001", "sort": "views"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == PAGE_CSP
    api = await client.get(
        "/api/v1/clips", params={"broadcaster": "1001", "sort": "views", "limit": 24}
    )
    assert card_ids(page.text) == [c["id"] for c in api.json()["data"]]
    assert card_ids(page.text)[0] == "ClipA"
    assert "1.5K views" in page.text
    assert "1:15" in page.text
    # The page filled the API's cache entry: the API's same query is a hit.
    assert api.headers["x-cache"] == "hit"


async def test_search_page_escapes_titles(client: httpx.AsyncClient, archive: None) -> None:
    page = await client.get("/", params={"q": "poggers"})
    assert card_ids(page.text) == ["ClipB"]
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_more_link_walks_every_clip_once(client: httpx.AsyncClient, archive: None) -> None:
    seen: list[str] = []
    url: str | None = "/?include_deleted=true"
    while url:
        page = await client.get(url)
        assert page.status_code == 200, page.text
        seen += card_ids(page.text)
        found = re.search(r'<a id="more" rel="next" href="([^"]+)"', page.text)
        url = unescape(found.group(1)) if found else None
        assert len(seen) <= 33
    assert len(seen) == len(set(seen)) == 33


async def test_export_links_give_the_searchs_clips(
    client: httpx.AsyncClient, archive: None
) -> None:
    page = await client.get("/", params={"broadcaster": "1001", "sort": "views"})
    links = [
        unescape(h)
        for h in re.findall(r'<a href="(/api/v1/clips/export\?[^"]+)" download>', page.text)
    ]
    assert len(links) == 2
    csv_answer = await client.get(links[0])
    assert csv_answer.status_code == 200, csv_answer.text  # anonymous: the first 1,000
    ids = [line.split(",", 1)[0] for line in csv_answer.text.splitlines()[1:]]
    assert ids[:24] == card_ids(page.text)
    jsonl = await client.get(links[1])
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")


async def test_blank_form_fields_and_days_redirect_to_a_clean_url(
    client: httpx.AsyncClient, archive: None
) -> None:
    answer = await client.get(
        "/?q=&broadcaster=1001&game=&min_views=&created_after=2025-01-03&created_before=2025-01-03&sort="
    )
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location == (
        "/?broadcaster=1001&created_after=2025-01-03T00%3A00%3A00Z"
        "&created_before=2025-01-03T23%3A59%3A59Z"
    )
    page = await client.get(location)
    assert card_ids(page.text) == ["ClipA"]
    # The form shows the days back.
    assert 'value="2025-01-03"' in page.text


async def test_a_bad_filter_shows_the_422_words_not_a_500(
    client: httpx.AsyncClient, archive: None
) -> None:
    page = await client.get("/", params={"min_views": "lots"})
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert "min_views" in page.text
    assert "whole number" in page.text
    crossed = await client.get("/", params={"min_views": "10", "max_views": "5"})
    assert crossed.status_code == 422
    assert "no clip can match both" in crossed.text
    unknown = await client.get("/", params={"period": "week"})
    assert unknown.status_code == 422
    assert "is not a parameter" in unknown.text
    assert 'id="search-form"' in unknown.text  # the form stays, to fix the search


async def test_empty_result_says_what_to_do(client: httpx.AsyncClient, archive: None) -> None:
    page = await client.get("/", params={"q": "nothingmatchesthis"})
    assert page.status_code == 200
    assert "No clips match" in page.text
    assert "Clear all filters" in page.text


async def test_clip_page_has_player_facts_and_links(
    client: httpx.AsyncClient, archive: None
) -> None:
    page = await client.get("/clips/ClipA")
    assert page.status_code == 200
    assert 'src="https://clips.twitch.tv/embed?clip=ClipA&amp;parent=127.0.0.1"' in page.text
    assert 'href="/channels/1001"' in page.text
    assert 'href="/?broadcaster=1001"' in page.text
    assert 'href="/?creator=7001"' in page.text
    assert "1,500" in page.text


async def test_deleted_clip_is_said_plainly(client: httpx.AsyncClient, archive: None) -> None:
    page = await client.get("/clips/ClipGone")
    assert page.status_code == 200
    assert "Deleted on Twitch" in page.text
    assert "<iframe" not in page.text


async def test_unknown_clip_is_a_404_page(client: httpx.AsyncClient, archive: None) -> None:
    page = await client.get("/clips/NoSuchClip")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "no clip with id NoSuchClip" in page.text
    bad = await client.get("/clips/not a clip!")
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("text/html")


async def test_api_errors_stay_problem_json(client: httpx.AsyncClient, archive: None) -> None:
    answer = await client.get("/api/v1/clips/NoSuchClip")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


async def test_docs_and_assets_are_served_locally(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "cdn." not in docs.text
    assert "<script>" not in docs.text
    csp = docs.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "https:" not in csp
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', docs.text):
        answer = await client.get(asset)
        assert answer.status_code == 200, asset
        assert answer.headers["cache-control"] == "public, max-age=3600"
    assert (await client.get("/redoc")).status_code == 404
    schema = (await client.get("/openapi.json")).json()
    assert "/" not in schema["paths"]
    assert "/clips/{clip_id}" not in schema["paths"]


async def test_pages_have_no_inline_script_or_style(
    client: httpx.AsyncClient, archive: None
) -> None:
    for path in ("/", "/?q=clutch", "/clips/ClipA", "/clips/Nope", "/?min_views=x"):
        html = (await client.get(path)).text
        assert "<style" not in html, path
        assert " style=" not in html, path
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path


async def test_a_24_card_page_weighs_under_100_kb_before_images(
    client: httpx.AsyncClient, archive: None
) -> None:
    page = await client.get("/")
    assert len(card_ids(page.text)) == 24
    total = len(page.content)
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        total += len((await client.get(asset)).content)
    print(f"24-card search page, HTML+CSS+JS: {total} bytes")
    assert total < 100_000


async def test_pages_count_against_the_anonymous_rate_limit(
    settings: Settings, engine: AsyncEngine, cache: CacheManager
) -> None:
    limited = settings.model_copy(update={"rate_limit_anonymous": "3/minute"})
    async with app_client(limited, cache=cache) as client:
        for _ in range(3):
            assert (await client.get("/")).status_code == 200
        page = await client.get("/")
        api = await client.get("/api/v1/clips")  # one bucket for pages and anonymous reads
    assert page.status_code == 429
    assert page.headers["content-type"].startswith("text/html")
    assert int(page.headers["retry-after"]) >= 1
    assert "too many requests" in page.text
    assert api.status_code == 429


async def test_a_signed_in_viewers_pages_count_against_their_user_limit(
    settings: Settings,
    engine: AsyncEngine,
    cache: CacheManager,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Signed in, pages share the user's bucket (with their API calls), not the address's."""
    limited = settings.model_copy(
        update={"rate_limit_anonymous": "3/minute", "rate_limit_user": "5/minute"}
    )
    ann = await person(sessionmaker, limited, "ann", admin=False)
    async with app_client(limited, cache=cache) as client:
        answers = [(await client.get("/", headers=ann.headers)).status_code for _ in range(6)]
        anonymous = (await client.get("/")).status_code
    assert answers == [200] * 5 + [429]
    assert anonymous == 200  # the address's bucket was not used by the viewer
