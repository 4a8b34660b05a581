"""The Routes pages in a real browser (Debian's chromium, every request not to the app blocked),
both databases: signed in with a session opened in the test, create a route with a custom
template while the live preview follows the typing, save it, send a test to the Discord
simulator; the same form without JavaScript (the Preview button); no CSP violation; no serious
axe-core violation on /routes, /routes/new and /routes/{id} at 1280 and 390 px, no sideways
scroll; screenshots var/screenshots/routes-*.png, route-form-*.png, route-*.png."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, expect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.accounts.service import SessionPolicy
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.discord.simulator import SimWebhook
from tests.discord.conftest import DiscordSim, discord_sim
from tests.factories import helix_clip, store_clips
from tests.web.live import serving_app, sqlite_only  # noqa: F401 (the fixture)
from tests.web.test_accessibility import serious_violations
from tests.web.test_browser import DESKTOP, PHONE, Offline, browser, fits_width, shot

__all__ = ["browser", "discord_sim"]  # fixtures, used here by name

CLIP_TITLE = "Insane clutch <b>play</b>"


@pytest.fixture
async def archive(engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await store_clips(
        sessionmaker,
        [
            helix_clip(id="Clutch", title=CLIP_TITLE, view_count=4200),
            helix_clip(id="Quiet", title="a quiet one", view_count=3),
        ],
    )


@pytest.fixture
def live(settings: Settings, archive: None, discord_sim: DiscordSim) -> Iterator[str]:
    served = settings.model_copy(
        update={
            "discord_api_url": f"{discord_sim.base}/api/v10",
            "rate_limit_anonymous": "100000/minute",
        }
    )
    with serving_app(served) as base:
        yield base


async def signed_in(
    browser: Browser,
    base: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    **options: object,
) -> tuple[Offline, Page]:
    """A browser context holding the cookie of a session opened as the login opens one."""
    policy = SessionPolicy(
        idle=timedelta(hours=1), absolute=timedelta(days=1), key=settings.signing_key
    )
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, f"ann{len(options)}")
        _, secret = await service.open_session(
            session, user, scopes=frozenset({"read", "write"}), policy=policy
        )
    offline = Offline(base)
    page = await offline.open(browser, **options)
    context: BrowserContext = offline.context
    await context.add_cookies([{"name": "cw_session", "value": secret, "url": base}])
    return offline, page


async def check_page(page: Page, path: str, name: str, *, screenshots: bool) -> None:
    """At desktop and phone width: no serious axe-core finding, no sideways scroll."""
    for viewport, width in ((DESKTOP, "desktop"), (PHONE, "phone")):
        await page.set_viewport_size(viewport)
        await page.goto(path)
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        assert await serious_violations(page) == [], (path, width)
        assert await fits_width(page), (path, width)
        if screenshots:
            await shot(page, f"{name}-{width}")
    await page.set_viewport_size(DESKTOP)


async def test_create_a_route_with_a_live_preview_and_send_a_test(
    browser: Browser,
    live: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
    database_url: str,
) -> None:
    screenshots = "sqlite" in database_url
    hook: SimWebhook = discord_sim.discord.add_webhook()
    offline, page = await signed_in(browser, live, settings, sessionmaker, viewport=DESKTOP)
    await page.goto(live + "/routes")
    await expect(page.get_by_text("No routes yet")).to_be_visible()
    await check_page(page, live + "/routes", "routes-empty", screenshots=screenshots)

    await page.get_by_role("link", name="New route").click()
    await expect(page).to_have_url(live + "/routes/new")
    preview = page.locator("#preview")
    await expect(preview.locator(".dc-message")).to_be_visible()  # the card, before typing
    await page.get_by_label("Name", exact=True).fill("clutch plays")
    await page.get_by_label("Discord webhook URL").fill(hook.pasted_url)
    await page.get_by_label("Views at least").fill("1000")
    await page.get_by_label("Template", exact=True).select_option(label="Custom")
    template = page.get_by_label("Custom template")
    await template.fill("First draft: {{ title }}")
    # The newest stored clip with 1,000 views or more, its title as text (escaped).
    await expect(preview).to_contain_text(f"First draft: {CLIP_TITLE}")
    await template.fill("Second draft, {{ views }} views on {{ channel }}")
    await expect(preview).to_contain_text("Second draft, 4200 views on AlphaStreams")
    await expect(preview).not_to_contain_text("First draft")
    await template.fill("{{ title")
    await expect(preview).to_contain_text("No preview")
    await template.fill("{{ 'x' * 5000 }}")
    await expect(preview).to_contain_text("The description came to 5,000 characters")
    await template.fill("Saved: {{ title }} ({{ views }} views)")
    await expect(preview).to_contain_text(f"Saved: {CLIP_TITLE} (4200 views)")
    assert await page.locator("#preview b").count() == 0  # the title's <b> is text, not markup
    for viewport, width in ((DESKTOP, "desktop"), (PHONE, "phone")):
        await page.set_viewport_size(viewport)
        assert await serious_violations(page) == [], width
        assert await fits_width(page), width
        if screenshots:
            await shot(page, f"route-form-{width}")
    await page.set_viewport_size(DESKTOP)

    await page.get_by_role("button", name="Save route").click()
    await expect(page).to_have_url(re.compile(r"/routes/[0-9]+\?done=created$"))
    route_path = page.url.split("?")[0]
    await expect(page.locator(".notice")).to_contain_text("Route created")
    await expect(page.get_by_role("heading", name="clutch plays", level=1)).to_be_visible()
    assert hook.token not in await page.content()

    await page.get_by_role("button", name="Send test").click()
    await expect(page.locator(".notice")).to_contain_text("Test message sent, showing clip Clutch")
    [message] = discord_sim.discord.received
    assert message.payload["embeds"][0]["description"].startswith("Saved: Insane clutch")
    await check_page(page, route_path, "route", screenshots=screenshots)
    await check_page(page, live + "/routes", "routes", screenshots=screenshots)
    await expect(page.get_by_role("link", name="clutch plays")).to_be_visible()
    await expect(page.get_by_text("0 pending, 0 sent, 0 dead")).to_be_visible()
    # A session that ends while typing: the preview says so (not the login page in its place).
    await page.goto(live + "/routes/new")
    await offline.context.clear_cookies()
    await page.get_by_label("Custom template").fill("after the session")
    await expect(page.locator("#preview")).to_contain_text("your session has ended")
    assert offline.problems == []  # no CSP violation, no script error
    # Only the clips' pictures left the app (and were blocked): Twitch's image host.
    assert all(u.startswith("https://clips-media-assets2.twitch.tv/") for u in offline.blocked)
    await offline.context.close()


async def test_the_form_and_its_preview_without_javascript(
    browser: Browser,
    live: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
    database_url: str,
) -> None:
    hook: SimWebhook = discord_sim.discord.add_webhook()
    offline, page = await signed_in(
        browser, live, settings, sessionmaker, viewport=PHONE, java_script_enabled=False
    )
    await page.goto(live + "/routes/new")
    await page.get_by_label("Name", exact=True).fill("no script")
    await page.get_by_label("Template", exact=True).select_option(label="Compact")
    await page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    await expect(preview.locator(".dc-thumbnail")).to_be_visible()  # compact's small picture
    await expect(page.get_by_label("Name", exact=True)).to_have_value("no script")
    await page.get_by_label("Discord webhook URL").fill(hook.pasted_url)
    await page.get_by_role("button", name="Save route").click()
    await expect(page).to_have_url(re.compile(r"/routes/[0-9]+\?done=created$"))
    await page.get_by_role("link", name="Delete route").click()
    await page.get_by_role("button", name="Delete route").click()
    await expect(page).to_have_url(live + "/routes?done=deleted")
    await expect(page.get_by_text("No routes yet")).to_be_visible()
    assert await fits_width(page)
    if "sqlite" in database_url:
        await shot(page, "routes-nojs-phone")
    assert offline.problems == []
    await offline.context.close()


async def test_what_was_typed_before_the_script_ran_is_previewed(
    browser: Browser,
    live: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
) -> None:
    """The preview's script held back until the form is filled in (a busy server or a slow
    network: a CI run typed the whole form before it ran, and the preview never followed):
    once it runs it finds the form edited and previews it at once."""
    offline, page = await signed_in(browser, live, settings, sessionmaker, viewport=DESKTOP)
    typed = asyncio.Event()

    async def hold(route: Route) -> None:
        await typed.wait()
        await route.continue_()

    await page.route("**/static/routes.js", hold)
    # Not "load": the deferred script holds DOMContentLoaded back, and it is held here.
    await page.goto(live + "/routes/new", wait_until="commit")
    await page.get_by_label("Views at least").fill("1000")
    await page.get_by_label("Template", exact=True).select_option(label="Custom")
    await page.get_by_label("Custom template").fill("Typed early: {{ title }}")
    preview = page.locator("#preview")
    await expect(preview.locator(".dc-message")).to_be_visible()  # the server's card
    assert "Typed early" not in await preview.inner_text()
    typed.set()
    await expect(preview).to_contain_text(f"Typed early: {CLIP_TITLE}")
    assert offline.problems == []
    await offline.context.close()
