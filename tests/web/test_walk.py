"""The whole web page as a newcomer uses it, in a real browser (issue 14's walk): `clipwatch
serve` in demo mode as a fresh checkout runs it, then search → filter → open a clip → the
channel page → log in with a token made by `clipwatch tokens create` → create a route with a
custom template, watch the live preview, save it, send a test → see the message on the demo's
Discord page → revoke a token. Once at desktop width and once at a phone's (390 px), and the
search and clip pages once more with JavaScript off. Every request that is not to the app is
blocked. Demo mode runs on its own SQLite database by design; the pages on PostgreSQL are walked
by the per-page browser tests.

Run: .venv/bin/python -m pytest tests/web/test_walk.py
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import TEST_SECRET
from tests.processes import CLIPWATCH, serving
from tests.web.test_accessibility import serious_violations
from tests.web.test_browser import DESKTOP, PHONE, Offline, browser, fits_width, shot

__all__ = ["browser"]  # the fixture, used here by name

DEMO_DEADLINE_S = 90.0
SCOPES = ("--scope", "read", "--scope", "write", "--scope", "admin")
DEMO_CHANNEL = "speedrunner"  # one of the demo's channels (runtime/demo.py DEMO_CHANNELS)


def _newcomer_env() -> dict[str, str]:
    """What a fresh checkout has: no CLIPWATCH_* settings but the secret key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPWATCH_")}
    env["CLIPWATCH_SECRET_KEY"] = TEST_SECRET
    return env


def _until(check: Any, what: str, deadline_s: float = DEMO_DEADLINE_S) -> Any:
    deadline = time.monotonic() + deadline_s
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {deadline_s} s: {what}"
        time.sleep(0.2)  # polling interval while waiting on the condition above


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`clipwatch serve` in demo mode, once the demo's channels are archived."""
    with serving(tmp_path, _newcomer_env()) as (base, _process):

        def archived() -> bool:
            status = httpx.get(f"{base}/api/v1/status", timeout=5).json()
            channels = httpx.get(f"{base}/api/v1/channels", timeout=5).json()["data"]
            tracked = [c for c in channels if c.get("tracked")]
            return (
                status.get("mode") == "demo"
                and len(tracked) == 3
                and all((c.get("sync") or {}).get("backfill") == "complete" for c in tracked)
            )

        _until(archived, "the demo's channels archived")
        yield base, tmp_path


def _mint_token(workdir: Path, name: str) -> str:
    """`clipwatch tokens create demo` in the demo's directory: the demo admin's token."""
    answer = subprocess.run(
        [
            CLIPWATCH,
            "tokens",
            "create",
            "demo",
            "--name",
            name,
            "--scope",
            "read",
            "--scope",
            "write",
            "--scope",
            "admin",
        ],
        cwd=workdir,
        env=_newcomer_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = answer.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\S{20,}", token), answer.stdout
    return token


async def _fits(page: Page) -> None:
    """No sideways scroll once the page has its styles; on failure, what sticks out."""
    await page.wait_for_load_state("load")  # a click's navigation may still be loading CSS
    if await fits_width(page):
        return
    wide = await page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .slice(0, 8).map(e => e.outerHTML.slice(0, 160) + ' ' +
                Math.round(e.getBoundingClientRect().right))"""
    )
    raise AssertionError(f"{page.url} scrolls sideways: {wide}")


async def _accessible(page: Page, where: str) -> None:
    found = await serious_violations(page)
    assert found == [], f"{where}: {found}"


async def _walk(browser: Browser, base: str, workdir: Path, width: str) -> None:
    offline = Offline(base)
    page = await offline.open(browser, viewport=DESKTOP if width == "desktop" else PHONE)
    # Demo start: the search page with the demo's clips.
    await page.goto(base + "/")
    await expect(page.get_by_text("Demo mode")).to_be_visible()
    await expect(page.locator("#results > li")).to_have_count(24)
    # Search for a word of the first card's title.
    first_title = await page.locator("#results > li h2").first.inner_text()
    word = max(re.findall(r"[A-Za-z]{4,}", first_title), key=len)
    await page.get_by_label("Words in the title, channel or creator").fill(word)
    await page.get_by_role("button", name="Search").last.click()
    await expect(page).to_have_url(re.compile(rf"q={word}"))
    await expect(page.locator("#results > li").first).to_be_visible()
    # Filter: one channel, most viewed first.
    await page.get_by_label("Words in the title, channel or creator").fill("")
    await page.get_by_label("Channel (login or id)").fill(DEMO_CHANNEL)
    await page.get_by_label("Sort").select_option("views")
    await page.get_by_role("button", name="Search").last.click()
    await expect(page).to_have_url(re.compile(rf"broadcaster={DEMO_CHANNEL}.*sort=views"))
    cards = page.locator("#results > li")
    await expect(cards).to_have_count(24)
    await _fits(page)
    await shot(page, f"walk-search-{width}")
    # Open the top clip.
    await cards.first.locator("h2 a").click()
    await expect(page).to_have_url(re.compile(r"/clips/[^/?]+$"))
    await expect(page.locator("iframe")).to_have_attribute(
        "src", re.compile(r"^https://clips\.twitch\.tv/embed\?clip=.+&parent=127\.0\.0\.1$")
    )
    await _accessible(page, "clip page")
    # The channel page, from the clip's channel link.
    await page.locator(".facts a[href^='/channels/']").first.click()
    await expect(page).to_have_url(re.compile(r"/channels/[^/?]+$"))
    await expect(page.locator("svg[role='img']")).to_be_visible()
    await _accessible(page, "channel page")
    # Log in with a token made by the CLI.
    token = _mint_token(workdir, f"walk-{width}")
    await page.get_by_role("link", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/login"))
    await _accessible(page, "login page")
    await expect(page.locator("#demo-login")).to_contain_text("clipwatch tokens create demo")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("link", name=re.compile(r"^Me \(demo\)"))).to_be_visible()
    # The demo's Discord page gives a webhook URL to paste.
    await page.get_by_role("link", name="Demo Discord").click()
    hook = (await page.locator("#demo-webhook-url").inner_text()).strip()
    assert hook.startswith("https://discord.com/api/webhooks/")
    # A route with a custom template; the preview follows the typing.
    await page.get_by_role("link", name="Routes").click()
    await page.get_by_role("link", name="New route").click()
    await page.get_by_label("Name", exact=True).fill(f"walk {width}")
    await page.get_by_label("Discord webhook URL").fill(hook)
    await page.get_by_label("Template", exact=True).select_option(label="Custom")
    marker = f"Walked at {width}"
    await page.get_by_label("Custom template").fill(marker + ": {{ title }} on {{ channel }}")
    await expect(page.locator("#preview")).to_contain_text(marker)
    await _accessible(page, "route form")
    await shot(page, f"walk-route-form-{width}")
    await page.get_by_role("button", name="Save route").click()
    await expect(page.get_by_role("button", name="Send test")).to_be_visible()
    await page.get_by_role("button", name="Send test").click()
    await expect(page.locator(".notice")).to_be_visible()
    # The test message, on the demo's Discord page.
    await page.get_by_role("link", name="Demo Discord").click()
    # The demo's own routes keep posting new clips meanwhile: the test message is the one
    # with the marker, there once.
    messages = page.locator("article.discord-message")
    await expect(messages.filter(has_text=marker)).to_have_count(1, timeout=30_000)
    await _accessible(page, "demo Discord page")
    await shot(page, f"walk-demo-discord-{width}")
    # Make a token on the Me page, then revoke it.
    await page.get_by_role("link", name=re.compile(r"^Me \(demo\)")).click()
    await page.get_by_label("Token name").fill(f"spare-{width}")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.locator(".secret")).to_be_visible()
    await page.get_by_role("button", name=f"Revoke token spare-{width}").click()
    confirm = page.get_by_role("button", name=re.compile(r"^(Revoke|Yes)"))
    if await page.get_by_role("button", name=f"Revoke token spare-{width}").count() == 0:
        await confirm.first.click()  # a confirmation step without JavaScript
    await expect(page.get_by_text(f"spare-{width}", exact=True)).to_have_count(0)
    await expect(page.get_by_role("button", name=f"Revoke token walk-{width}")).to_be_visible()
    await _fits(page)
    assert offline.problems == []
    await offline.context.close()


async def _without_javascript(browser: Browser, base: str) -> None:
    offline = Offline(base)
    page = await offline.open(browser, viewport=PHONE, java_script_enabled=False)
    await page.goto(base + "/")
    await page.get_by_label("Channel (login or id)").fill(DEMO_CHANNEL)
    await page.get_by_role("button", name="Search").last.click()
    await expect(page).to_have_url(re.compile(rf"/\?broadcaster={DEMO_CHANNEL}$"))
    await expect(page.locator("#results > li")).to_have_count(24)
    # "More clips" is a plain link to the next page.
    await page.get_by_role("link", name="More clips").click()
    await expect(page).to_have_url(re.compile(r"cursor="))
    await expect(page.locator("#results > li").first).to_be_visible()
    await page.locator("#results > li").first.locator("h2 a").click()
    await expect(page).to_have_url(re.compile(r"/clips/[^/?]+$"))
    await expect(page.locator("iframe")).to_have_count(1)
    await _fits(page)
    await shot(page, "walk-clip-nojs-phone")
    assert offline.problems == []
    await offline.context.close()


async def test_newcomer_walk(browser: Browser, demo: tuple[str, Path]) -> None:
    base, workdir = demo
    await _walk(browser, base, workdir, "desktop")
    await _walk(browser, base, workdir, "phone")
    await _without_javascript(browser, base)
