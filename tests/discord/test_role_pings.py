"""Role pings are opt-in and exact: every message of a route with roles carries
`allowed_mentions: {"parse": [], "roles": [its roles]}` (and "everyone" only for an allowed
@here), every other route's `{"parse": []}`, whatever its template, the clips' titles or the
message kind say. Checked on what the Discord simulator received (and whom it pinged)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts.service import operator
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Channel, Delivery, Stream
from clipwatch.discord.messages import CONTENT_MAX, Voice, address, allowed_mentions_for
from clipwatch.discord.routes import send_test_message
from clipwatch.discord.sender import WebhookSender
from tests.discord.conftest import DiscordSim
from tests.discord.test_threads_forums import KEY, drain, make_route, queue
from tests.factories import helix_clip

Sessions = async_sessionmaker[AsyncSession]
ROLE = st.from_regex(r"[1-9][0-9]{17}", fullmatch=True)
HOSTILE = st.sampled_from(
    [
        "@everyone",
        "@here",
        "<@&111111111111111111>",
        "<@222222222222222222>",
        "<@!333333333333333333>",
        "{{ title }}",
        "{{ '<@&' ~ '444444444444444444' ~ '>' }}",
        "{{ '@' ~ 'everyone' }}",
        " ",
        "ping",
    ]
)
TEMPLATE = st.lists(HOSTILE, max_size=6).map("".join)
_ids = itertools.count()


def expected(roles: list[str], here: bool) -> dict[str, list[str]]:
    mentions: dict[str, list[str]] = {"parse": ["everyone"] if here else []}
    if roles:
        mentions["roles"] = list(dict.fromkeys(roles))
    return mentions


@given(
    content=st.text(max_size=2100) | HOSTILE,
    roles=st.lists(ROLE, max_size=20),
    here=st.booleans(),
)
def test_address_sets_exactly_the_routes_mentions(
    content: str, roles: list[str], here: bool
) -> None:
    voice = Voice(role_ids=tuple(dict.fromkeys(roles)), here=here)
    message = address(
        {"content": content, "allowed_mentions": {"parse": ["everyone", "users", "roles"]}}, voice
    )
    assert message["allowed_mentions"] == expected(roles, here) == allowed_mentions_for(voice)
    assert len(message.get("content") or "") <= CONTENT_MAX
    pings = [f"<@&{r}>" for r in dict.fromkeys(roles)] + (["@here"] if here else [])
    if pings:
        assert message["content"].startswith(" ".join(pings))


async def test_routes_without_roles_ping_nobody_and_role_routes_only_their_roles(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    await one_case(
        sessionmaker,
        discord_sim,
        "<@&111111111111111111> @everyone {{ title }}",
        ["555555555555555555"],
        here=False,
    )
    await one_case(sessionmaker, discord_sim, "@here {{ title }}", [], here=True, allowed=False)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    template=TEMPLATE,
    roles=st.lists(ROLE, max_size=4),
    here=st.booleans(),
    allowed=st.booleans(),
    link=st.booleans(),
)
async def test_every_message_carries_exactly_the_routes_mentions(
    sessionmaker: Sessions,
    discord_sim: DiscordSim,
    template: str,
    roles: list[str],
    here: bool,
    allowed: bool,
    link: bool,
) -> None:
    await one_case(sessionmaker, discord_sim, template, roles, here, allowed, link)


async def one_case(
    sessionmaker: Sessions,
    sim: DiscordSim,
    template: str,
    roles: list[str],
    here: bool,
    allowed: bool = True,
    link: bool = False,
) -> None:
    hook = sim.discord.add_webhook()
    shape: dict[str, Any] = (
        {"name": "link"} if link else {"custom": True, "title": template, "description": template}
    )
    route_id = await make_route(
        sessionmaker,
        hook,
        template=shape,
        role_ids=roles or None,
        ping_here=here,
        here_allowed=allowed,
    )
    n = next(_ids)
    titles = ["@everyone <@&666666666666666666> **x**", "<@777777777777777777> @here"]
    await queue(
        sessionmaker,
        route_id,
        [helix_clip(id=f"Ping{n}-{i}", title=t) for i, t in enumerate(titles)],
    )
    await drain(sessionmaker, sim)
    sender = WebhookSender(f"{sim.base}/api/v10")
    try:
        async with session_scope(sessionmaker) as session:
            result = await send_test_message(session, operator("test"), route_id, sender, key=KEY)
        assert result.sent, result.detail
    finally:
        await sender.aclose()
    mine = [r for r in sim.discord.received if r.webhook_id == hook.id]
    assert len(mine) >= 2
    want = expected(roles, here and allowed)
    for message in mine:
        assert message.payload["allowed_mentions"] == want
        pinged = message.pinged
        assert set(pinged["roles"]) <= set(roles)
        assert pinged["users"] == []
        assert pinged["everyone"] is (here and allowed)


async def test_stream_notices_carry_the_routes_mentions_and_identity(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    quiet_hook, loud_hook = discord_sim.discord.add_webhook(), discord_sim.discord.add_webhook()
    quiet = await make_route(sessionmaker, quiet_hook)
    loud = await make_route(
        sessionmaker, loud_hook, role_ids=["555555555555555555"], username="Live Feed"
    )
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        session.add(Channel(id="5561", login="alpha", display_name="@everyone <@&1>", tracked=True))
        stream = Stream(channel_id="5561", started_at=now, title="<@&666666666666666666> @here")
        session.add(stream)
        await session.flush()
        for route_id in (quiet, loud):
            session.add(
                Delivery(
                    route_id=route_id,
                    clip_id=f"live:{stream.id}",
                    kind="live",
                    payload={"stream": stream.id},
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    await drain(sessionmaker, discord_sim)
    by_hook = {r.webhook_id: r for r in discord_sim.discord.received}
    assert by_hook[quiet_hook.id].payload["allowed_mentions"] == {"parse": []}
    assert by_hook[quiet_hook.id].pinged["roles"] == []
    loud_message = by_hook[loud_hook.id]
    assert loud_message.payload["allowed_mentions"] == {
        "parse": [],
        "roles": ["555555555555555555"],
    }
    assert loud_message.pinged["roles"] == ["555555555555555555"]
    assert loud_message.payload["username"] == "Live Feed"
