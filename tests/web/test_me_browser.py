"""The Me pages in a real browser (Debian's chromium, everything but the app blocked), both
databases: log in with a token through the form, see /me, create a token (the secret shown),
revoke it after the confirmation page, set preferences, see the feed (and "More clips" in
place), log out. No CSP violation; no serious axe-core violation on /login, /me and /me/feed at
1280 and 390 px; screenshots var/screenshots/login-*.png, me-*.png, feed-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from tests.factories import helix_clip, store_clips
from tests.web.live import serving_app, sqlite_only  # noqa: F401 (the fixture)
from tests.web.test_accessibility import serious_violations
from tests.web.test_browser import (  # noqa: F401 - browser is the fixture
    DESKTOP,
    PHONE,
    Offline,
    browser,
    fits_width,
    shot,
)


@pytest.fixture
async def token(engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    clips: list[dict[str, Any]] = [
        helix_clip(
            id=f"Alpha{n:02d}",
            title=f"alpha clip number {n} with a title long enough to wrap <b>twice</b>",
            broadcaster_id="111",
            broadcaster_name="AlphaStreams",
            view_count=1000 + n,
            created_at=f"2025-01-{n % 28 + 1:02d}T10:00:00Z",
        )
        for n in range(30)
    ]
    clips += [helix_clip(id=f"Other{n:02d}", broadcaster_id="222") for n in range(10)]
    await store_clips(sessionmaker, clips)
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, "ann")
        _, plaintext = await service.create_token(
            session, user, name="laptop", scopes=frozenset({"read", "write"})
        )
    return plaintext


@pytest.fixture
def live(settings: Settings, token: str) -> Iterator[str]:
    with serving_app(settings) as base:
        yield base


async def check_page(page: Page, name: str, shots: bool) -> None:
    """At desktop and phone width: no serious axe-core finding, no sideways scroll."""
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(viewport)
        assert await serious_violations(page) == [], (name, label)
        assert await fits_width(page), (name, label)
        if shots:
            await shot(page, f"{name}-{label}")
    await page.set_viewport_size(DESKTOP)


async def test_me_pages_in_a_browser(
    browser: Browser,  # noqa: F811 - the fixture
    live: str,
    token: str,
    database_url: str,
) -> None:
    shots = "sqlite" in database_url
    offline = Offline(live)
    page = await offline.open(browser, viewport=DESKTOP)

    # The feed asks for a login first, and comes back to it after.
    await page.goto(live + "/me/feed")
    await expect(page).to_have_url(live + "/login?next=/me/feed")
    await expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    await check_page(page, "login", shots)
    # A wrong token: the error is tied to the field.
    await page.get_by_label("API token").fill("cw_wrong")
    await page.get_by_role("button", name="Log in").click()
    field = page.get_by_label("API token")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#login-token-error")).to_contain_text("did not log you in")
    await expect(field).to_have_value("")
    await field.fill(token)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(live + "/me/feed")
    await expect(page.get_by_role("link", name="Me (ann)")).to_be_visible()

    # /me: who I am and my tokens.
    await page.get_by_role("link", name="Me (ann)").click()
    await expect(page.get_by_role("heading", name="Me: ann", level=1)).to_be_visible()
    await expect(page.get_by_text("with the API token “laptop”")).to_be_visible()
    await check_page(page, "me", shots)

    # Create a token: its secret is shown this once.
    await page.get_by_label("Token name").fill("spare")
    await page.get_by_role("checkbox", name="write").check()
    await page.get_by_role("button", name="Create token").click()
    secret = page.locator(".secret")
    await expect(secret).to_be_visible()
    await expect(secret).to_have_text(re.compile(r"^cw_[a-z0-9]{8}_"))
    await expect(page.get_by_text("it will not be shown again")).to_be_visible()
    if shots:
        await shot(page, "me-token-created")
    # Revoke it, after a confirmation (a page; no JavaScript needed).
    await page.get_by_role("button", name="Revoke token spare", exact=True).click()
    await expect(
        page.get_by_role("heading", name=re.compile("Revoke the token “spare”"))
    ).to_be_visible()
    await page.get_by_role("button", name="Yes, revoke “spare”").click()
    await expect(page.locator(".notice")).to_have_text("Token revoked: it no longer works.")
    await expect(page.get_by_role("button", name="Revoke token spare", exact=True)).to_have_count(0)
    await expect(page.get_by_role("button", name="Revoke token laptop", exact=True)).to_be_visible()
    await expect(page.locator(".secret")).to_have_count(0)

    # Preferences: a mistake first, then saved.
    await page.get_by_label("Channels I follow").fill("111")
    await page.get_by_label("Views at least").fill("lots")
    await page.get_by_role("button", name="Save preferences").click()
    views = page.get_by_label("Views at least")
    await expect(views).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#pref-min-views-error")).to_have_text("must be a whole number")
    await views.fill("")
    await page.get_by_label("Sort my feed by").select_option("views")
    await page.get_by_role("button", name="Save preferences").click()
    await expect(page.locator(".notice")).to_have_text("Preferences saved.")
    await expect(page.get_by_label("Channels I follow")).to_have_value("111")

    # The feed: only the followed channel, most viewed first; more in place.
    await page.get_by_role("link", name="My feed", exact=True).click()
    await expect(page).to_have_url(live + "/me/feed")
    cards = page.locator("#results > li")
    await expect(cards).to_have_count(24)
    await expect(cards.first).to_contain_text("alpha clip number 29")
    await expect(cards.first).to_contain_text("<b>twice</b>")
    await check_page(page, "feed", shots)
    await page.get_by_role("link", name="More clips").click()
    await expect(cards).to_have_count(30)
    await expect(page).to_have_url(live + "/me/feed")  # in place, by script
    titles = await page.locator("#results .title").all_inner_texts()
    assert all(t.startswith("alpha clip") for t in titles)

    # Log out: the header offers to log in again, and /me asks for it.
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(live + "/")
    await expect(page.get_by_role("link", name="Log in")).to_be_visible()
    await page.goto(live + "/me")
    await expect(page).to_have_url(live + "/login?next=/me")
    assert offline.problems == []  # no CSP violation, no page error
    await offline.context.close()
