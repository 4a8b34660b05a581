"""The channel page in a real browser (Debian's chromium, everything but the app blocked), both
databases: reached from a clip's channel link, the chart drawn, the period links, no CSP
violation, no serious axe-core violation, no sideways scroll at 390 px; screenshots to
var/screenshots/ (channel-desktop.png, channel-phone.png)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, expect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Channel
from clipwatch.twitch.live import went_online
from tests.factories import helix_clip, store_clips
from tests.web.live import serving_app, sqlite_only  # noqa: F401 (the fixture)
from tests.web.test_browser import (  # noqa: F401 - browser is the fixture
    DESKTOP,
    PHONE,
    Offline,
    browser,
    fits_width,
    shot,
)

SERIOUS = ("serious", "critical")


@pytest.fixture
async def channel(engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    now = datetime.now(UTC)
    clips: list[dict[str, Any]] = [
        helix_clip(
            id=f"Chan{n:03d}",
            title=f"a clip with a fairly long title number {n} <b>not bold</b>",
            broadcaster_id="1001",
            broadcaster_name="AlphaStreams",
            creator_id=f"70{n % 4}",
            creator_name=f"Clipper{n % 4}",
            view_count=1000 - n,
            created_at=(now - timedelta(hours=n * 9)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        for n in range(60)
    ]
    await store_clips(sessionmaker, clips)
    async with session_scope(sessionmaker) as session:
        row = await session.get(Channel, "1001")
        if row is None:
            session.add(
                Channel(id="1001", login="alphastreams", display_name="AlphaStreams", tracked=True)
            )
        else:
            row.login, row.display_name, row.tracked = "alphastreams", "AlphaStreams", True
    assert await went_online(
        sessionmaker,
        "1001",
        stream_id="s1",
        started_at=now - timedelta(hours=1),
        stream_type="live",
        source="poll",
        title="<script>alert(1)</script> late night ranked",
        viewer_count=1234,
    )


@pytest.fixture
def live(settings: Settings, channel: None) -> Iterator[str]:
    with serving_app(settings) as base:
        yield base


async def test_channel_page_in_a_browser(
    browser: Browser,  # noqa: F811 - the fixture
    live: str,
    database_url: str,
) -> None:
    offline = Offline(live)
    page = await offline.open(browser, viewport=DESKTOP)
    # From a clip's channel link.
    await page.goto(live + "/clips/Chan000")
    await page.get_by_role("link", name="AlphaStreams", exact=True).first.click()
    await expect(page).to_have_url(live + "/channels/1001")
    await expect(page.get_by_role("heading", name="AlphaStreams", level=1)).to_be_visible()
    await expect(page.get_by_text("Live now")).to_be_visible()
    await expect(page.locator(".live-now")).to_have_text(
        "Live now: <script>alert(1)</script> late night ranked"
    )
    chart = page.get_by_role("img", name="Clips per day on AlphaStreams, last 30 days")
    await expect(chart).to_be_visible()
    await expect(page.locator("rect.chart-bar")).to_have_count(31)
    box = await chart.bounding_box()
    assert box is not None
    assert box["height"] > 100
    # Another period, by its link.
    await page.get_by_role("link", name="7 days").click()
    await expect(page).to_have_url(live + "/channels/alphastreams?period=7d")
    await expect(page.locator("rect.chart-bar")).to_have_count(8)
    if "sqlite" in database_url:
        await shot(page, "channel-desktop")
    axe = Axe()
    for viewport in (DESKTOP, PHONE):
        await page.set_viewport_size(viewport)
        await page.goto(live + "/channels/alphastreams?period=90d")
        await expect(page.locator("rect.chart-bar")).to_have_count(91)
        assert await fits_width(page), viewport
        results = await axe.run(page)
        assert results.response["testEngine"]["name"] == "axe-core"
        serious = [
            f"{v['id']}: {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"]
            if v["impact"] in SERIOUS
        ]
        assert serious == [], viewport
    if "sqlite" in database_url:
        await shot(page, "channel-phone")
    await page.goto(live + "/channels/nobody")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert offline.problems == []  # no CSP violation, no page error
    await offline.context.close()
