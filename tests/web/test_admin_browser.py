"""The admin pages and the demo's Discord page in a real browser (Debian's chromium, everything
but the app blocked), both databases: an admin's session cookie, every admin page, an incident
acknowledged by its button, a channel's removal asked and cancelled, the demo page with a
message the simulated Discord received (and one that arrives while it is open), no CSP
violation, no serious axe-core violation and no sideways scroll at 1280 and 390 px;
screenshots var/screenshots/admin-*.png and demo-discord-*.png."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Channel, ChannelSync
from clipwatch.discord.simulator import DiscordSimulator, SimWebhook
from clipwatch.simhttp import LoopbackServer
from tests.web.live import serving_app, sqlite_only  # noqa: F401 (the fixture)
from tests.web.test_accessibility import serious_violations
from tests.web.test_admin_page import HOSTILE, Person, dead_delivery, firing_incident, person
from tests.web.test_browser import (  # noqa: F401 - browser is the fixture
    DESKTOP,
    PHONE,
    Offline,
    browser,
    fits_width,
    shot,
)

REFRESH_WAIT_MS = 15_000
PAGES = (
    ("/admin", "Admin: status", "admin-status"),
    ("/admin/channels", "Admin: channels", "admin-channels"),
    ("/admin/deliveries", "Admin: deliveries", "admin-deliveries"),
    ("/admin/incidents", "Admin: incidents", "admin-incidents"),
    ("/demo/discord", "Demo Discord", "demo-discord"),
)


@dataclass
class World:
    base: str
    admin: Person
    incident_id: int
    discord: DiscordSimulator
    discord_base: str
    hook: SimWebhook

    async def post_message(self, payload: dict[str, Any]) -> None:
        async with httpx.AsyncClient() as http:
            url = f"{self.discord_base}/api/webhooks/{self.hook.id}/{self.hook.token}"
            answer = await http.post(url, json=payload)
            assert answer.status_code in (200, 204), answer.text


@pytest.fixture
async def world(
    settings: Settings, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[World]:
    roomy = settings.model_copy(update={"rate_limit_anonymous": "100000/minute"})
    admin = await person(sessionmaker, roomy, "root", admin=True)
    async with session_scope(sessionmaker) as session:
        session.add(
            Channel(id="1001", login="alphastreams", display_name="AlphaStreams", tracked=True)
        )
        await session.flush()
        session.add(
            ChannelSync(
                channel_id="1001",
                last_error="Helix answered 503 <b>busy</b>",
                last_error_at=datetime.now(UTC) - timedelta(minutes=3),
                consecutive_failures=2,
            )
        )
    await dead_delivery(sessionmaker, roomy, "night clips")
    incident_id = await firing_incident(sessionmaker, "critical")
    discord = DiscordSimulator()
    server = LoopbackServer(discord)
    discord_base = await server.start()
    hook = discord.add_webhook()
    try:
        with serving_app(roomy, demo_sink=f"{discord_base}/_sim/messages") as base:
            built = World(base, admin, incident_id, discord, discord_base, hook)
            await built.post_message(
                {
                    "content": f"New clip {HOSTILE}",
                    "embeds": [
                        {
                            "title": "Insane clutch play",
                            "url": "https://clips.twitch.tv/ClipA",
                            "color": 0x9146FF,
                            "fields": [{"name": "Views", "value": "1,500", "inline": True}],
                        }
                    ],
                }
            )
            yield built
    finally:
        await server.stop()


async def test_admin_pages_in_a_browser(
    browser: Browser,  # noqa: F811 - the fixture
    world: World,
    database_url: str,
) -> None:
    live = world.base
    offline = Offline(live)
    page = await offline.open(browser, viewport=DESKTOP)
    await offline.context.add_cookies(
        [{"name": "cw_session", "value": world.admin.cookie, "url": live}]
    )
    await page.goto(live + "/")
    await page.get_by_role("link", name="Admin", exact=True).click()
    await expect(page).to_have_url(live + "/admin")
    await expect(page.get_by_role("heading", name="Admin: status", level=1)).to_be_visible()
    await expect(page.get_by_text("1 open")).to_be_visible()

    # Every section by its link.
    nav = page.get_by_role("navigation", name="Admin sections")
    await nav.get_by_role("link", name="Channels").click()
    await expect(page.get_by_role("row", name="AlphaStreams")).to_be_visible()
    await expect(page.get_by_text("Helix answered 503 <b>busy</b>")).to_be_visible()
    await expect(page.get_by_text("(2 in a row, ")).to_be_visible()
    # Remove asks first (a page, no script); Cancel leaves the channel tracked.
    await page.get_by_role("button", name="Remove AlphaStreams").click()
    await expect(page.get_by_role("heading", name="Stop tracking AlphaStreams?")).to_be_visible()
    await page.get_by_role("link", name="Cancel").click()
    await expect(page.get_by_role("row", name="AlphaStreams")).to_be_visible()
    await page.get_by_role("button", name="Sync now AlphaStreams").click()
    await expect(page.get_by_role("status").filter(has_text="Sync requested")).to_be_visible()

    await nav.get_by_role("link", name="Deliveries").click()
    await expect(page.get_by_role("cell", name="night clips")).to_be_visible()
    await expect(page.get_by_role("button", name="Retry delivery")).to_be_visible()

    await nav.get_by_role("link", name="Incidents").click()
    incident = page.locator(f"#incident-{world.incident_id}")
    await expect(incident.get_by_text("Dead deliveries <script>alert(1)</script>")).to_be_visible()
    await incident.get_by_label("Note (optional)").fill("looking at the webhook")
    await incident.get_by_role("button", name="Acknowledge").click()
    await expect(page).to_have_url(live + "/admin/incidents?done=acknowledged")
    await expect(page.get_by_role("status").filter(has_text="acknowledged")).to_be_visible()
    await expect(incident.get_by_text("looking at the webhook")).to_be_visible()
    await expect(incident.get_by_role("button", name="Acknowledge")).to_have_count(0)

    # The demo's Discord: the message rendered, and one sent meanwhile shows up in place.
    await page.get_by_role("link", name="Demo Discord").click()
    await expect(page.locator("article.discord-message")).to_have_count(1)
    await expect(page.get_by_role("link", name="Insane clutch play")).to_be_visible()
    await expect(page.get_by_text(f"New clip {HOSTILE}")).to_be_visible()
    await expect(page.locator("#demo-webhook-url")).to_have_text(
        f"https://discord.com/api/webhooks/{_newest_hook(world).id}/{_newest_hook(world).token}"
    )
    await world.post_message({"content": "fresh from a route test"})
    # The page's script reloads the list every 5 s.
    await expect(page.locator("article.discord-message").first).to_contain_text(
        "fresh from a route test", timeout=REFRESH_WAIT_MS
    )
    await expect(page.locator("article.discord-message")).to_have_count(2)

    for viewport, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        await page.set_viewport_size(viewport)
        for path, heading, name in PAGES:
            await page.goto(live + path)
            await expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()
            assert await fits_width(page), (path, label)
            assert await serious_violations(page) == [], (path, label)
            if "sqlite" in database_url:
                await shot(page, f"{name}-{label}")
    assert offline.problems == []  # no CSP violation, no page error
    await offline.context.close()


def _newest_hook(world: World) -> SimWebhook:
    """The webhook the page made on the simulator (the one after the test's own)."""
    made = [h for h in world.discord.webhooks.values() if h.id != world.hook.id]
    assert len(made) == 1
    return made[0]
