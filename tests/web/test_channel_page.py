"""The channel page, /channels/{login}, in-process on both databases: live state, the chart
for each period, top clips and creators, sync state (errors only for admins), recent streams,
escaping, 404 and a bad period."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.api.middleware import PAGE_CSP
from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Channel, ChannelSync
from clipwatch.twitch.live import channel_updated, went_offline, went_online
from tests.conftest import app_client
from tests.factories import helix_clip, store_clips

HOSTILE = "<script>alert(1)</script> speedrun"
SVG = "{http://www.w3.org/2000/svg}"


def _ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def seed(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    clip = dict(broadcaster_id="111", broadcaster_name="Alpha")
    await store_clips(
        sessionmaker,
        [
            helix_clip(id="Top", view_count=900, creator_id="c1", creator_name="Ann",
                       title="best <b>clip</b>", created_at=_ago(1), **clip),
            helix_clip(id="Mid", view_count=50, creator_id="c2", creator_name="Bob",
                       created_at=_ago(1), **clip),
            helix_clip(id="Low", view_count=10, creator_id="c1", creator_name="Ann",
                       created_at=_ago(2), **clip),
            helix_clip(id="Older", view_count=5, creator_id="c3", creator_name="Cid",
                       created_at=_ago(20), **clip),
            helix_clip(id="Oldest", view_count=7000, creator_id="c4", creator_name="Dee",
                       created_at=_ago(60), **clip),
        ],
    )  # fmt: skip
    async with session_scope(sessionmaker) as session:
        for cid, login, name, tracked in (
            ("111", "alpha", "Alpha", True),
            ("333", "gamma", "Gamma", False),
        ):
            row = await session.get(Channel, cid)
            if row is None:
                session.add(Channel(id=cid, login=login, display_name=name, tracked=tracked))
            else:
                row.login, row.display_name, row.tracked = login, name, tracked


@pytest.fixture
async def seeded(
    settings: Settings, cache: CacheManager, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """The seeded app with room for many anonymous requests (the fuzz test below)."""
    await seed(sessionmaker)
    roomy = settings.model_copy(update={"rate_limit_anonymous": "100000/minute"})
    async with app_client(roomy, cache=cache) as http:
        yield http


def bars(html: str) -> list[int]:
    svg = re.search(r"<svg .*?</svg>", html, re.DOTALL)
    assert svg is not None
    root = ET.fromstring(svg.group(0))
    return [
        int(r.get("data-clips", "-1"))
        for r in root.iter(f"{SVG}rect")
        if r.get("class") == "chart-bar"
    ]


def section(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    end = html.find("</section>", start)
    return html[start:end]


async def test_channel_page_content_and_escaping(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seed(sessionmaker)
    started = datetime.now(UTC) - timedelta(hours=2)
    earlier = datetime.now(UTC) - timedelta(days=3)
    assert await went_online(
        sessionmaker, "111", stream_id="s1", started_at=earlier, stream_type="live",
        source="eventsub", title="yesterday <i>stream</i>",
    )  # fmt: skip
    assert await went_offline(
        sessionmaker, "111", source="eventsub", at=earlier + timedelta(hours=3)
    )
    assert await went_online(
        sessionmaker, "111", stream_id="s2", started_at=started, stream_type="live",
        source="poll", title=HOSTILE, viewer_count=4321,
    )  # fmt: skip
    assert await channel_updated(
        sessionmaker, "111", source="eventsub", title=HOSTILE, game_id="42", game_name="Doom & Co"
    )

    page = await client.get("/channels/alpha")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == PAGE_CSP
    html = page.text
    assert "<script>alert(1)" not in html
    assert "<b>clip</b>" not in html
    assert "<i>stream</i>" not in html

    live = section(html, "live-title")
    assert "Live now" in live
    assert "&lt;script&gt;alert(1)&lt;/script&gt; speedrun" in live
    assert "Doom &amp; Co" in live
    assert "4,321 viewers" in live

    # 30 days by default: one bar a day from the period's first (partial) day to today, the
    # 60-day-old clip outside.
    assert len(bars(html)) == 31
    assert sum(bars(html)) == 4
    assert bars(html)[-2] == 2  # yesterday: Top and Mid
    assert 'aria-current="page">30 days' in html
    assert "4 clips, 965 views." in html

    top = section(html, "top-clips-title")
    assert re.findall(r'href="/clips/([^"]+)"', top) == ["Top", "Mid", "Low", "Older"]
    assert "best &lt;b&gt;clip&lt;/b&gt;" in top
    creators = section(html, "top-creators-title")
    assert creators.index("Ann") < creators.index("Bob") < creators.index("Cid")
    assert "Dee" not in creators

    streams = section(html, "streams-title")
    assert streams.index("&lt;script&gt;") < streams.index("yesterday &lt;i&gt;stream&lt;/i&gt;")
    assert "180 min" in streams
    assert ">live<" in streams

    # Its stylesheet (and the Discord message's) are served by the app itself.
    assert '<link rel="stylesheet" href="/static/channel.css">' in html
    for sheet in ("/static/channel.css", "/static/discord.css"):
        css = await client.get(sheet)
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
    assert ".chart-bar" in (await client.get("/static/channel.css")).text

    sync = section(html, "sync-title")
    assert "History: not started" in sync
    assert "Last pass: not yet" in sync


async def test_each_period_charts_its_days(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seed(sessionmaker)
    expected = {"7d": (8, 3), "30d": (31, 4), "90d": (91, 5), "365d": (53, 5)}
    for period, (count, clips) in expected.items():
        page = await client.get("/channels/alpha", params={"period": period})
        assert page.status_code == 200, page.text
        assert len(bars(page.text)) == count, period
        assert sum(bars(page.text)) == clips, period
        assert f'aria-current="page">{period[:-1]} days' in page.text
    year = (await client.get("/channels/alpha", params={"period": "365d"})).text
    assert "clips per week" in year
    top = section(year, "top-clips-title")
    assert re.findall(r'href="/clips/([^"]+)"', top)[0] == "Oldest"
    # The page filled the API's cache entries: the API's same reads are hits.
    for path, params in (("/channels/alpha/stats", {"period": "month"}), ("/channels/alpha", {})):
        api = await client.get(f"/api/v1{path}", params=params)
        assert api.status_code == 200
        assert api.headers["x-cache"] == "hit", path
    month = (await client.get("/api/v1/channels/alpha/stats", params={"period": "month"})).json()
    assert month["clips"] == 4
    # By id as the API answers it.
    assert (await client.get("/channels/111")).status_code == 200


async def test_unknown_untracked_and_bad_period(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seed(sessionmaker)
    for path in ("/channels/nobody", "/channels/gamma"):
        page = await client.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1" in page.text
    for period in ("12d", "", "30d<script>"):
        page = await client.get("/channels/alpha", params={"period": period})
        assert page.status_code in (400, 422), (period, page.status_code)
        assert page.headers["content-type"].startswith("text/html")
        assert "30d<script>" not in page.text


async def _token(sessionmaker: async_sessionmaker[AsyncSession], name: str, admin: bool) -> str:
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, name, admin=admin)
        scopes = frozenset({"read", "write", "admin"} if admin else {"read"})
        _, plaintext = await service.create_token(session, user, name="t", scopes=scopes)
    return plaintext


async def test_sync_errors_only_for_admins(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seed(sessionmaker)
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        session.add(
            ChannelSync(
                channel_id="111",
                backfill_done_until=datetime(2024, 5, 1, tzinfo=UTC),
                last_incremental_at=now - timedelta(minutes=5),
                last_error="Helix answered 503 <b>upstream</b>",
                last_error_at=now - timedelta(minutes=1),
                consecutive_failures=3,
            )
        )
    admin = await _token(sessionmaker, "root", admin=True)
    reader = await _token(sessionmaker, "viewer", admin=False)
    pages: dict[str, Any] = {}
    for who, headers in (
        ("anonymous", {}),
        ("reader", {"Authorization": f"Bearer {reader}"}),
        ("admin", {"Authorization": f"Bearer {admin}"}),
    ):
        page = await client.get("/channels/alpha", headers=headers)
        assert page.status_code == 200, page.text
        pages[who] = section(page.text, "sync-title")
    for who in ("anonymous", "reader", "admin"):
        assert "History: running (stored back to" in pages[who]
        assert "2024-05-01" in pages[who]
        assert "5 minutes ago" in pages[who]
    for who in ("anonymous", "reader"):
        assert "Helix answered" not in pages[who]
        assert "Last sync error" not in pages[who]
    assert "Last sync error" in pages["admin"]
    assert "3 in a row" in pages["admin"]
    assert "Helix answered 503 &lt;b&gt;upstream&lt;/b&gt;" in pages["admin"]
    # An admin's page is never stored for others: the anonymous one after it has no error.
    again = await client.get("/channels/alpha")
    assert "Helix answered" not in again.text
    assert again.headers["cache-control"] == "no-store"

    # A browser: the admin's session cookie (opened with the token), no Authorization header.
    login = await client.post("/auth/token-login", headers={"Authorization": f"Bearer {admin}"})
    assert login.status_code == 200, login.text
    assert client.cookies
    by_cookie = await client.get("/channels/alpha")
    assert "Helix answered 503 &lt;b&gt;upstream&lt;/b&gt;" in section(by_cookie.text, "sync-title")
    client.cookies.clear()
    assert "Helix answered" not in (await client.get("/channels/alpha")).text


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    # Anything that reaches this route: one path segment ("/" and dot segments go elsewhere).
    login=st.one_of(
        st.sampled_from(["alpha", "111", "gamma", "nobody"]),
        st.text(min_size=1, max_size=80).filter(lambda s: "/" not in s and s.strip(".") != ""),
    ),
    period=st.one_of(st.sampled_from(["7d", "30d", "90d", "365d"]), st.text(max_size=12)),
)
async def test_any_login_and_period_is_a_page_never_a_500(
    seeded: httpx.AsyncClient, login: str, period: str
) -> None:
    page = await seeded.get(f"/channels/{quote(login, safe='')}", params={"period": period})
    assert page.status_code in (200, 404, 422), (login, period, page.status_code)
    assert page.headers["content-type"].startswith("text/html")
    if page.status_code == 200:
        assert login in ("alpha", "111")
        assert period in ("7d", "30d", "90d", "365d")
