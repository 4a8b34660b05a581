"""The admin pages and the demo's Discord page, in process on both databases: who may see them,
every action through the API's own services (channels through the Twitch simulator, sync now
as the cadence reads it, dead deliveries retried, incidents acknowledged and resolved), the
demo sink page over a Discord simulator on loopback; hypothesis over the forms: never a 500."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.accounts.credentials import csrf_token
from clipwatch.accounts.secrets import seal
from clipwatch.accounts.service import SessionPolicy
from clipwatch.api.app import create_app
from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import (
    Channel,
    ChannelSync,
    Delivery,
    Incident,
    IncidentNote,
    NotificationRoute,
)
from clipwatch.db.repositories import cadence as cadence_repo
from clipwatch.discord.simulator import DiscordSimulator
from clipwatch.simhttp import LoopbackServer
from clipwatch.twitch.cadence import CadencePolicy, Estimates, plan_tick, recent_due_at
from tests.conftest import app_client
from tests.twitch.conftest import Sim, sim, twitch_settings  # noqa: F401 - fixtures

ADMIN_PAGES = ("/admin", "/admin/channels", "/admin/deliveries", "/admin/incidents")
ACTIONS = (
    "/admin/channels/add",
    "/admin/channels/speedrunner/remove",
    "/admin/channels/speedrunner/sync",
    "/admin/deliveries/1/retry",
    "/admin/incidents/1/ack",
    "/admin/incidents/1/resolve",
)
FORM = {"content-type": "application/x-www-form-urlencoded"}
HOSTILE = "<script>alert(1)</script>"


@dataclass(frozen=True)
class Person:
    cookie: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": f"cw_session={self.cookie}"}


async def person(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, name: str, *, admin: bool
) -> Person:
    """A signed-in browser: a session opened as the login does, and its CSRF proof."""
    policy = SessionPolicy(
        idle=timedelta(hours=1), absolute=timedelta(days=1), key=settings.signing_key
    )
    scopes = frozenset({"read", "write", "admin"} if admin else {"read", "write"})
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, name, admin=admin)
        row, secret = await service.open_session(session, user, scopes=scopes, policy=policy)
        return Person(secret, csrf_token(settings.signing_key, row.secret_hash))


async def post(client: httpx.AsyncClient, who: Person, path: str, **fields: str) -> httpx.Response:
    body = {"csrf": who.csrf, **fields}
    return await client.post(path, data=body, headers={**who.headers, **FORM})


def section(html: str, element_id: str) -> str:
    """The text of the element with this id up to the next section (enough for asserts)."""
    start = html.index(f'id="{element_id}"')
    end = html.find("</section>", start)
    return html[start : end if end > 0 else None]


@pytest.fixture
def roomy(settings: Settings) -> Settings:
    # Pages count against the anonymous limit; these tests make many requests.
    return settings.model_copy(update={"rate_limit_anonymous": "100000/minute"})


@pytest.fixture
async def client(
    roomy: Settings, engine: Any, cache: CacheManager
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(roomy, cache=cache) as http:
        yield http


async def test_only_admins_see_the_admin_pages(
    client: httpx.AsyncClient, roomy: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    member = await person(sessionmaker, roomy, "member", admin=False)
    admin = await person(sessionmaker, roomy, "root", admin=True)
    for path in ADMIN_PAGES:
        anonymous = await client.get(path)
        assert anonymous.status_code == 303, path
        assert anonymous.headers["location"] == f"/login?next={quote(path)}"
        refused = await client.get(path, headers=member.headers)
        assert refused.status_code == 404, path
        assert refused.headers["content-type"].startswith("text/html")
        shown = await client.get(path, headers=admin.headers)
        assert shown.status_code == 200, (path, shown.text[:500])
        assert 'aria-current="page">' in shown.text
        assert "<script>" not in shown.text
        assert " style=" not in shown.text
    for path in ACTIONS:
        anonymous = await client.post(path, data={"csrf": "x"}, headers=FORM)
        assert anonymous.status_code == 303, path
        assert anonymous.headers["location"] == f"/login?next={quote(path)}"
        assert (await post(client, member, path)).status_code == 404, path
        missing = await client.post(path, data={"logins": "x"}, headers={**admin.headers, **FORM})
        assert missing.status_code == 403, path
        assert "proof" in missing.text
        other_site = await client.post(
            path,
            data={"csrf": admin.csrf},
            headers={**admin.headers, **FORM, "Origin": "https://evil.example"},
        )
        assert other_site.status_code == 403, path


async def test_status_shows_what_the_api_computes(
    client: httpx.AsyncClient, roomy: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    admin = await person(sessionmaker, roomy, "root", admin=True)
    await dead_delivery(sessionmaker, roomy, "status route")
    await firing_incident(sessionmaker, "critical")
    api = (await client.get("/api/v1/status")).json()
    page = (await client.get("/admin", headers=admin.headers)).text
    assert api["version"] in page
    assert f"<dd>{api['database']}</dd>" in page
    assert f"<dd>{api['mode']}</dd>" in page
    assert api["eventsub"] in page
    assert "1 dead" in page
    assert "0 pending" in page
    assert ">1 open</a> (1 critical)" in page
    assert api["problems"]
    for line in api["problems"]:
        assert str(escape(line)) in page
    assert all(f'href="{p}"' in page for p in ADMIN_PAGES)


async def test_channels_add_sync_and_remove_through_twitch(
    twitch_settings: Settings,  # noqa: F811 - the fixture
    sim: Sim,  # noqa: F811 - the fixture
    sessionmaker: async_sessionmaker[AsyncSession],
    cache: CacheManager,
) -> None:
    sim.twitch.add_channel("speedrunner", clips=10, years=0.1)
    sim.twitch.add_channel("quietone", clips=5, years=0.1)
    settings = twitch_settings.model_copy(update={"rate_limit_anonymous": "100000/minute"})
    admin = await person(sessionmaker, settings, "root", admin=True)
    async with app_client(settings, cache=cache) as client:
        added = await post(client, admin, "/admin/channels/add", logins="speedrunner")
        assert added.status_code == 303, added.text
        assert added.headers["location"] == "/admin/channels?done=added"
        page = await client.get(added.headers["location"], headers=admin.headers)
        assert "Channel tracked" in page.text
        assert 'id="channel-speedrunner"' in page.text
        assert "due now" in section(page.text, "tracked-title")  # never synced: due at once

        unknown = await post(client, admin, "/admin/channels/add", logins="quietone, nosuchchannel")
        assert unknown.status_code == 422
        assert "Tracked: quietone" in unknown.text
        assert "Twitch knows no channel named nosuchchannel" in unknown.text
        assert 'aria-describedby="logins-hint logins-error"' in unknown.text
        assert 'id="channel-quietone"' in unknown.text  # the known one was added

        bad = await post(client, admin, "/admin/channels/add", logins=f"fine {HOSTILE}")
        assert bad.status_code == 422
        assert "is not a Twitch login" in bad.text
        assert HOSTILE not in bad.text
        assert "&lt;script&gt;" in bad.text
        empty = await post(client, admin, "/admin/channels/add", logins="  ")
        assert empty.status_code == 422
        assert "enter 1 to 100 Twitch logins" in empty.text

        # Sync now: the channel's recent step comes due, and the cadence would take it.
        later = datetime.now(UTC) + timedelta(hours=6)
        async with session_scope(sessionmaker) as session:
            channel = (
                await session.scalars(select(Channel).where(Channel.login == "speedrunner"))
            ).one()
            channel_id = channel.id
            state = await session.get(ChannelSync, channel_id)
            if state is None:
                state = ChannelSync(channel_id=channel_id)
                session.add(state)
            state.last_incremental_at, state.next_sync_at = datetime.now(UTC), None
        policy = CadencePolicy.from_settings(settings)
        assert not await cadence_takes(sessionmaker, policy, channel_id)
        page = await client.get("/admin/channels", headers=admin.headers)
        assert "due now" not in section(page.text, "channel-speedrunner")
        synced = await post(client, admin, "/admin/channels/speedrunner/sync")
        assert synced.status_code == 303
        assert synced.headers["location"] == "/admin/channels?done=sync"
        async with session_scope(sessionmaker) as session:
            state = await session.get(ChannelSync, channel_id)
            assert state is not None
            assert state.next_sync_at is not None
            assert datetime.now(UTC) - state.next_sync_at < timedelta(minutes=1)
            assert state.next_sync_at < later
        assert await cadence_takes(sessionmaker, policy, channel_id)
        page = await client.get("/admin/channels?done=sync", headers=admin.headers)
        assert "Sync requested" in page.text
        assert "due now" in section(page.text, "channel-speedrunner")
        missing = await post(client, admin, "/admin/channels/nobody/sync")
        assert missing.status_code == 404
        assert "No tracked channel nobody" in missing.text

        # Remove: a confirmation first (no script), then the channel stops being tracked.
        asked = await post(client, admin, "/admin/channels/speedrunner/remove")
        assert asked.status_code == 200
        assert "Yes, stop tracking" in asked.text
        assert 'name="confirm" value="yes"' in asked.text
        async with session_scope(sessionmaker) as session:
            assert (await session.get(Channel, channel_id)).tracked  # type: ignore[union-attr]
        removed = await post(client, admin, "/admin/channels/speedrunner/remove", confirm="yes")
        assert removed.status_code == 303
        assert removed.headers["location"] == "/admin/channels?done=removed"
        page = await client.get("/admin/channels", headers=admin.headers)
        assert 'id="channel-speedrunner"' not in page.text
        assert 'id="channel-quietone"' in page.text
        async with session_scope(sessionmaker) as session:
            assert not (await session.get(Channel, channel_id)).tracked  # type: ignore[union-attr]
        again = await post(client, admin, "/admin/channels/speedrunner/remove", confirm="yes")
        assert again.status_code == 404


async def cadence_takes(
    sessionmaker: async_sessionmaker[AsyncSession], policy: CadencePolicy, channel_id: str
) -> bool:
    """Whether the cadence's next tick would run this channel's recent step."""
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        rows = await cadence_repo.cadence_rows(session)
    row = next(r for r in rows if r.channel_id == channel_id)
    plan = plan_tick(rows, now, policy, Estimates(), level=1_000_000.0)
    taken = any(s.channel_id == channel_id and s.phase == "recent" for s in plan.steps)
    assert taken == (recent_due_at(row, policy)[0] <= now)
    return taken


async def test_adding_without_twitch_is_a_clear_503(
    roomy: Settings, sessionmaker: async_sessionmaker[AsyncSession], engine: Any
) -> None:
    admin = await person(sessionmaker, roomy, "root", admin=True)
    silent = roomy.model_copy(
        update={
            "twitch_client_id": "id",
            "twitch_client_secret": "secret",
            "twitch_api_url": "http://127.0.0.1:9/helix",  # nothing listens on the discard port
            "twitch_auth_url": "http://127.0.0.1:9/oauth2",
        }
    )
    for settings, words in ((roomy, "not configured"), (silent, "Twitch")):
        async with app_client(settings) as client:
            answer = await post(client, admin, "/admin/channels/add", logins="speedrunner")
            assert answer.status_code == 503, answer.text[:300]
            assert answer.headers["content-type"].startswith("text/html")
            assert "Nothing was added" in answer.text
            assert words in answer.text
            assert 'value="speedrunner"' in answer.text  # the form keeps what was typed


async def dead_delivery(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    route_name: str,
    *,
    enabled: bool = True,
) -> int:
    async with session_scope(sessionmaker) as session:
        owner = await service.create_user(session, f"owner-{uuid.uuid4().hex[:8]}")
        route = NotificationRoute(
            user_id=owner.id,
            name=route_name,
            webhook_id="123456789",
            webhook_token_sealed=seal(settings.signing_key, "tok"),
            filters={},
            template={"name": "card"},
            delay_seconds=0,
            batching=True,
            enabled=enabled,
            disabled_reason=None if enabled else "its webhook is gone",
        )
        session.add(route)
        await session.flush()
        now = datetime.now(UTC)
        delivery = Delivery(
            route_id=route.id,
            clip_id="ClipDead1",
            status="dead",
            attempts=7,
            next_attempt_at=now,
            created_at=now - timedelta(hours=1),
            last_error="Discord answered 404 at https://discord.com/api/webhooks/123456789/hushhush",
        )
        session.add(delivery)
        await session.flush()
        return delivery.id


async def test_dead_deliveries_are_listed_and_retried(
    client: httpx.AsyncClient, roomy: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    admin = await person(sessionmaker, roomy, "root", admin=True)
    delivery_id = await dead_delivery(sessionmaker, roomy, f"night {HOSTILE}")
    page = await client.get("/admin/deliveries", headers=admin.headers)
    assert page.status_code == 200
    row = section(page.text, f"delivery-{delivery_id}")
    assert "night &lt;script&gt;" in row
    assert HOSTILE not in page.text
    assert "ClipDead1" in row
    assert "<td>7</td>" in row
    assert "Discord answered 404" in row
    assert "hushhush" not in page.text  # redacted as the logs and status redact
    assert f'action="/admin/deliveries/{delivery_id}/retry"' in row
    pending = await client.get("/admin/deliveries?status=pending", headers=admin.headers)
    assert f"delivery-{delivery_id}" not in pending.text
    assert "No pending deliveries" in pending.text

    retried = await post(client, admin, f"/admin/deliveries/{delivery_id}/retry")
    assert retried.status_code == 303
    assert retried.headers["location"] == "/admin/deliveries?done=retried"
    async with session_scope(sessionmaker) as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
        assert (delivery.status, delivery.attempts) == ("pending", 0)
    pending = await client.get("/admin/deliveries?status=pending", headers=admin.headers)
    assert f"delivery-{delivery_id}" in pending.text
    again = await post(client, admin, f"/admin/deliveries/{delivery_id}/retry")
    assert again.status_code == 409
    assert f"delivery {delivery_id} is pending, not dead" in again.text
    assert (await post(client, admin, "/admin/deliveries/999999/retry")).status_code == 404
    disabled = await dead_delivery(sessionmaker, roomy, "gone hook", enabled=False)
    refused = await post(client, admin, f"/admin/deliveries/{disabled}/retry")
    assert refused.status_code == 409
    assert "its webhook is gone" in refused.text
    bad = await client.get("/admin/deliveries?status=lost", headers=admin.headers)
    assert bad.status_code == 422


async def firing_incident(
    sessionmaker: async_sessionmaker[AsyncSession], severity: str = "warning"
) -> int:
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        incident = Incident(
            fingerprint=f"fp-{severity}-{now.timestamp()}",
            rule="deliveries_dead",
            severity=severity,
            labels={"route": "7"},
            summary=f"Dead deliveries {HOSTILE}",
            state="firing",
            value=3.0,
            first_seen_at=now - timedelta(minutes=10),
            fired_at=now - timedelta(minutes=5),
            last_seen_at=now,
            count=4,
        )
        session.add(incident)
        await session.flush()
        return incident.id


async def test_incidents_are_acknowledged_and_resolved(
    client: httpx.AsyncClient, roomy: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    admin = await person(sessionmaker, roomy, "root", admin=True)
    incident_id = await firing_incident(sessionmaker)
    page = await client.get("/admin/incidents", headers=admin.headers)
    opened = section(page.text, "open-title")
    assert f'id="incident-{incident_id}"' in opened
    assert "Dead deliveries &lt;script&gt;" in opened
    assert HOSTILE not in page.text
    assert f'action="/admin/incidents/{incident_id}/ack"' in opened
    rules = (await client.get("/api/v1/alerts/rules", headers=admin.headers)).json()
    assert rules["data"]
    for rule in rules["data"]:
        assert f"{rule['name']}<p" in section(page.text, "rules-title")

    acked = await post(
        client, admin, f"/admin/incidents/{incident_id}/ack", note="on it\nchecking the hook"
    )
    assert acked.status_code == 303
    assert acked.headers["location"] == "/admin/incidents?done=acknowledged"
    async with session_scope(sessionmaker) as session:
        incident = await session.get(Incident, incident_id)
        assert incident is not None
        assert (incident.state, incident.acknowledged_by) == ("acknowledged", "root")
        notes = (await session.scalars(select(IncidentNote))).all()
        assert [n.text for n in notes] == ["on it\nchecking the hook"]
    page = await client.get("/admin/incidents?done=acknowledged", headers=admin.headers)
    assert "Incident acknowledged" in page.text
    assert "on it\nchecking the hook" in section(page.text, "open-title")
    bad_note = await post(client, admin, f"/admin/incidents/{incident_id}/ack", note="a\x01b")
    assert bad_note.status_code == 422
    assert "The note must be" in bad_note.text

    resolved = await post(client, admin, f"/admin/incidents/{incident_id}/resolve")
    assert resolved.status_code == 303
    async with session_scope(sessionmaker) as session:
        incident = await session.get(Incident, incident_id)
        assert incident is not None
        assert incident.state == "resolved"
    page = await client.get("/admin/incidents", headers=admin.headers)
    assert f'id="incident-{incident_id}"' not in section(page.text, "open-title")
    assert f'id="incident-{incident_id}"' in section(page.text, "resolved-title")
    again = await post(client, admin, f"/admin/incidents/{incident_id}/ack")
    assert again.status_code == 409
    assert "already resolved" in again.text
    assert (await post(client, admin, "/admin/incidents/999999/resolve")).status_code == 404


# --- The demo's Discord -----------------------------------------------------------------------


@asynccontextmanager
async def demo_client(
    settings: Settings, sink: str | None, cache: CacheManager
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, demo_sink=sink, cache=cache)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_the_demo_discord_page_shows_what_the_simulator_received(
    roomy: Settings, engine: Any, cache: CacheManager
) -> None:
    assert roomy.demo_mode  # no Twitch credentials: demo mode
    discord = DiscordSimulator()
    server = LoopbackServer(discord)
    base = await server.start()
    try:
        hook = discord.add_webhook()
        payload = {
            "content": f"New clip {HOSTILE}",
            "embeds": [{"title": "Insane clutch play", "url": "https://clips.twitch.tv/x"}],
        }
        async with httpx.AsyncClient() as http:
            sent = await http.post(f"{base}/api/webhooks/{hook.id}/{hook.token}", json=payload)
            assert sent.status_code in (200, 204), sent.text
            later = {"content": "second message"}
            sent = await http.post(f"{base}/api/webhooks/{hook.id}/{hook.token}", json=later)
            assert sent.status_code in (200, 204), sent.text
        hooks_before = len(discord.webhooks)
        async with demo_client(roomy, f"{base}/_sim/messages", cache) as client:
            page = await client.get("/demo/discord")  # anyone: no session needed
            assert page.status_code == 200, page.text[:500]
            html = page.text
            assert html.count('<article class="discord-message"') == 2
            assert html.index("second message") < html.index("Insane clutch play")  # newest first
            assert "Insane clutch play" in html
            assert HOSTILE not in html
            assert "New clip &lt;script&gt;" in html
            assert f"webhook {hook.id}" in html
            assert '<link rel="stylesheet" href="/static/discord.css">' in html
            shown = re.search(r'id="demo-webhook-url"[^>]*>([^<]+)<', html)
            assert shown is not None
            url = shown.group(1)
            assert re.fullmatch(r"https://discord\.com/api/webhooks/\d+/[\w-]+", url), url
            assert len(discord.webhooks) == hooks_before + 1
            assert any(url.endswith(f"/{h.id}/{h.token}") for h in discord.webhooks.values())
            again = await client.get("/demo/discord")
            assert url in again.text  # one webhook per process
            assert len(discord.webhooks) == hooks_before + 1
            assert 'href="/demo/discord"' in again.text
            assert (await client.get("/demo/discord?x=1")).status_code == 422
            await server.stop()
            down = await client.get("/demo/discord")
            assert down.status_code == 503
            assert "does not answer" in down.text
            assert down.headers["content-type"].startswith("text/html")
    finally:
        await server.stop()


async def test_the_demo_discord_page_exists_only_in_demo_mode(
    roomy: Settings,
    engine: Any,
    cache: CacheManager,
    twitch_settings: Settings,  # noqa: F811 - the fixture
) -> None:
    async with demo_client(twitch_settings, "http://127.0.0.1:9/_sim/messages", cache) as client:
        assert not twitch_settings.demo_mode
        answer = await client.get("/demo/discord")
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")
    async with demo_client(roomy, None, cache) as client:
        answer = await client.get("/demo/discord")
        assert answer.status_code == 503
        assert "runs no simulated Discord" in answer.text


# --- Never a 500 ------------------------------------------------------------------------------


@pytest.fixture
async def admin_world(
    twitch_settings: Settings,  # noqa: F811 - the fixture
    sim: Sim,  # noqa: F811 - the fixture
    sessionmaker: async_sessionmaker[AsyncSession],
    cache: CacheManager,
) -> AsyncIterator[tuple[httpx.AsyncClient, Person]]:
    sim.twitch.add_channel("speedrunner", clips=3, years=0.1)
    settings = twitch_settings.model_copy(update={"rate_limit_anonymous": "1000000/minute"})
    admin = await person(sessionmaker, settings, "root", admin=True)
    await dead_delivery(sessionmaker, settings, "r")
    await firing_incident(sessionmaker)
    async with app_client(settings, cache=cache) as client:
        yield client, admin


SEGMENT = st.one_of(
    st.sampled_from(["speedrunner", "1", "0", "-1", "99999999999999999999", "nobody"]),
    st.text(min_size=1, max_size=70).filter(lambda s: "/" not in s and s.strip(".") != ""),
)
FIELD_TEXT = st.one_of(st.sampled_from(["speedrunner", "a b,c", "yes", ""]), st.text(max_size=80))


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    action=st.sampled_from(
        [
            "/admin/channels/add",
            "/admin/channels/{}/remove",
            "/admin/channels/{}/sync",
            "/admin/deliveries/{}/retry",
            "/admin/incidents/{}/ack",
            "/admin/incidents/{}/resolve",
        ]
    ),
    segment=SEGMENT,
    fields=st.dictionaries(
        st.sampled_from(["logins", "note", "confirm", "csrf", "other"]), FIELD_TEXT, max_size=4
    ),
    keep_proof=st.booleans(),
)
async def test_any_admin_form_is_a_page_never_a_500(
    admin_world: tuple[httpx.AsyncClient, Person],
    action: str,
    segment: str,
    fields: dict[str, str],
    keep_proof: bool,
) -> None:
    client, admin = admin_world
    if keep_proof:
        fields["csrf"] = admin.csrf
    path = action.format(quote(segment, safe=""))
    answer = await client.post(path, data=fields, headers={**admin.headers, **FORM})
    assert answer.status_code in (200, 303, 400, 403, 404, 409, 422), (
        path,
        fields,
        answer.text[:300],
    )
    if answer.status_code == 400:  # page_session.form_of: a NUL in any field
        assert any("\x00" in value for value in fields.values())
        assert "NUL character" in answer.text
    if answer.status_code != 303:
        assert answer.headers["content-type"].startswith("text/html")
    if not keep_proof and fields.get("csrf") != admin.csrf:
        assert answer.status_code in (400, 403, 404, 422), (path, fields)


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    path=st.sampled_from([*ADMIN_PAGES, "/demo/discord"]),
    query=st.lists(
        st.tuples(st.sampled_from(["done", "status", "next", "x"]), FIELD_TEXT), max_size=3
    ),
)
async def test_any_admin_query_string_is_a_page_never_a_500(
    admin_world: tuple[httpx.AsyncClient, Person], path: str, query: list[tuple[str, str]]
) -> None:
    client, admin = admin_world
    answer = await client.get(path, params=query, headers=admin.headers)
    # /demo/discord is 404 here: Twitch is configured (the simulator), so no demo mode.
    assert answer.status_code in (200, 404, 422), (path, query, answer.text[:300])
    assert answer.headers["content-type"].startswith("text/html")
    if answer.status_code == 200:
        assert path != "/demo/discord"
        assert all(k == "done" or (k == "status" and path.endswith("deliveries")) for k, _ in query)
