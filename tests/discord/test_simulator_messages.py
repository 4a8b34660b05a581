"""The Discord simulator's webhook GET and message GET/PATCH/DELETE over HTTP on loopback:
Discord's codes, only a webhook's own messages, edits checked like posts, the same bucket."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from clipwatch.discord.simulator import WEBHOOK_LIMIT, SimWebhook
from tests.discord.conftest import DiscordSim

MESSAGE = {"content": "a clip", "allowed_mentions": {"parse": []}}


def hook_url(sim: DiscordSim, hook: SimWebhook, token: str | None = None) -> str:
    return f"{sim.base}/api/v10/webhooks/{hook.id}/{token or hook.token}"


async def call(
    sim: DiscordSim,
    method: str,
    hook: SimWebhook,
    suffix: str = "",
    payload: Any = None,
    *,
    fresh: bool = True,
    **query: str,
) -> httpx.Response:
    if fresh:
        hook.hits.clear()  # not about the bucket (test_bucket_... is)
    async with httpx.AsyncClient() as http:
        return await http.request(
            method, hook_url(sim, hook) + suffix, json=payload, params=query or None
        )


async def posted(sim: DiscordSim, hook: SimWebhook, **query: str) -> dict[str, Any]:
    answer = await call(sim, "POST", hook, "", MESSAGE, wait="true", **query)
    assert answer.status_code == 200, answer.text
    message: dict[str, Any] = answer.json()
    return message


async def test_get_webhook_answers_the_webhook_object(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    sim.add_channel("900000000000000055", "800000000000000099")
    hook = sim.add_webhook("900000000000000055")
    answer = await call(discord_sim, "GET", hook)
    assert answer.status_code == 200
    assert answer.json() == {
        "id": hook.id,
        "type": 1,
        "guild_id": "800000000000000099",
        "channel_id": "900000000000000055",
        "name": hook.name,
        "avatar": None,
        "application_id": None,
        "token": hook.token,
    }
    assert "x-ratelimit-remaining" in answer.headers
    assert [(r.kind, r.status) for r in sim.requests] == [("get_webhook", 200)]
    assert sim.received == []  # checking posts nothing


async def test_get_webhook_deleted_is_10015_and_wrong_token_50027(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    gone, live = sim.add_webhook(), sim.add_webhook()
    sim.webhooks[gone.id].deleted = True
    async with httpx.AsyncClient() as http:
        deleted = await http.get(hook_url(discord_sim, gone))
        wrong = await http.get(hook_url(discord_sim, live, "x" * 68))
    assert (deleted.status_code, deleted.json()["code"]) == (404, 10015)
    assert (wrong.status_code, wrong.json()["code"]) == (401, 50027)
    assert sum(sim.invalid.get("127.0.0.1", [])) > 0  # a 401 is an invalid request


async def test_the_repeated_404_restriction_covers_get_but_not_unknown_messages() -> None:
    from clipwatch.discord.simulator import DiscordSimulator
    from clipwatch.simhttp import LoopbackServer

    sim = DiscordSimulator(repeated_404_limit=3)
    server = LoopbackServer(sim)
    base = await server.start()
    gone, live = sim.add_webhook(), sim.add_webhook()
    gone.deleted = True
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(3):
                live.hits.clear()
                missing = await http.get(f"{hook_url(DiscordSim(sim, base), live)}/messages/12345")
                assert missing.json()["code"] == 10008
            assert (await http.get(hook_url(DiscordSim(sim, base), live))).status_code == 200
            for _ in range(3):
                assert (await http.get(hook_url(DiscordSim(sim, base), gone))).status_code == 404
            banned = await http.get(hook_url(DiscordSim(sim, base), live))
    finally:
        await server.stop()
    assert banned.status_code == 429
    assert banned.headers["content-type"].startswith("text/html")


async def test_a_message_is_read_edited_and_deleted(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    message = await posted(discord_sim, hook)
    suffix = f"/messages/{message['id']}"
    read = await call(discord_sim, "GET", hook, suffix)
    assert read.status_code == 200
    assert read.json()["content"] == "a clip"
    edit = {"content": "removed on Twitch", "embeds": [], "allowed_mentions": {"parse": []}}
    edited = await call(discord_sim, "PATCH", hook, suffix, edit)
    assert edited.status_code == 200
    assert edited.json()["content"] == "removed on Twitch"
    assert edited.json()["edited_timestamp"]
    stored = sim.messages[message["id"]]
    assert stored.payload["content"] == "removed on Twitch"
    assert stored.edits == [edit]
    deleted = await call(discord_sim, "DELETE", hook, suffix)
    assert (deleted.status_code, deleted.content) == (204, b"")
    for method in ("GET", "PATCH", "DELETE"):
        again = await call(discord_sim, method, hook, suffix, edit if method == "PATCH" else None)
        assert (again.status_code, again.json()["code"]) == (404, 10008), method
    async with httpx.AsyncClient() as http:
        [listed] = (await http.get(f"{discord_sim.base}/_sim/messages")).json()["messages"]
    assert (listed["edits"], listed["deleted"]) == (1, True)
    assert listed["payload"]["content"] == "removed on Twitch"
    assert [r.kind for r in sim.requests] == [
        "execute",
        "get_message",
        "edit_message",
        "delete_message",
        "get_message",
        "edit_message",
        "delete_message",
    ]


async def test_only_the_webhooks_own_messages(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    mine, other = sim.add_webhook(), sim.add_webhook()
    theirs = await posted(discord_sim, other)
    for method in ("GET", "PATCH", "DELETE"):
        for message_id in (theirs["id"], "1234567890123456789", "abc"):
            answer = await call(
                discord_sim,
                method,
                mine,
                f"/messages/{message_id}",
                MESSAGE if method == "PATCH" else None,
            )
            assert answer.status_code == 404
            assert answer.json() == {"message": "Unknown Message", "code": 10008}
    assert sim.messages[theirs["id"]].payload == MESSAGE
    assert not sim.messages[theirs["id"]].deleted


async def test_a_message_in_a_thread_needs_its_thread_id(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook("900000000000000031", forum=True)
    answer = await call(
        discord_sim, "POST", hook, "", MESSAGE | {"thread_name": "post"}, wait="true"
    )
    message = answer.json()
    thread = message["channel_id"]
    suffix = f"/messages/{message['id']}"
    without = await call(discord_sim, "GET", hook, suffix)
    assert without.json()["code"] == 10008
    other_thread = sim.add_thread(hook.channel_id)
    assert (await call(discord_sim, "GET", hook, suffix, thread_id=other_thread)).json()[
        "code"
    ] == 10008
    edited = await call(discord_sim, "PATCH", hook, suffix, {"content": "edited"}, thread_id=thread)
    assert edited.status_code == 200
    assert edited.json()["channel_id"] == thread
    sim.threads[thread].locked = True
    assert (
        await call(discord_sim, "PATCH", hook, suffix, {"content": "x"}, thread_id=thread)
    ).status_code == 403
    assert (await call(discord_sim, "GET", hook, suffix, thread_id=thread)).status_code == 200
    sim.delete_thread(thread)
    for method in ("GET", "DELETE"):
        gone = await call(discord_sim, method, hook, suffix, thread_id=thread)
        assert (gone.status_code, gone.json()["code"]) == (404, 10003)


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        ({"content": "x" * 2001}, "content"),
        ({"embeds": [{"title": "x" * 257}]}, "embeds.0.title"),
        ({"embeds": [{"description": "d"}] * 11}, "embeds"),
        ({"content": "", "embeds": []}, "_errors"),
        ({"allowed_mentions": {"parse": ["roles"], "roles": ["1"]}}, "allowed_mentions"),
        (
            {"allowed_mentions": {"parse": [], "users": [str(i) for i in range(101)]}},
            "allowed_mentions",
        ),
        ([1, 2], "_errors"),
    ],
)
async def test_an_edit_is_checked_like_a_post(
    discord_sim: DiscordSim, edit: Any, where: str
) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    message = await posted(discord_sim, hook)
    answer = await call(discord_sim, "PATCH", hook, f"/messages/{message['id']}", edit)
    assert (answer.status_code, answer.json()["code"]) == (400, 50035)
    assert where in answer.json()["errors"]
    assert sim.messages[message["id"]].payload == MESSAGE
    assert sim.messages[message["id"]].edits == []


async def test_an_edit_re_reads_mentions_under_its_own_allowed_mentions(
    discord_sim: DiscordSim,
) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    answer = await call(
        discord_sim,
        "POST",
        hook,
        "",
        {"content": "<@&42> <@7>", "allowed_mentions": {"parse": [], "roles": ["42"]}},
        wait="true",
    )
    assert answer.json()["mention_roles"] == ["42"]
    assert answer.json()["mentions"] == []
    suffix = f"/messages/{answer.json()['id']}"
    # No allowed_mentions in the edit: the webhook default (users only) applies, not the post's.
    edited = await call(discord_sim, "PATCH", hook, suffix, {"content": "<@&42> <@7> again"})
    assert edited.json()["mention_roles"] == []
    assert edited.json()["mentions"] == [{"id": "7"}]
    assert "allowed_mentions" not in sim.messages[answer.json()["id"]].payload


async def test_message_routes_draw_from_the_webhooks_bucket(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    frozen = time.time()
    sim.clock = lambda: frozen  # all in one window however slowly this machine answers
    message = await posted(discord_sim, hook)
    suffix = f"/messages/{message['id']}"
    statuses = []
    for index in range(WEBHOOK_LIMIT):
        method = ("GET", "PATCH", "GET", "POST")[index % 4]
        answer = await call(
            discord_sim,
            method,
            hook,
            "" if method == "POST" else suffix,
            MESSAGE if method != "GET" else None,
            fresh=False,
        )
        statuses.append(answer.status_code)
    assert statuses[: WEBHOOK_LIMIT - 1] == [200, 200, 200, 204]
    assert statuses[-1] == 429
    limited = await call(discord_sim, "DELETE", hook, suffix, fresh=False)
    assert limited.status_code == 429
    assert limited.json()["retry_after"] > 0
    assert limited.headers["x-ratelimit-scope"] == "user"
    assert sim.rate_limited["webhook"] == 2
    assert not sim.messages[message["id"]].deleted


async def test_an_outage_and_faults_cover_every_webhook_route(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    message = await posted(discord_sim, hook)
    sim.faults.append("5xx")
    assert (await call(discord_sim, "GET", hook)).status_code == 502
    sim.outage(30)
    answer = await call(discord_sim, "DELETE", hook, f"/messages/{message['id']}")
    assert answer.status_code == 503
    assert not sim.messages[message["id"]].deleted
