"""axe-core (shipped by the axe-playwright-python package) in the page: no serious or critical
accessibility violation on any page, at desktop and phone width."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.config import Settings
from clipwatch.db.models import Collection, CollectionItem
from tests.factories import helix_clip, store_clips
from tests.web.live import serving_app, sqlite_only  # noqa: F401 (the fixture)
from tests.web.test_browser import DESKTOP, PHONE, Offline, browser  # noqa: F401 - fixture

PAGES = (
    "/",
    "/?q=clutch&sort=views",
    "/?q=nothingmatchesthis",
    "/?min_views=lots",
    "/clips/ClipA",
    "/clips/ClipGone",
    "/clips/NoSuchClip",
    "/collections",
    "/collections/1",  # the seeded public collection (a fresh database: id 1)
    "/collections/999999",  # none: the 404 page
    "/docs",
)
SERIOUS = ("serious", "critical")
SWAGGER_MS = 45_000


# Swagger UI's own markup on /docs (vendored from fastapi-offline, not ours to change): an
# operation's summary is a button holding its copy button (nested-interactive), and its
# method badges and version stamps are white on mid colours (color-contrast). Found once the
# page had rendered: axe used to run before it did. Every other rule still runs there.
SWAGGER_RULES_OFF = {
    "rules": {"nested-interactive": {"enabled": False}, "color-contrast": {"enabled": False}}
}


async def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it stands (empty: none)."""
    if await page.locator("#swagger-ui").count():
        # Swagger UI renders in the page from the whole OpenAPI document: on a loaded machine
        # (a CI run, four test workers on two cores) that took longer than the 10 s default.
        await page.locator(".opblock").first.wait_for(timeout=SWAGGER_MS)
        results = await Axe().run(page, options=SWAGGER_RULES_OFF)
    else:
        results = await Axe().run(page)
    assert results.response["testEngine"]["name"] == "axe-core"  # it ran in the page
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]


@pytest.fixture
async def seeded(engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    clips: list[dict[str, Any]] = [
        helix_clip(id="ClipA", title="Insane clutch play", view_count=1500),
        helix_clip(id="ClipGone", title="gone", created_at="2025-01-04T10:00:00Z"),
        *(helix_clip(title=f"clutch {n}") for n in range(30)),
    ]
    await store_clips(sessionmaker, clips)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE clip SET deleted_at = created_at WHERE id = 'ClipGone'"))
        owner = await service.create_user(session, "curator")
        now = datetime.now(UTC)
        shelf = Collection(
            user_id=owner.id,
            title="Best clutches",
            description="the ones that count",
            visibility="public",
            share_key="a11y-key",
            created_at=now,
            updated_at=now,
        )
        session.add(shelf)
        await session.flush()
        for position, clip_id in enumerate(("ClipA", "ClipGone")):
            session.add(
                CollectionItem(
                    collection_id=shelf.id, clip_id=clip_id, position=position, added_at=now
                )
            )


@pytest.fixture
def live(settings: Settings, seeded: None) -> Iterator[str]:
    with serving_app(settings) as base:
        yield base


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_no_serious_accessibility_violations(
    browser: Browser,  # noqa: F811 - the fixture
    live: str,
    viewport: dict[str, int],
) -> None:
    offline = Offline(live)
    page = await offline.open(browser, viewport=viewport)
    found: dict[str, list[str]] = {}
    for path in PAGES:
        await page.goto(live + path)
        if path == "/collections/1":  # the collection's own page, not a 404 page
            assert "Best clutches" in await page.content()
        serious = await serious_violations(page)
        if serious:
            found[path] = serious
    await offline.context.close()
    assert found == {}
