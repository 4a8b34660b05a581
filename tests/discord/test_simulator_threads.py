"""The Discord simulator's execute-webhook as issue 15 needs it, over HTTP on loopback:
`?wait=true` answers the message object, threads (archived, locked, deleted, another
channel's), forum channels (a post per `thread_name`, replies by `thread_id`)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from clipwatch.discord.simulator import SimWebhook
from tests.discord.conftest import DiscordSim

MESSAGE = {"content": "a clip", "allowed_mentions": {"parse": []}}


async def post(
    sim: DiscordSim, hook: SimWebhook, payload: Any = MESSAGE, **query: str
) -> httpx.Response:
    hook.hits.clear()  # the bucket is test_sender's and test_simulator_messages' subject
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{sim.base}/api/v10/webhooks/{hook.id}/{hook.token}", json=payload, params=query
        )


async def sim_messages(sim: DiscordSim) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        listed: list[dict[str, Any]] = (await http.get(f"{sim.base}/_sim/messages")).json()[
            "messages"
        ]
        return listed


async def test_wait_true_answers_the_message_and_wait_false_204(discord_sim: DiscordSim) -> None:
    hook = discord_sim.discord.add_webhook("900000000000000042")
    payload = MESSAGE | {
        "embeds": [{"title": "t"}],
        "allowed_mentions": {"parse": [], "roles": ["1"]},
    }
    waited = await post(discord_sim, hook, payload, wait="true")
    assert waited.status_code == 200
    message = waited.json()
    assert message["channel_id"] == "900000000000000042"
    assert message["webhook_id"] == hook.id
    assert message["content"] == "a clip"
    assert message["embeds"] == [{"title": "t"}]
    assert message["allowed_mentions"] == {"parse": [], "roles": ["1"]}
    assert message["id"] == discord_sim.discord.received[0].message_id
    assert discord_sim.discord.messages[message["id"]].payload == payload
    for wait in (None, "false", "0", "False"):
        answer = await post(discord_sim, hook, **({"wait": wait} if wait else {}))
        assert answer.status_code == 204
        assert answer.content == b""
    assert (await post(discord_sim, hook, wait="1")).status_code == 200
    assert (await post(discord_sim, hook, wait="maybe")).json()["code"] == 50035
    [first, *_] = await sim_messages(discord_sim)
    assert first["channel_id"] == "900000000000000042"
    assert first["thread_id"] is None
    assert first["message_id"] == message["id"]


async def test_a_thread_of_the_channel_takes_the_message(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    thread = sim.add_thread(hook.channel_id, name="clips")
    answer = await post(discord_sim, hook, wait="true", thread_id=thread)
    assert answer.status_code == 200
    assert answer.json()["channel_id"] == thread
    [listed] = await sim_messages(discord_sim)
    assert (listed["thread_id"], listed["thread_name"]) == (thread, "clips")
    assert listed["channel_id"] == hook.channel_id


async def test_an_archived_thread_is_unarchived_by_a_post(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    thread = sim.add_thread(hook.channel_id, archived=True)
    assert (await post(discord_sim, hook, thread_id=thread)).status_code == 204
    assert sim.threads[thread].archived is False


@pytest.mark.parametrize("case", ["unknown", "deleted", "other channel", "not a snowflake"])
async def test_a_thread_that_is_not_there_is_unknown_channel(
    discord_sim: DiscordSim, case: str
) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook("900000000000000001")
    thread = {
        "unknown": "1234567890123456789",
        "deleted": sim.add_thread(hook.channel_id),
        "other channel": sim.add_thread("900000000000000002"),
        "not a snowflake": "abc",
    }[case]
    if case == "deleted":
        sim.delete_thread(thread)
    answer = await post(discord_sim, hook, wait="true", thread_id=thread)
    if case == "not a snowflake":
        assert (answer.status_code, answer.json()["code"]) == (400, 50035)
    else:
        assert answer.status_code == 404
        assert answer.json() == {"message": "Unknown Channel", "code": 10003}
    assert sim.received == []


async def test_a_locked_thread_refuses_with_403(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook()
    thread = sim.add_thread(hook.channel_id, archived=True, locked=True)
    answer = await post(discord_sim, hook, thread_id=thread)
    assert (answer.status_code, answer.json()["code"]) == (403, 50013)
    assert sim.threads[thread].archived  # nobody reopened it
    assert sim.received == []


async def test_threads_through_the_control_endpoints(discord_sim: DiscordSim) -> None:
    async with httpx.AsyncClient(base_url=discord_sim.base) as http:
        made = (
            await http.post("/_sim/threads", params={"channel_id": "900000000000000009"})
        ).json()
        hook = (
            await http.post("/_sim/webhooks", params={"channel_id": "900000000000000009"})
        ).json()
        url = f"/api/v10/webhooks/{hook['id']}/{hook['token']}"
        assert (
            await http.post(url, json=MESSAGE, params={"thread_id": made["id"]})
        ).status_code == 204
        await http.post("/_sim/delete-thread", params={"id": made["id"]})
        gone = await http.post(url, json=MESSAGE, params={"thread_id": made["id"]})
        assert gone.json()["code"] == 10003
        locked = (
            await http.post(
                "/_sim/threads", params={"channel_id": "900000000000000009", "locked": "true"}
            )
        ).json()
        refused = await http.post(url, json=MESSAGE, params={"thread_id": locked["id"]})
        assert refused.status_code == 403
        threads = (await http.get("/_sim/threads")).json()["threads"]
        assert {t["id"]: t["deleted"] for t in threads} == {made["id"]: True, locked["id"]: False}


async def test_a_forum_post_per_thread_name_and_replies_by_thread_id(
    discord_sim: DiscordSim,
) -> None:
    sim = discord_sim.discord
    hook = sim.add_webhook("900000000000000077", forum=True)
    first = await post(discord_sim, hook, MESSAGE | {"thread_name": "Clips of Monday"}, wait="true")
    assert first.status_code == 200
    post_id = first.json()["channel_id"]
    assert post_id != hook.channel_id
    assert post_id != first.json()["id"]  # a thread id of its own
    assert sim.threads[post_id].name == "Clips of Monday"
    assert sim.threads[post_id].channel_id == hook.channel_id
    reply = await post(discord_sim, hook, wait="true", thread_id=post_id)
    assert reply.json()["channel_id"] == post_id
    second = await post(
        discord_sim, hook, MESSAGE | {"thread_name": "Clips of Tuesday"}, wait="true"
    )
    assert second.json()["channel_id"] not in (post_id, hook.channel_id)
    listed = await sim_messages(discord_sim)
    assert [(m["thread_id"], m["thread_name"]) for m in listed] == [
        (post_id, "Clips of Monday"),
        (post_id, "Clips of Monday"),
        (second.json()["channel_id"], "Clips of Tuesday"),
    ]


async def test_forum_rules_answer_discords_codes(discord_sim: DiscordSim) -> None:
    sim = discord_sim.discord
    forum = sim.add_webhook("900000000000000078", forum=True)
    text = sim.add_webhook("900000000000000079")
    thread = sim.add_thread(forum.channel_id)
    cases = [
        (forum, MESSAGE, {}, 220001),
        (forum, MESSAGE | {"thread_name": "x"}, {"thread_id": thread}, 220002),
        (text, MESSAGE | {"thread_name": "x"}, {}, 220003),
        (forum, MESSAGE | {"thread_name": "x" * 101}, {}, 50035),
        (forum, MESSAGE | {"thread_name": "   "}, {}, 50035),
        (forum, MESSAGE | {"thread_name": 7}, {}, 50035),
    ]
    for hook, payload, query, code in cases:
        answer = await post(discord_sim, hook, payload, **query)
        assert (answer.status_code, answer.json()["code"]) == (400, code), (payload, query)
    assert sim.received == []
    assert list(sim.threads) == [thread]  # no post was made by a refused message
    assert (await post(discord_sim, forum, MESSAGE | {"thread_name": "x" * 100})).status_code == 204
