"""Threads and forums against the Discord simulator, on both databases: a pasted
`?thread_id=` is kept and every post goes there; forum routes open a post per clip, or one
per day/stream that later clips reply into (two concurrent passes open one); a thread gone
disables a thread route, a day's post gone is forgotten and opened anew."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.accounts.secrets import seal
from clipwatch.clips.importer import parse_line, store_batch
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Delivery, ForumThread, NotificationRoute, Stream
from clipwatch.db.repositories import notifications
from clipwatch.discord import forum
from clipwatch.discord.delivery import deliver_due
from clipwatch.discord.sender import WebhookSender
from clipwatch.discord.simulator import SimWebhook
from tests.api.test_accounts import bearer, make_user
from tests.conftest import app_client
from tests.discord.conftest import DiscordSim
from tests.discord.test_delivery import KEY, deliveries
from tests.factories import helix_clip

MAX_PASSES = 30


async def make_route(
    sessionmaker: async_sessionmaker[AsyncSession], hook: SimWebhook, **options: Any
) -> int:
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, f"owner{hook.id[-6:]}")
        route = NotificationRoute(
            user_id=user.id,
            name="clips",
            webhook_id=hook.id,
            webhook_token_sealed=seal(KEY, hook.token),
            filters={},
            template=options.pop("template", {"name": "card"}),
            delay_seconds=0,
            batching=options.pop("batching", True),
            enabled=True,
            **options,
        )
        session.add(route)
        await session.flush()
        return route.id


async def queue(
    sessionmaker: async_sessionmaker[AsyncSession], route_id: int, clips: list[dict[str, Any]]
) -> None:
    """Store the clips and queue them for the route (whatever their age)."""
    rows = [parse_line(orjson.dumps(c)) for c in clips]
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        await store_batch(session, rows, notify=False)
        await notifications.add_deliveries(
            session,
            [
                {
                    "route_id": route_id,
                    "clip_id": c["id"],
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for c in clips
            ],
        )


def at(day: str, hour: int = 12) -> str:
    return f"{day}T{hour:02d}:00:00Z"


async def drain(
    sessionmaker: async_sessionmaker[AsyncSession],
    sim: DiscordSim,
    *,
    limit: int = 200,
    key: bytes = KEY,
) -> None:
    sender = WebhookSender(f"{sim.base}/api/v10")
    try:
        for _ in range(MAX_PASSES):
            report = await deliver_due(sessionmaker, sender, key, limit=limit)
            if report.messages == 0 and report.retried == 0:
                return
            await due_now(sessionmaker)  # what waits (a busy post, a retry) is due at once
    finally:
        await sender.aclose()


async def due_now(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with session_scope(sessionmaker) as session:
        await session.execute(
            Delivery.__table__.update()
            .where(Delivery.status == "pending")
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def route_of(sessionmaker: async_sessionmaker[AsyncSession], route_id: int) -> Any:
    async with session_scope(sessionmaker) as session:
        return await session.get(NotificationRoute, route_id)


async def threads(sessionmaker: async_sessionmaker[AsyncSession]) -> list[ForumThread]:
    async with session_scope(sessionmaker) as session:
        return list((await session.scalars(select(ForumThread))).all())


async def test_a_pasted_thread_url_is_kept_and_every_post_goes_into_the_thread(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook()
    thread = discord_sim.discord.add_thread(hook.channel_id)
    _, alice = await make_user(sessionmaker, "alice")
    config = settings.model_copy(
        update={"discord_api_url": f"{discord_sim.base}/api/v10", "webhook_check": True}
    )
    async with app_client(config) as client:
        refused = await client.post(
            "/api/v1/routes",
            json={"name": "r", "webhook_url": f"{hook.pasted_url}?thread_id={thread}&x=1"},
            headers=bearer(alice),
        )
        assert refused.status_code == 422, refused.text
        assert hook.token not in refused.text
        created = await client.post(
            "/api/v1/routes",
            json={"name": "r", "webhook_url": f"{hook.pasted_url}?thread_id={thread}"},
            headers=bearer(alice),
        )
        assert created.status_code == 201, created.text
        route = created.json()
        assert route["thread_id"] == thread
        test = await client.post(f"/api/v1/routes/{route['id']}/test", headers=bearer(alice))
        assert test.json()["sent"] is True
    await queue(sessionmaker, route["id"], [helix_clip() for _ in range(3)])
    await drain(sessionmaker, discord_sim, key=config.signing_key)
    received = discord_sim.discord.received
    assert len(received) == 2  # the test, then the three clips in one message
    assert [r.thread_id for r in received] == [thread, thread]
    assert {d.thread_id for d in await deliveries(sessionmaker)} == {thread}


@pytest.mark.parametrize("why", ["deleted", "locked"])
async def test_a_thread_route_whose_thread_is_gone_is_disabled_with_the_reason(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim, why: str
) -> None:
    hook = discord_sim.discord.add_webhook()
    thread = discord_sim.discord.add_thread(hook.channel_id, locked=why == "locked")
    if why == "deleted":
        discord_sim.discord.delete_thread(thread)
    route_id = await make_route(sessionmaker, hook, thread_id=thread, batching=False)
    await queue(sessionmaker, route_id, [helix_clip() for _ in range(3)])
    await drain(sessionmaker, discord_sim)
    route = await route_of(sessionmaker, route_id)
    assert route.enabled is False
    assert ("10003" if why == "deleted" else "50013") in route.disabled_reason
    assert {d.status for d in await deliveries(sessionmaker)} == {"dead"}
    assert discord_sim.discord.received == []
    executes = [r for r in discord_sim.discord.requests if r.kind == "execute"]
    assert len(executes) == 1  # the first answer stops the route


async def test_forum_post_mode_opens_one_post_per_clip_named_by_the_template(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook("900000000000000010", forum=True)
    route_id = await make_route(
        sessionmaker,
        hook,
        forum_mode="post",
        thread_name="{{ channel }}: {{ title }} " + "x" * 200,
    )
    clips = [helix_clip(title=f"clip {i} **bold**") for i in range(3)]
    clips.append(helix_clip(title=""))  # renders to a name anyway (never empty)
    await queue(sessionmaker, route_id, clips)
    await drain(sessionmaker, discord_sim)
    received = discord_sim.discord.received
    assert len(received) == 4  # batching is on, but a post holds one clip
    assert all(len(r.payload["embeds"]) == 1 for r in received)
    names = [r.payload.get("thread_name") for r in received]
    assert names[0] is not None
    assert names[0].startswith("AlphaStreams: clip 0 **bold**")
    assert all(n and len(n) <= 100 for n in names)
    assert len({r.thread_id for r in received}) == 4
    rows = await deliveries(sessionmaker)
    assert {d.status for d in rows} == {"sent"}
    assert sorted(d.thread_id or "" for d in rows) == sorted(r.thread_id or "" for r in received)


async def test_forum_day_mode_opens_one_post_a_day_and_replies_into_it(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook("900000000000000011", forum=True)
    route_id = await make_route(
        sessionmaker, hook, forum_mode="day", thread_name="Clips of {{ created_at[:10] }}"
    )
    await queue(
        sessionmaker, route_id, [helix_clip(created_at=at("2026-11-20", h)) for h in (1, 2)]
    )
    await drain(sessionmaker, discord_sim)
    await queue(
        sessionmaker,
        route_id,
        [helix_clip(created_at=at("2026-11-20", 20)), helix_clip(created_at=at("2026-11-21"))],
    )
    await drain(sessionmaker, discord_sim)
    received = discord_sim.discord.received
    names = [r.payload.get("thread_name") for r in received]
    assert names == ["Clips of 2026-11-20", None, "Clips of 2026-11-21"]
    assert received[0].thread_id == received[1].thread_id != received[2].thread_id
    assert {t.key: t.thread_id for t in await threads(sessionmaker)} == {
        "day:2026-11-20": received[0].thread_id,
        "day:2026-11-21": received[2].thread_id,
    }


async def test_forum_stream_mode_keys_by_stream_and_falls_back_to_the_day(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook("900000000000000012", forum=True)
    route_id = await make_route(sessionmaker, hook, forum_mode="stream", thread_name="{{ title }}")
    async with session_scope(sessionmaker) as session:
        session.add(
            Stream(
                channel_id="1001",
                twitch_stream_id="777",
                started_at=datetime(2026, 11, 20, 10, tzinfo=UTC),
                ended_at=datetime(2026, 11, 20, 14, tzinfo=UTC),
            )
        )
    during = [helix_clip(created_at=at("2026-11-20", h), title=f"s{h}") for h in (11, 13)]
    after = helix_clip(created_at=at("2026-11-20", 18), title="after")
    await queue(sessionmaker, route_id, [*during, after])
    await drain(sessionmaker, discord_sim)
    assert sorted(t.key for t in await threads(sessionmaker)) == ["day:2026-11-20", "stream:777"]
    received = discord_sim.discord.received
    assert len({r.thread_id for r in received}) == 2
    assert sorted(n for r in received if (n := r.payload.get("thread_name"))) == ["after", "s11"]


async def test_two_concurrent_passes_open_one_post(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook("900000000000000013", forum=True)
    route_id = await make_route(
        sessionmaker, hook, forum_mode="day", thread_name="day", batching=False
    )
    await queue(sessionmaker, route_id, [helix_clip(created_at=at("2026-11-22")) for _ in range(6)])
    senders = [WebhookSender(f"{discord_sim.base}/api/v10") for _ in range(2)]
    try:
        # Each pass claims its own clips of the same day; both look for the day's post.
        await asyncio.gather(*(deliver_due(sessionmaker, s, KEY, limit=3) for s in senders))
    finally:
        for sender in senders:
            await sender.aclose()
    await due_now(sessionmaker)
    await drain(sessionmaker, discord_sim)
    received = discord_sim.discord.received
    assert len(received) == 6
    assert len({r.thread_id for r in received}) == 1
    assert [r.payload.get("thread_name") for r in received].count("day") == 1
    assert {d.status for d in await deliveries(sessionmaker)} == {"sent"}


async def test_a_claim_is_taken_by_one_worker_and_a_stale_one_taken_over(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook()
    route_id = await make_route(sessionmaker, hook, forum_mode="day", thread_name="d")
    first = await forum.join_thread(sessionmaker, route_id, "day:2026-11-23")
    second = await forum.join_thread(sessionmaker, route_id, "day:2026-11-23")
    assert (first.opener, second.busy) == (True, True)
    async with session_scope(sessionmaker) as session:  # the opener died long ago
        await session.execute(
            ForumThread.__table__.update().values(
                created_at=datetime.now(UTC) - forum.CLAIM_STALE - timedelta(seconds=1)
            )
        )
    third = await forum.join_thread(sessionmaker, route_id, "day:2026-11-23")
    fourth = await forum.join_thread(sessionmaker, route_id, "day:2026-11-23")
    assert (third.opener, fourth.busy) == (True, True)
    await forum.opened(sessionmaker, route_id, "day:2026-11-23", "1234567890123456789")
    joined = await forum.join_thread(sessionmaker, route_id, "day:2026-11-23")
    assert joined.thread_id == "1234567890123456789"


async def test_a_days_post_deleted_in_discord_is_opened_anew_and_the_route_stays_on(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook("900000000000000014", forum=True)
    route_id = await make_route(sessionmaker, hook, forum_mode="day", thread_name="day")
    await queue(sessionmaker, route_id, [helix_clip(created_at=at("2026-11-24"))])
    await drain(sessionmaker, discord_sim)
    [first] = discord_sim.discord.received
    assert first.thread_id is not None
    discord_sim.discord.delete_thread(first.thread_id)
    await queue(sessionmaker, route_id, [helix_clip(created_at=at("2026-11-24", 15))])
    await drain(sessionmaker, discord_sim)
    route = await route_of(sessionmaker, route_id)
    assert route.enabled is True
    assert "a new forum post opens" in (route.last_error or "")
    assert len(discord_sim.discord.received) == 2
    second = discord_sim.discord.received[1]
    assert second.payload.get("thread_name") == "day"
    assert second.thread_id not in (None, first.thread_id)
    [row] = await threads(sessionmaker)
    assert row.thread_id == second.thread_id
    assert {d.status for d in await deliveries(sessionmaker)} == {"sent"}


async def test_a_forum_webhook_without_forum_mode_is_rejected_naming_forum_mode(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook("900000000000000015", forum=True)
    route_id = await make_route(sessionmaker, hook)
    await queue(sessionmaker, route_id, [helix_clip()])
    await drain(sessionmaker, discord_sim)
    [row] = await deliveries(sessionmaker)
    assert row.status == "dead"
    assert row.last_error is not None
    assert "forum_mode" in row.last_error
    assert "220001" not in (row.last_error or "x")  # said in the route's terms
