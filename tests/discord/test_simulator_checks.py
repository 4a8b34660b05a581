"""The Discord simulator's checks of `allowed_mentions`, `username` and `avatar_url` (over HTTP
on loopback), who a message pings, and hypothesis over odd requests to every route: always a
Discord-shaped answer, never a crash."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clipwatch.discord.simulator import DiscordSimulator
from clipwatch.discord.simulator_checks import payload_errors, pinged
from tests.discord.conftest import DiscordSim

BASE = {"content": "a clip"}


async def post(sim: DiscordSim, payload: Any) -> httpx.Response:
    hook = sim.discord.add_webhook()
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{sim.base}/api/v10/webhooks/{hook.id}/{hook.token}?wait=true", json=payload
        )


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"allowed_mentions": {"parse": ["roles"], "roles": ["1"]}}, "allowed_mentions"),
        ({"allowed_mentions": {"parse": ["users"], "users": ["1"]}}, "allowed_mentions"),
        (
            {"allowed_mentions": {"parse": [], "roles": [str(i) for i in range(101)]}},
            "allowed_mentions",
        ),
        (
            {"allowed_mentions": {"parse": [], "users": [str(i) for i in range(101)]}},
            "allowed_mentions",
        ),
        ({"allowed_mentions": {"parse": ["here"]}}, "allowed_mentions"),
        ({"allowed_mentions": {"roles": ["not a snowflake"]}}, "allowed_mentions"),
        ({"allowed_mentions": "none"}, "allowed_mentions"),
        ({"username": "Clyde"}, "username"),
        ({"username": "my DISCORD bot"}, "username"),
        ({"username": "x" * 81}, "username"),
        ({"username": ""}, "username"),
        ({"avatar_url": 5}, "avatar_url"),
    ],
)
async def test_discord_refuses_what_it_refuses(
    discord_sim: DiscordSim, extra: dict[str, Any], field: str
) -> None:
    answer = await post(discord_sim, BASE | extra)
    assert (answer.status_code, answer.json()["code"]) == (400, 50035)
    assert field in answer.json()["errors"]
    assert discord_sim.discord.received == []


async def test_what_discord_accepts_is_recorded(discord_sim: DiscordSim) -> None:
    payload = BASE | {
        "content": "<@&111> <@&222> <@333> @here",
        "allowed_mentions": {"parse": [], "roles": [str(i) for i in range(99)] + ["111"]},
        "username": "x" * 80,
        "avatar_url": "https://static-cdn.jtvnw.net/a.png",
    }
    answer = await post(discord_sim, payload)
    assert answer.status_code == 200
    assert answer.json()["author"]["username"] == "x" * 80
    assert answer.json()["mention_roles"] == ["111"]
    assert answer.json()["mention_everyone"] is False
    [received] = discord_sim.discord.received
    assert received.payload["avatar_url"] == "https://static-cdn.jtvnw.net/a.png"
    async with httpx.AsyncClient() as http:
        [listed] = (await http.get(f"{discord_sim.base}/_sim/messages")).json()["messages"]
    assert listed["pinged"] == {"roles": ["111"], "users": [], "everyone": False}


@pytest.mark.parametrize(
    ("content", "allowed", "expected"),
    [
        ("<@&1> <@2> @everyone", {"parse": []}, {"roles": [], "users": [], "everyone": False}),
        ("<@&1> <@2> @everyone", None, {"roles": [], "users": ["2"], "everyone": False}),
        (
            "<@&1> <@!2> @here",
            {"parse": ["roles", "users", "everyone"]},
            {"roles": ["1"], "users": ["2"], "everyone": True},
        ),
        (
            "<@&1> <@&3>",
            {"parse": [], "roles": ["3", "4"]},
            {"roles": ["3"], "users": [], "everyone": False},
        ),
        ("no mention", {"parse": ["everyone"]}, {"roles": [], "users": [], "everyone": False}),
    ],
)
def test_who_a_message_pings(content: str, allowed: Any, expected: dict[str, Any]) -> None:
    assert pinged(content, allowed) == expected


# Discord's field names at every depth, so odd values land where the checks look.
FIELD = st.sampled_from(
    [
        "content",
        "embeds",
        "allowed_mentions",
        "parse",
        "roles",
        "users",
        "replied_user",
        "username",
        "avatar_url",
        "thread_name",
        "flags",
        "name",
        "title",
        "description",
        "fields",
        "value",
        "footer",
        "text",
        "author",
    ]
)
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["roles", "users", "everyone", "1", "<@&1>"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(FIELD | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = FIELD
ODD_BODY = (
    st.dictionaries(KEYS, JSONISH, max_size=5).map(lambda d: ("json", d))
    | JSONISH.map(lambda d: ("json", d))
    | st.binary(max_size=40).map(lambda b: ("raw", b))
)


@given(body=JSONISH)
@example(body={"parse": ["roles"], "roles": 5, "users": 1})  # found by hypothesis
@example(body={"embeds": [{"fields": [1], "footer": "x"}], "allowed_mentions": []})
def test_payload_errors_never_raise(body: Any) -> None:
    assert isinstance(payload_errors(body), dict)
    assert isinstance(payload_errors(body, edit=True), dict)
    assert isinstance(pinged(body, body), dict)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    route=st.sampled_from(
        [
            ("POST", ""),
            ("GET", ""),
            ("GET", "/messages/{m}"),
            ("PATCH", "/messages/{m}"),
            ("DELETE", "/messages/{m}"),
            ("PATCH", "/messages/@original"),
            ("POST", "/channels"),
            ("GET", "/channels"),
        ]
    ),
    body=ODD_BODY,
    query=st.dictionaries(
        st.sampled_from(["wait", "thread_id"]), st.text(max_size=8) | st.just("{t}"), max_size=2
    ),
)
def test_odd_requests_always_get_a_discord_shaped_answer(
    route: tuple[str, str], body: tuple[str, Any], query: dict[str, str]
) -> None:
    asyncio.run(_odd_request(route, body, query))


async def _odd_request(
    route: tuple[str, str], body: tuple[str, Any], query: dict[str, str]
) -> None:
    sim = DiscordSimulator()
    base = "http://127.0.0.1"
    # In process (ASGI) rather than served: hundreds of examples; the app is the same.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim)) as http:
        hook = sim.add_webhook("900000000000000001", forum=True)
        thread = sim.add_thread(hook.channel_id)
        message = sim.record(hook, {"content": "x"}, sim.threads[thread], 0.0)
        method, suffix = route
        suffix = suffix.format(m=message.message_id)
        url = (
            f"{base}/api/v10/channels/{hook.channel_id}/webhooks"
            if suffix == "/channels"
            else f"{base}/api/v10/webhooks/{hook.id}/{hook.token}{suffix}"
        )
        params = {k: v.replace("{t}", thread) for k, v in query.items()}
        kind, value = body
        content = httpx.Request("POST", "http://x", json=value).content if kind == "json" else value
        answer = await http.request(
            method,
            url,
            params=params,
            content=content if method != "GET" else None,
            headers={"Content-Type": "application/json", "Authorization": "Bot sim-bot-token"},
        )
    assert answer.status_code < 500, answer.text
    if answer.status_code != 204:
        shaped = answer.json()
        assert isinstance(shaped, dict | list)
        if answer.status_code >= 400:
            assert isinstance(shaped["code"], int)
            assert isinstance(shaped["message"], str)
