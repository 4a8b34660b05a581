"""Posting a collection to a Discord route (issue 17), on both databases: queued once per
route however often it is asked, sent by the delivery pass as one message listing the
collection's shown clips in order under its title, received by the Discord simulator."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.accounts.secrets import seal
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Delivery, NotificationRoute
from clipwatch.discord.delivery import deliver_due
from clipwatch.discord.messages import CONTENT_MAX, SAMPLE
from clipwatch.discord.post_delivery import collection_message
from clipwatch.discord.sender import WebhookSender
from clipwatch.discord.simulator import payload_errors
from tests.api.test_accounts import bearer, make_user
from tests.api.test_moderation import hide, moderator
from tests.discord.conftest import DiscordSim
from tests.factories import helix_clip, store_clips

BASE = "/api/v1/collections"
Sessions = async_sessionmaker[AsyncSession]
MAX_PASSES = 20
_channels = itertools.count()


async def route_for(
    sessionmaker: Sessions, sim: DiscordSim, key: bytes, owner: str, **values: Any
) -> int:
    channel = str(900_000_000_000_200_000 + next(_channels))
    hook = sim.discord.add_webhook(channel)
    async with session_scope(sessionmaker) as session:
        user = await service.user_by_name(session, owner)
        route = NotificationRoute(
            user_id=user.id,
            name="clips",
            webhook_id=hook.id,
            webhook_token_sealed=seal(key, hook.token),
            webhook_channel_id=channel,
            filters={},
            template=values.pop("template", {"name": "card"}),
            delay_seconds=0,
            batching=True,
            enabled=True,
            **values,
        )
        session.add(route)
        await session.flush()
        return route.id


async def drain(sessionmaker: Sessions, sim: DiscordSim, key: bytes) -> int:
    """Delivery passes until one sends nothing (bounded); how many messages were tried."""
    sender = WebhookSender(f"{sim.base}/api/v10")
    sent = 0
    try:
        for _ in range(MAX_PASSES):
            report = await deliver_due(sessionmaker, sender, key)
            if report.messages == 0:
                return sent
            sent += report.messages
    finally:
        await sender.aclose()
    raise AssertionError("the outbox never drained")


async def collection_rows(sessionmaker: Sessions) -> list[Delivery]:
    async with session_scope(sessionmaker) as session:
        stmt = select(Delivery).where(Delivery.kind == "collection").order_by(Delivery.id)
        return list((await session.scalars(stmt)).all())


async def collection_with(client: httpx.AsyncClient, token: str, clip_ids: list[str]) -> int:
    made = await client.post(BASE, json={"title": "Best *of* @everyone"}, headers=bearer(token))
    cid = int(made.json()["id"])
    for clip_id in clip_ids:
        answer = await client.post(
            f"{BASE}/{cid}/items", json={"clip_id": clip_id}, headers=bearer(token)
        )
        assert answer.status_code == 201, answer.text
    return cid


async def test_a_collection_is_posted_once_listing_its_clips_in_order(
    client: httpx.AsyncClient, settings: Settings, sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    key = settings.signing_key
    _, alice = await make_user(sessionmaker, "alice")
    mo = await moderator(sessionmaker)
    made = [helix_clip(id=f"Posted{i}", title=f"clip {i}") for i in range(4)]
    await store_clips(sessionmaker, made)
    ids = [c["id"] for c in made]
    cid = await collection_with(client, alice, [ids[2], ids[0], ids[3], ids[1]])
    assert (await hide(client, mo, ids[3], "not for Discord")).status_code == 200
    route = await route_for(sessionmaker, discord_sim, key, "alice")

    first = await client.post(f"{BASE}/{cid}/post", json={"route_id": route}, headers=bearer(alice))
    assert first.status_code == 202, first.text
    assert first.json() == {"route_id": route, "queued": True}
    again = await client.post(f"{BASE}/{cid}/post", json={"route_id": route}, headers=bearer(alice))
    assert again.status_code == 200
    assert again.json()["queued"] is False
    [row] = await collection_rows(sessionmaker)
    assert (row.route_id, row.clip_id, row.payload) == (
        route,
        f"collection:{cid}",
        {"collection": cid},
    )

    assert await drain(sessionmaker, discord_sim, key) == 1
    [message] = discord_sim.discord.received
    assert payload_errors(message.payload) == {}
    assert message.payload["content"].startswith("**Best \\*of\\*")
    assert message.payload["allowed_mentions"] == {"parse": []}
    urls = [e["url"] for e in message.payload["embeds"]]
    assert urls == [f"https://clips.twitch.tv/{i}" for i in (ids[2], ids[0], ids[1])]
    [row] = await collection_rows(sessionmaker)
    assert row.status == "sent"
    assert row.message_id == message.message_id

    third = await client.post(f"{BASE}/{cid}/post", json={"route_id": route}, headers=bearer(alice))
    assert third.status_code == 200
    assert await drain(sessionmaker, discord_sim, key) == 0
    assert len(discord_sim.discord.received) == 1


async def test_an_empty_collection_posts_nothing_and_others_routes_are_refused(
    client: httpx.AsyncClient, settings: Settings, sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    key = settings.signing_key
    _, alice = await make_user(sessionmaker, "alice")
    await make_user(sessionmaker, "bob")
    cid = await collection_with(client, alice, [])
    bobs = await route_for(sessionmaker, discord_sim, key, "bob")
    refused = await client.post(
        f"{BASE}/{cid}/post", json={"route_id": bobs}, headers=bearer(alice)
    )
    assert refused.status_code == 409  # the collection is there; the route is not yours
    assert await collection_rows(sessionmaker) == []

    route = await route_for(sessionmaker, discord_sim, key, "alice")
    answer = await client.post(
        f"{BASE}/{cid}/post", json={"route_id": route}, headers=bearer(alice)
    )
    assert answer.status_code == 202
    await drain(sessionmaker, discord_sim, key)
    assert discord_sim.discord.received == []
    [row] = await collection_rows(sessionmaker)
    assert row.status == "sent"
    assert row.last_error is not None
    assert "nothing posted" in row.last_error


async def test_a_long_collection_is_a_list_within_discords_limits(
    client: httpx.AsyncClient, settings: Settings, sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    key = settings.signing_key
    _, alice = await make_user(sessionmaker, "alice")
    made = [helix_clip(id=f"Long{i:02d}", title="t" * 100) for i in range(30)]
    await store_clips(sessionmaker, made)
    cid = await collection_with(client, alice, [c["id"] for c in made])
    route = await route_for(sessionmaker, discord_sim, key, "alice", template={"name": "link"})
    answer = await client.post(
        f"{BASE}/{cid}/post", json={"route_id": route}, headers=bearer(alice)
    )
    assert answer.status_code == 202
    assert await drain(sessionmaker, discord_sim, key) == 1
    [message] = discord_sim.discord.received
    assert payload_errors(message.payload) == {}
    text = message.payload.get("content") or ""
    text += "".join(e.get("description", "") for e in message.payload.get("embeds", []))
    assert "Long00" in text
    assert "Long24" in text
    assert "Long25" not in text  # the first 25, said so in the heading
    assert "the first 25 of 30" in str(message.payload)


def test_the_message_fits_whatever_the_title() -> None:
    for title in ("", "x" * 10_000, "@everyone **bold**", "line\nbreak"):
        message = collection_message("link", title, [SAMPLE] * 3)
        assert message is not None
        assert len(message["content"]) <= CONTENT_MAX
        heading, *links = message["content"].split("\n")
        assert heading.startswith("**")
        assert heading.endswith("**")
        assert links == [f"{i}. {SAMPLE.url}" for i in (1, 2, 3)]
    assert collection_message("card", "t", []) is None
