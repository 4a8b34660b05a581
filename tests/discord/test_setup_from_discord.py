"""Setup from Discord: /clipwatch link|follow|unfollow|list, signed as Discord signs them,
against the Discord simulator's bot routes, on both databases."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.api.app import create_app
from clipwatch.api.route_schemas import BuiltinTemplate, RouteFilters
from clipwatch.api.routers import interactions as endpoint
from clipwatch.config import Settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from clipwatch.db.models import DiscordGuildLink, DiscordLinkCode, NotificationRoute
from clipwatch.db.repositories import catalog
from clipwatch.discord.link_codes import code_hash, new_link_code
from clipwatch.discord.simulator import DiscordSimulator
from clipwatch.simhttp import LoopbackServer
from tests.api.test_accounts import bearer, make_user
from tests.cli.test_commands import run
from tests.conftest import app_client
from tests.discord.conftest import DiscordSim
from tests.discord.test_interactions import SIGNER, signed

APP_ID = "700000000000000001"  # the simulator's bot user: the maker of the webhooks it makes
GUILD, OTHER_GUILD = "800000000000000001", "800000000000000002"
CHANNEL, OTHER_CHANNEL, ELSEWHERE = "900000000000000001", "900000000000000002", "900000000000000003"
MANAGE_WEBHOOKS, MANAGE_GUILD, ADMINISTRATOR = str(1 << 29), str(1 << 5), str(1 << 3)
DEADLINE_S = 10.0


def setup_command(
    sub: str,
    options: dict[str, Any] | None = None,
    *,
    guild: str | None = GUILD,
    channel: str = CHANNEL,
    permissions: str = MANAGE_WEBHOOKS,
) -> dict[str, Any]:
    where: dict[str, Any] = (
        {"guild_id": guild, "member": {"user": {"id": "5001"}, "permissions": permissions}}
        if guild
        else {"user": {"id": "5001"}}
    )
    return {
        "type": 2,
        "id": "1",
        "application_id": APP_ID,
        "token": "interaction-token",
        "channel_id": channel,
        **where,
        "data": {
            "name": "clipwatch",
            "options": [
                {
                    "type": 1,
                    "name": sub,
                    "options": [{"name": k, "value": v} for k, v in (options or {}).items()],
                }
            ],
        },
    }


def bot_settings(settings: Settings, base: str, *, bot_token: str = "sim-bot-token") -> Settings:
    return settings.model_copy(
        update={
            "discord_public_key": SIGNER.verify_key.encode().hex(),
            "discord_application_id": APP_ID,
            "discord_api_url": f"{base}/api/v10",
            "discord_bot_token": bot_token,
            "rate_limit_interactions": "1000000/minute",
        }
    )


async def ask(client: httpx.AsyncClient, payload: dict[str, Any]) -> str:
    """The ephemeral answer's text (every /clipwatch answer is one)."""
    body, headers = signed(payload)
    answer = await client.post("/discord/interactions", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return _answer_text(answer.json())


def _answer_text(data: dict[str, Any]) -> str:
    assert data["type"] == 4, data
    assert data["data"]["flags"] == 64
    assert data["data"]["allowed_mentions"] == {"parse": []}
    text: str = data["data"]["content"]
    return text


async def ask_waiting(client: httpx.AsyncClient, payload: dict[str, Any], sim: DiscordSim) -> str:
    """As `ask`, also when the answer came deferred (type 5, then the answer edited): waiting
    out a 429 and then the work passes ANSWER_WITHIN_S on a loaded machine."""
    edits = len(sim.discord.originals)
    body, headers = signed(payload)
    answer = await client.post("/discord/interactions", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    if answer.json()["type"] == 4:
        return _answer_text(answer.json())
    assert answer.json() == {"type": 5, "data": {"flags": 64}}
    deadline = time.monotonic() + DEADLINE_S
    while len(sim.discord.originals) <= edits:
        assert time.monotonic() < deadline, "no follow-up arrived"
        await asyncio.sleep(0.02)  # polling interval while waiting on the condition above
    edited = sim.discord.originals[edits][2]
    assert edited["flags"] == 64
    text: str = edited["content"]
    return text


async def track(sessionmaker: async_sessionmaker[AsyncSession], login: str, twitch_id: str) -> None:
    async with session_scope(sessionmaker) as session:
        await catalog.track_channel(
            session,
            channel_id=twitch_id,
            login=login,
            display_name=login.title(),
            profile_image_url=None,
            account_created_at=None,
        )


async def link(
    sessionmaker: async_sessionmaker[AsyncSession], key: bytes, user_id: int, guild: str = GUILD
) -> str:
    async with session_scope(sessionmaker) as session:
        session.add(DiscordGuildLink(guild_id=guild, user_id=user_id, linked_at=datetime.now(UTC)))
        return (await new_link_code(session, user_id, key=key)).code


async def routes(sessionmaker: async_sessionmaker[AsyncSession]) -> list[NotificationRoute]:
    async with session_scope(sessionmaker) as session:
        found = await session.scalars(select(NotificationRoute).order_by(NotificationRoute.id))
        return list(found.all())


@pytest.fixture
def sim_settings(settings: Settings, discord_sim: DiscordSim) -> Settings:
    discord_sim.discord.add_channel(CHANNEL, GUILD)
    discord_sim.discord.add_channel(OTHER_CHANNEL, GUILD)
    discord_sim.discord.add_channel(ELSEWHERE, OTHER_GUILD)
    return bot_settings(settings, discord_sim.base)


async def test_a_code_links_the_server_once(
    sim_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice_id, alice = await make_user(sessionmaker, "alice")
    bob_id, bob = await make_user(sessionmaker, "bob")
    _, reader = await make_user(sessionmaker, "reader", scopes=("read",))
    async with app_client(sim_settings) as client:
        made = await client.post("/api/v1/me/discord-link", headers=bearer(alice))
        assert made.status_code == 201, made.text
        code = made.json()["code"]
        expires = datetime.fromisoformat(made.json()["expires_at"])
        assert timedelta(minutes=9) < expires - datetime.now(UTC) <= timedelta(minutes=10)
        denied = await client.post("/api/v1/me/discord-link", headers=bearer(reader))
        assert denied.status_code == 403
        async with session_scope(sessionmaker) as session:
            stored = (await session.scalars(select(DiscordLinkCode))).all()
        # Only the code's HMAC is kept, never the code.
        assert [c.code_hash for c in stored] == [code_hash(sim_settings.signing_key, code)]
        assert code.replace("-", "") not in stored[0].code_hash.upper()

        link_it = setup_command("link", {"code": code}, permissions=MANAGE_WEBHOOKS)
        assert "Manage Server" in await ask(client, link_it)
        assert "not in a DM" in await ask(client, setup_command("link", {"code": code}, guild=None))
        answer = await ask(
            client, setup_command("link", {"code": code.lower()}, permissions=MANAGE_GUILD)
        )
        assert "now linked" in answer
        assert "alice" in answer
        async with session_scope(sessionmaker) as session:
            linked = await session.get(DiscordGuildLink, GUILD)
            assert linked is not None
            assert (linked.user_id, linked.linked_by_discord_user) == (alice_id, "5001")
        again = setup_command("link", {"code": code}, permissions=ADMINISTRATOR)
        assert "unknown or already used" in await ask(client, again)

        # An expired code links nothing (and is gone).
        async with session_scope(sessionmaker) as session:
            late = await new_link_code(session, bob_id, key=sim_settings.signing_key)
            row = await session.get(DiscordLinkCode, code_hash(sim_settings.signing_key, late.code))
            assert row is not None
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        expired = setup_command("link", {"code": late.code}, permissions=MANAGE_GUILD)
        assert "expired" in await ask(client, expired)
        assert "unknown or already used" in await ask(client, expired)
        assert "Give the code" in await ask(client, setup_command("link", permissions=MANAGE_GUILD))

        # Relinking takes the other account's own code; a new code replaces the last one.
        first = (await client.post("/api/v1/me/discord-link", headers=bearer(bob))).json()["code"]
        second = (await client.post("/api/v1/me/discord-link", headers=bearer(bob))).json()["code"]
        stale = setup_command("link", {"code": first}, permissions=MANAGE_GUILD)
        assert "unknown or already used" in await ask(client, stale)
        relink = setup_command("link", {"code": second}, permissions=MANAGE_GUILD)
        assert "bob" in await ask(client, relink)
        async with session_scope(sessionmaker) as session:
            linked = await session.get(DiscordGuildLink, GUILD)
            assert linked is not None
            assert linked.user_id == bob_id


async def test_follow_makes_one_webhook_and_routes_of_the_linked_account(
    sim_settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
) -> None:
    alice_id, alice = await make_user(sessionmaker, "alice")
    await link(sessionmaker, sim_settings.signing_key, alice_id)
    await track(sessionmaker, "shroud", "1001")
    await track(sessionmaker, "pokimane", "1002")
    sim = discord_sim.discord
    async with app_client(sim_settings) as client:
        follow = setup_command(
            "follow", {"channel": "Shroud", "min_views": 50, "template": "compact"}
        )
        refused = setup_command("follow", {"channel": "shroud"}, permissions=str(1 << 5))
        assert "Manage Webhooks" in await ask(client, refused)
        assert sim.channel_webhooks(CHANNEL) == []
        assert await routes(sessionmaker) == []

        answer = await ask(client, follow)
        assert "Following **shroud**" in answer
        hooks = sim.channel_webhooks(CHANNEL)
        assert [(h.name, h.by_bot) for h in hooks] == [("clipwatch", True)]
        assert hooks[0].token not in answer
        assert "already follows" in await ask(client, follow)
        admin_follow = setup_command("follow", {"channel": "pokimane"}, permissions=ADMINISTRATOR)
        assert "Following **pokimane**" in await ask(client, admin_follow)
        assert len(sim.channel_webhooks(CHANNEL)) == 1  # reused, not made again

        saved = await routes(sessionmaker)
        assert [(r.user_id, r.created_via, r.discord_channel_id) for r in saved] == [
            (alice_id, "discord", CHANNEL),
            (alice_id, "discord", CHANNEL),
        ]
        assert saved[0].filters == {"channels": ["shroud"], "min_views": 50}
        assert saved[0].template == {"name": "compact"}
        assert saved[1].filters == {"channels": ["pokimane"], "min_views": 0}
        assert saved[0].webhook_id == hooks[0].id
        assert (saved[0].webhook_guild_id, saved[0].webhook_channel_id) == (GUILD, CHANNEL)

        # The route is alice's, through the API, and its webhook works.
        mine = await client.get("/api/v1/routes", headers=bearer(alice))
        assert {r["created_via"] for r in mine.json()["data"]} == {"discord"}
        assert hooks[0].token not in mine.text
        tested = await client.post(f"/api/v1/routes/{saved[0].id}/test", headers=bearer(alice))
        assert tested.json()["sent"] is True, tested.text

        listed = await ask(client, setup_command("list"))
        assert "**shroud**" in listed
        assert "**pokimane**" in listed
        assert f"<#{CHANNEL}>" in listed
        assert "50 views" in listed


async def test_what_to_do_when_follow_cannot(
    sim_settings: Settings,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
) -> None:
    alice_id, _ = await make_user(sessionmaker, "alice")
    await track(sessionmaker, "shroud", "1001")
    follow = setup_command("follow", {"channel": "shroud"})
    async with app_client(sim_settings) as client:
        assert "not linked" in await ask(client, follow)
        assert "not linked" in await ask(client, setup_command("list"))
        assert "not in a DM" in await ask(
            client, setup_command("follow", {"channel": "x"}, guild=None)
        )
        await link(sessionmaker, sim_settings.signing_key, alice_id)
        untracked = await ask(client, setup_command("follow", {"channel": "nobody"}))
        assert "does not track **nobody**" in untracked
        assert "admin" in untracked
        # Known to the archive (its clips name it) but not tracked: the same answer.
        await track(sessionmaker, "was_tracked", "1009")
        async with session_scope(sessionmaker) as session:
            await catalog.untrack_channel(session, "was_tracked")
        dropped = await ask(client, setup_command("follow", {"channel": "was_tracked"}))
        assert "does not track" in dropped
        assert "whole number" in await ask(
            client, setup_command("follow", {"channel": "shroud", "min_views": -1})
        )
        # Discord says in the interaction that the bot lacks Manage Webhooks: not even asked.
        bot_cannot = setup_command("follow", {"channel": "shroud"}) | {"app_permissions": "0"}
        assert "bot needs the Manage Webhooks" in await ask(client, bot_cannot)
        assert [r.kind for r in discord_sim.discord.requests] == []
        # The bot may not manage webhooks in this channel: Discord's 403, nothing saved.
        discord_sim.discord.deny_manage_webhooks(CHANNEL)
        assert "bot needs the Manage Webhooks" in await ask(client, follow)
        assert await routes(sessionmaker) == []
    no_bot = bot_settings(settings, discord_sim.base, bot_token="")
    async with app_client(no_bot) as client:
        assert "CLIPWATCH_DISCORD_BOT_TOKEN" in await ask(client, follow)
    assert await routes(sessionmaker) == []


async def test_unfollow_and_list_see_only_this_server(
    sim_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice_id, alice = await make_user(sessionmaker, "alice")
    bob_id, _ = await make_user(sessionmaker, "bob")
    await link(sessionmaker, sim_settings.signing_key, alice_id)
    await link(sessionmaker, sim_settings.signing_key, bob_id, guild=OTHER_GUILD)
    await track(sessionmaker, "shroud", "1001")
    async with app_client(sim_settings) as client:
        here = setup_command("follow", {"channel": "shroud"})
        there = setup_command("follow", {"channel": "shroud"}, guild=OTHER_GUILD, channel=ELSEWHERE)
        assert "Following" in await ask(client, here)
        assert "Following" in await ask(client, there)
        api_made = await client.post(
            "/api/v1/routes",
            json={
                "name": "by hand",
                "webhook_url": "https://discord.com/api/webhooks/1100000000000000099/" + "t" * 68,
                "filters": {"channels": ["shroud"]},
            },
            headers=bearer(alice),
        )
        assert api_made.status_code == 201, api_made.text
        other_channel = setup_command("unfollow", {"channel": "shroud"}, channel=OTHER_CHANNEL)
        assert f"followed in <#{CHANNEL}>" in await ask(client, other_channel)
        assert "does not follow **nobody**" in await ask(
            client, setup_command("unfollow", {"channel": "nobody"})
        )
        refused = setup_command("unfollow", {"channel": "shroud"}, permissions="0")
        assert "Manage Webhooks" in await ask(client, refused)
        assert len(await routes(sessionmaker)) == 3

        assert "Stopped" in await ask(client, setup_command("unfollow", {"channel": "shroud"}))
        left = await routes(sessionmaker)
        assert sorted((r.user_id, r.created_via) for r in left) == [
            (alice_id, "api"),
            (bob_id, "discord"),
        ]
        assert "follows no channels" in await ask(client, setup_command("list"))
        elsewhere = await ask(client, setup_command("list", guild=OTHER_GUILD, channel=ELSEWHERE))
        assert f"<#{ELSEWHERE}>" in elsewhere
        assert CHANNEL not in elsewhere


async def test_a_slow_answer_is_deferred_and_ephemeral(
    sim_settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice_id, _ = await make_user(sessionmaker, "alice")
    await link(sessionmaker, sim_settings.signing_key, alice_id)
    await track(sessionmaker, "shroud", "1001")
    monkeypatch.setattr(endpoint, "ANSWER_WITHIN_S", 0.0)
    async with app_client(sim_settings) as client:
        body, headers = signed(setup_command("follow", {"channel": "shroud"}))
        answer = await client.post("/discord/interactions", content=body, headers=headers)
        assert answer.json() == {"type": 5, "data": {"flags": 64}}
        deadline = time.monotonic() + DEADLINE_S
        while not discord_sim.discord.originals:
            assert time.monotonic() < deadline, "no follow-up arrived"
            await asyncio.sleep(0.02)  # polling interval while waiting on the condition above
    (app_id, token, edited) = discord_sim.discord.originals[0]
    assert (app_id, token) == (APP_ID, "interaction-token")
    assert "Following **shroud**" in edited["content"]
    assert edited["flags"] == 64
    assert len(await routes(sessionmaker)) == 1


# --- odd options: always an ephemeral answer --------------------------------------------------


class SetupPoster:
    """The app and the Discord simulator in a loop of their own, so that Hypothesis (which is
    not async) can post example after example to one app."""

    def __init__(self, base_settings: Settings) -> None:
        self.runner = asyncio.Runner()
        self.sim = DiscordSimulator()
        self.sim.add_channel(CHANNEL, GUILD)
        self.server = LoopbackServer(self.sim)
        base = self.runner.run(self.server.start())
        self.settings = bot_settings(base_settings, base)
        self.app = create_app(self.settings)
        self.lifespan = self.app.router.lifespan_context(self.app)
        self.runner.run(self.lifespan.__aenter__())
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://test")

    def post(self, payload: dict[str, Any]) -> httpx.Response:
        body, headers = signed(payload)
        return self.runner.run(
            self.client.post("/discord/interactions", content=body, headers=headers)
        )

    def saved_routes(self) -> list[NotificationRoute]:
        return self.runner.run(routes(self.app.state.clipwatch.sessionmaker))

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.run(self.lifespan.__aexit__(None, None, None))
        self.runner.run(self.server.stop())
        self.runner.close()


@pytest.fixture
def setup_poster(settings: Settings, engine: AsyncEngine) -> Iterator[SetupPoster]:
    """A linked server with a tracked channel, on both databases."""
    poster = SetupPoster(settings)

    async def prepare() -> None:
        own = create_engine(settings)
        try:
            sm = create_sessionmaker(own)
            alice_id, _ = await make_user(sm, "alice")
            await link(sm, settings.signing_key, alice_id)
            await track(sm, "shroud", "1001")
        finally:
            await own.dispose()

    poster.runner.run(prepare())
    try:
        yield poster
    finally:
        poster.close()


ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what orjson holds
odd = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=False, allow_infinity=False),  # JSON has neither
    st.text(max_size=60),
    st.sampled_from(["shroud", "@Shroud", " shroud ", "shr oud", "a" * 26, "card", "link", "x"]),
    st.lists(ints, max_size=2),
    st.dictionaries(st.text(max_size=3), ints, max_size=2),
)
option_names = st.sampled_from(["channel", "min_views", "template", "code", "other"])
subs = st.sampled_from(["follow", "unfollow", "list", "link", "nope"])
permissions = st.sampled_from([MANAGE_WEBHOOKS, MANAGE_GUILD, ADMINISTRATOR, "0", "x", str(2**70)])


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sub=subs,
    options=st.dictionaries(option_names, odd, max_size=4),
    permission=permissions,
    in_guild=st.booleans(),
)
@example(
    sub="follow",
    options={"channel": "shroud", "min_views": 2**63 - 1},
    permission=MANAGE_WEBHOOKS,
    in_guild=True,
)
@example(
    sub="follow",
    options={"channel": "shroud", "min_views": 1.5},
    permission=MANAGE_WEBHOOKS,
    in_guild=True,
)
@example(
    sub="follow",
    options={"channel": "shroud", "template": ["card"]},
    permission=MANAGE_WEBHOOKS,
    in_guild=True,
)
@example(sub="follow", options={}, permission=MANAGE_WEBHOOKS, in_guild=True)
@example(sub="link", options={"code": "\x00" * 50}, permission=MANAGE_GUILD, in_guild=True)
def test_odd_options_always_get_an_ephemeral_answer(
    setup_poster: SetupPoster,
    sub: str,
    options: dict[str, Any],
    permission: str,
    in_guild: bool,
) -> None:
    payload = setup_command(sub, options, guild=GUILD if in_guild else None, permissions=permission)
    answer = setup_poster.post(payload)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["type"] == 4, data
    assert data["data"]["flags"] == 64
    assert data["data"]["content"].strip()
    assert "sim-bot-token" not in answer.text
    for hook in setup_poster.sim.webhooks.values():
        assert hook.token not in answer.text
    # Whatever was saved reads back through the API's own shapes.
    for route in setup_poster.saved_routes():
        RouteFilters.model_validate(route.filters)
        BuiltinTemplate.model_validate(route.template)


def setup_count(command: str, outcome: str) -> float:
    labels = {"command": command, "outcome": outcome}
    return REGISTRY.get_sample_value("clipwatch_discord_setup_commands_total", labels) or 0.0


async def test_relinked_servers_routes_stay_their_owners_and_are_counted(
    sim_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    alice_id, _ = await make_user(sessionmaker, "alice")
    bob_id, _ = await make_user(sessionmaker, "bob")
    await link(sessionmaker, sim_settings.signing_key, alice_id)
    await track(sessionmaker, "shroud", "1001")
    await track(sessionmaker, "pokimane", "1002")
    done, refused = setup_count("follow", "done"), setup_count("follow", "refused")
    async with app_client(sim_settings) as client:
        assert "Following" in await ask(client, setup_command("follow", {"channel": "shroud"}))
        assert "already" in await ask(client, setup_command("follow", {"channel": "shroud"}))
        async with session_scope(sessionmaker) as session:
            code = (await new_link_code(session, bob_id, key=sim_settings.signing_key)).code
        relinked = await ask(
            client, setup_command("link", {"code": code}, permissions=MANAGE_GUILD)
        )
        assert "stay with the account that made them" in relinked
        assert "Following" in await ask(client, setup_command("follow", {"channel": "pokimane"}))
        listed = await ask(client, setup_command("list"))
        assert "**shroud**" in listed
        assert "**pokimane**" in listed
    owners = {r.filters["channels"][0]: r.user_id for r in await routes(sessionmaker)}
    assert owners == {"shroud": alice_id, "pokimane": bob_id}
    assert setup_count("follow", "done") - done == 2
    assert setup_count("follow", "refused") - refused == 1


async def test_the_bots_rate_limit_is_waited_out(
    sim_settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
) -> None:
    """Each follow lists the channel's webhooks; the sixth list in 2 s meets the per-channel
    bucket's 429, which the bot waits out (under 2 s) instead of failing the command."""
    alice_id, _ = await make_user(sessionmaker, "alice")
    await link(sessionmaker, sim_settings.signing_key, alice_id)
    await track(sessionmaker, "shroud", "1001")
    follow = setup_command("follow", {"channel": "shroud"})
    unfollow = setup_command("unfollow", {"channel": "shroud"})
    async with app_client(sim_settings) as client:
        for _ in range(7):
            assert "Following" in await ask_waiting(client, follow, discord_sim)
            assert "Stopped" in await ask_waiting(client, unfollow, discord_sim)
    assert discord_sim.discord.rate_limited.get("bot", 0) >= 1
    assert len(discord_sim.discord.channel_webhooks(CHANNEL)) == 1


async def test_follow_autocompletes_tracked_channels(
    sim_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await track(sessionmaker, "shroud", "1001")
    await track(sessionmaker, "shrimp", "1003")
    async with session_scope(sessionmaker) as session:
        await catalog.untrack_channel(session, "shrimp")
    typing = setup_command("follow", {"min_views": 5}) | {"type": 4}
    typing["data"]["options"][0]["options"].append(
        {"name": "channel", "value": "shr", "focused": True}
    )
    async with app_client(sim_settings) as client:
        body, headers = signed(typing)
        answer = await client.post("/discord/interactions", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "type": 8,
        "data": {"choices": [{"name": "Shroud", "value": "shroud"}]},
    }


def test_link_code_from_the_cli(tmp_path: Path) -> None:
    assert run(tmp_path, "users", "create", "alice").returncode == 0
    made = run(tmp_path, "discord", "link-code", "alice")
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(
        r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4} \(for alice; expires .+ UTC\)\n", made.stdout
    )
    missing = run(tmp_path, "discord", "link-code", "nobody")
    assert missing.returncode == 1
    assert "no user named 'nobody'" in missing.stderr


async def test_secrets_stay_out_of_answers_and_logs(
    sim_settings: Settings,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    discord_sim: DiscordSim,
) -> None:
    alice_id, _ = await make_user(sessionmaker, "alice")
    await link(sessionmaker, sim_settings.signing_key, alice_id)
    await track(sessionmaker, "shroud", "1001")
    follow = setup_command("follow", {"channel": "shroud"})
    with structlog.testing.capture_logs() as logged:
        async with app_client(
            bot_settings(settings, discord_sim.base, bot_token="wrong-bot-token-7")
        ) as client:
            assert "refused the bot's token" in await ask(client, follow)
        async with app_client(sim_settings) as client:
            answers = [await ask(client, follow)]
            discord_sim.discord.deny_manage_webhooks(OTHER_CHANNEL)
            answers.append(
                await ask(
                    client, setup_command("follow", {"channel": "shroud"}, channel=OTHER_CHANNEL)
                )
            )
    events = [entry["event"] for entry in logged]
    assert "discord_followed" in events
    assert "discord_bot_call_failed" in events
    [hook] = discord_sim.discord.channel_webhooks(CHANNEL)
    for secret in (hook.token, "sim-bot-token", "wrong-bot-token-7"):
        assert secret not in repr(logged)
        assert all(secret not in answer for answer in answers)
