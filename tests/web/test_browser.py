"""The pages in a real browser: Playwright driving Debian's chromium against the app served on
a loopback port over a seeded database (both databases). Every request to anything but the app
is blocked, so the pages must work offline. Screenshots go to var/screenshots/ (git-ignored).

Run: .venv/bin/python -m pytest tests/web/test_browser.py
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright, expect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from tests.conftest import unavailable
from tests.factories import helix_clip, store_clips
from tests.web.live import serving_app, sqlite_only  # noqa: F401 (the fixture)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# The longest an action (a click, a fill) waits for its element to be actionable, and an
# `expect` for its condition. A CI run on two cores with four test workers beside chromium once
# spent over 10 s before a freshly loaded route page's button counted as stable, and another
# over 5 s (Playwright's default for `expect`) before the live preview showed a typed template
# (tests/web/test_routes_browser.py).
EXPECT_MS = 30_000


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """Debian's chromium (Playwright's sync API would hold the event loop the database
    fixtures need, so the tests use the async one)."""
    executable = shutil.which("chromium")
    if executable is None:
        unavailable("chromium (Debian's package; `make deps` installs it)")
    expect.set_options(timeout=EXPECT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"]
        )
        yield browser
        await browser.close()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"browser test screenshots: {SCREENSHOTS}/")


@pytest.fixture
async def archive(engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
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
        ),
        helix_clip(
            id="ClipB",
            title="clutch fail",
            view_count=5,
            broadcaster_id="1002",
            broadcaster_name="BetaGaming",
            created_at="2025-01-05T10:00:00Z",
        ),
    ]
    clips += [
        helix_clip(id=f"Bulk{n:03d}", title=f"a very long title of bulk clip number {n} " * 2)
        for n in range(40)
    ]
    await store_clips(sessionmaker, clips)


@pytest.fixture
def live(settings: Settings, archive: None) -> Iterator[str]:
    with serving_app(settings) as base:
        yield base


class Offline:
    """A browser context where only the app answers; everything else is aborted and counted.
    Also collects CSP violations and page errors the console reports."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.blocked: list[str] = []
        self.problems: list[str] = []

    async def open(self, browser: Browser, **options: Any) -> Page:
        self.context: BrowserContext = await browser.new_context(**options)
        self.context.set_default_timeout(EXPECT_MS)
        await self.context.route("**/*", self._route)
        return await self.page()

    async def _route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith(self.base + "/") or url == self.base:
            await route.continue_()
        else:
            self.blocked.append(url)
            await route.abort()

    async def page(self) -> Page:
        page = await self.context.new_page()

        def on_console(message: Any) -> None:
            if "Content Security Policy" in message.text:
                self.problems.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        return page


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def fits_width(page: Page) -> bool:
    return bool(
        await page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


async def test_search_filter_open_a_clip(browser: Browser, live: str, database_url: str) -> None:
    offline = Offline(live)
    page = await offline.open(browser, viewport=DESKTOP)
    await page.goto(live + "/")
    await expect(page.get_by_role("heading", name="Search clips")).to_be_visible()
    await expect(page.get_by_text("Demo mode")).to_be_visible()
    await expect(page.locator("#results > li")).to_have_count(24)
    if "sqlite" in database_url:
        await shot(page, "search-desktop")
    # Search: the query lands in the URL, blank fields left out.
    await page.get_by_label("Words in the title, channel or creator").fill("clutch")
    await page.get_by_role("button", name="Search").last.click()
    await expect(page).to_have_url(re.compile(r"/\?q=clutch$"))
    await expect(page.locator("#results > li")).to_have_count(2)
    # Filter: views and sort, from the form.
    await page.get_by_label("Views at least").fill("100")
    await page.get_by_label("Sort").select_option("views")
    await page.get_by_role("button", name="Search").last.click()
    await expect(page).to_have_url(re.compile(r"min_views=100"))
    await expect(page.locator("#results > li")).to_have_count(1)
    # Open the clip.
    await page.get_by_role("link", name="Insane clutch play").click()
    await expect(page).to_have_url(live + "/clips/ClipA")
    await expect(page.get_by_role("heading", name="Insane clutch play")).to_be_visible()
    player = page.locator("iframe")
    await expect(player).to_have_attribute(
        "src", "https://clips.twitch.tv/embed?clip=ClipA&parent=127.0.0.1"
    )
    await expect(page.get_by_role("link", name="AlphaStreams")).to_have_attribute(
        "href", "/channels/1001"
    )
    await expect(page.get_by_role("link", name="ClipperOne")).to_have_attribute(
        "href", "/?creator=7001"
    )
    if "sqlite" in database_url:
        await shot(page, "clip-desktop")
        await page.goto(live + "/clips/NoSuchClip")
        await expect(page.get_by_role("alert")).to_be_visible()
        await shot(page, "error-desktop")
    assert offline.problems == []
    # The player and thumbnails are Twitch's: asked for, and blocked here.
    assert any(url.startswith("https://clips.twitch.tv/embed") for url in offline.blocked)
    await offline.context.close()


async def test_keyboard_reaches_the_skip_link_first(browser: Browser, live: str) -> None:
    offline = Offline(live)
    page = await offline.open(browser, viewport=DESKTOP)
    await page.goto(live + "/clips/ClipA")
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()
    await offline.context.close()


async def test_more_loads_the_next_page_in_place(browser: Browser, live: str) -> None:
    offline = Offline(live)
    page = await offline.open(browser, viewport=DESKTOP)
    await page.goto(live + "/")
    await expect(page.locator("#results > li")).to_have_count(24)
    await page.get_by_role("link", name="More clips").click()
    await expect(page.locator("#results > li")).to_have_count(42)
    await expect(page.get_by_role("link", name="More clips")).to_have_count(0)
    assert page.url == live + "/"
    assert offline.problems == []
    await offline.context.close()


async def test_phone_width(browser: Browser, live: str, database_url: str) -> None:
    offline = Offline(live)
    page = await offline.open(browser, viewport=PHONE, is_mobile=True, has_touch=True)
    for path, name in (("/", "search"), ("/clips/ClipA", "clip"), ("/?min_views=x", "error")):
        await page.goto(live + path)
        await expect(page.locator("main")).to_be_visible()
        assert await fits_width(page), f"{path} scrolls sideways at 390 px"
        if "sqlite" in database_url:
            await shot(page, f"{name}-phone")
    assert offline.problems == []
    await offline.context.close()


async def test_search_and_clip_pages_without_javascript(browser: Browser, live: str) -> None:
    offline = Offline(live)
    page = await offline.open(browser, viewport=DESKTOP, java_script_enabled=False)
    await page.goto(live + "/")
    # Without the script the form sends its blank fields: the server tidies the URL.
    await page.get_by_label("Words in the title, channel or creator").fill("clutch")
    await page.get_by_label("Clipped on or after").fill("2025-01-04")
    await page.get_by_role("button", name="Search").last.click()
    await expect(page).to_have_url(live + "/?q=clutch&created_after=2025-01-04T00%3A00%3A00Z")
    await expect(page.locator("#results > li")).to_have_count(1)
    await expect(page.get_by_label("Clipped on or after")).to_have_value("2025-01-04")
    # "More" is a plain link.
    await page.goto(live + "/")
    await page.get_by_role("link", name="More clips").click()
    await expect(page).to_have_url(re.compile(r"cursor="))
    await expect(page.locator("#results > li")).to_have_count(42 - 24)
    # A bad filter: the 422's words on the page.
    await page.goto(live + "/?max_duration=long")
    await expect(page.get_by_role("alert")).to_contain_text("max_duration")
    # The clip page.
    await page.goto(live + "/clips/ClipA")
    await expect(page.get_by_text("1,500")).to_be_visible()
    await page.goto(live + "/clips/NoSuchClip")
    await expect(page.get_by_role("alert")).to_contain_text("no clip with id NoSuchClip")
    await offline.context.close()


async def test_docs_render_offline(browser: Browser, live: str, database_url: str) -> None:
    offline = Offline(live)
    page = await offline.open(browser, viewport=DESKTOP)
    await page.goto(live + "/docs")
    operations = page.locator(".opblock")
    await expect(operations.first).to_be_visible()
    await expect(
        page.locator(".opblock-summary-path", has_text="/api/v1/clips").first
    ).to_be_visible()
    assert await operations.count() > 20
    if "sqlite" in database_url:
        await shot(page, "docs-desktop")
        await page.set_viewport_size(PHONE)
        await expect(operations.first).to_be_visible()
        await shot(page, "docs-phone")
    assert offline.blocked == []
    assert offline.problems == []
    await offline.context.close()
