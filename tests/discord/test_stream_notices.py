"""Stream notices ("went live", "stream ended: N clips") from the live change to the Discord
simulator, on both databases: routing by channel, once per stream, rendered when sent (the
clips the final pass stored are counted), the delivery outcomes clip messages meet, and the
route settings through the API and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.clips.importer import parse_line, store_batch
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Channel, Clip, Delivery, NotificationRoute
from clipwatch.discord.delivery import deliver_due
from clipwatch.discord.messages import StreamNoticeView, message_problems, stream_notice_message
from clipwatch.discord.sender import WebhookSender
from clipwatch.discord.simulator import payload_errors
from clipwatch.twitch.live import went_offline, went_online
from tests.api.test_accounts import bearer, make_user
from tests.cli.test_commands import run
from tests.conftest import app_client
from tests.discord.conftest import DiscordSim
from tests.discord.test_delivery import KEY, make_route
from tests.factories import helix_clip

CH = "5551"


async def setup_channel(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with session_scope(sessionmaker) as session:
        session.add(Channel(id=CH, login="alpha", display_name="Alpha @everyone", tracked=True))
        session.add(Channel(id="5552", login="beta", display_name="Beta", tracked=True))


async def set_notices(
    sessionmaker: async_sessionmaker[AsyncSession], route_id: int, **values: bool
) -> None:
    async with session_scope(sessionmaker) as session:
        route = await session.get(NotificationRoute, route_id)
        assert route is not None
        for name, value in values.items():
            setattr(route, name, value)


async def send(sessionmaker: async_sessionmaker[AsyncSession], sim: DiscordSim) -> int:
    sender = WebhookSender(f"{sim.base}/api/v10")
    try:
        return (await deliver_due(sessionmaker, sender, KEY)).messages
    finally:
        await sender.aclose()


async def outbox(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Delivery]:
    async with session_scope(sessionmaker) as session:
        return list((await session.scalars(select(Delivery).order_by(Delivery.id))).all())


def clip_at(moment: datetime, n: int, **changes: Any) -> dict[str, Any]:
    return helix_clip(
        id=f"StreamClip{n}",
        broadcaster_id=CH,
        broadcaster_name="Alpha",
        created_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **changes,
    )


async def store(
    sessionmaker: async_sessionmaker[AsyncSession], clips: list[dict[str, Any]]
) -> None:
    rows = [parse_line(orjson.dumps(c)) for c in clips]
    async with session_scope(sessionmaker) as session:
        await store_batch(session, rows, notify=False)


async def test_went_live_reaches_the_routes_that_asked_once(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    await setup_channel(sessionmaker)
    wants = await make_route(sessionmaker, discord_sim, filters={"channels": ["alpha"]})
    other = await make_route(sessionmaker, discord_sim, filters={"channels": ["beta"]})
    quiet = await make_route(sessionmaker, discord_sim)
    await set_notices(sessionmaker, wants, notify_live=True)
    await set_notices(sessionmaker, other, notify_live=True)
    started = datetime.now(UTC) - timedelta(seconds=5)
    assert await went_online(
        sessionmaker,
        CH,
        stream_id="77",
        started_at=started,
        stream_type="live",
        source="eventsub",
        title="**bold** run @here",
        game_id="1",
        game_name="Chess",
    )
    assert await send(sessionmaker, discord_sim) == 1
    [message] = discord_sim.discord.received
    assert payload_errors(message.payload) == {}
    assert message.payload["allowed_mentions"] == {"parse": []}
    [embed] = message.payload["embeds"]
    assert embed["title"] == "Alpha @\u200beveryone is live"
    assert embed["description"] == "\\*\\*bold\\*\\* run @\u200bhere"
    assert embed["url"] == "https://www.twitch.tv/alpha"
    assert {"name": "Game", "value": "Chess", "inline": True} in embed["fields"]
    [delivery] = await outbox(sessionmaker)
    assert (delivery.route_id, delivery.kind, delivery.status) == (wants, "live", "sent")
    assert quiet not in {d.route_id for d in await outbox(sessionmaker)}

    # The same stream again (a poll, a re-sent event): nothing new reaches Discord.
    await went_online(
        sessionmaker, CH, stream_id="77", started_at=started, stream_type="live", source="poll"
    )
    assert await send(sessionmaker, discord_sim) == 0
    assert len(discord_sim.discord.received) == 1


async def test_stream_end_counts_the_clips_stored_by_the_time_it_is_sent(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    await setup_channel(sessionmaker)
    route = await make_route(sessionmaker, discord_sim)
    await set_notices(sessionmaker, route, notify_stream_end=True)
    now = datetime.now(UTC).replace(microsecond=0)
    started, ended = now - timedelta(hours=3), now - timedelta(minutes=5)
    await went_online(
        sessionmaker,
        CH,
        stream_id="88",
        started_at=started,
        stream_type="live",
        source="poll",
        viewer_count=1200,
    )
    await store(sessionmaker, [clip_at(started + timedelta(minutes=10), 1)])
    # Ended five minutes ago, final pass after 3 minutes: due (with its margin) by now.
    assert await went_offline(
        sessionmaker, CH, source="eventsub", at=ended, final_pass_after=timedelta(seconds=180)
    )
    [notice] = await outbox(sessionmaker)
    assert notice.next_attempt_at >= ended + timedelta(seconds=180)
    # The final pass stores the clips made at the end; one outside the stream, one deleted.
    await store(
        sessionmaker,
        [
            clip_at(ended - timedelta(minutes=1), 2),
            clip_at(ended - timedelta(seconds=10), 3),
            clip_at(started - timedelta(minutes=1), 4),
            clip_at(started + timedelta(minutes=20), 5),
        ],
    )
    async with session_scope(sessionmaker) as session:
        gone = (await session.scalars(select(Clip).where(Clip.id == "StreamClip5"))).one()
        gone.deleted_at = now
    assert await send(sessionmaker, discord_sim) == 1
    [message] = discord_sim.discord.received
    assert payload_errors(message.payload) == {}
    [embed] = message.payload["embeds"]
    assert embed["title"] == "Alpha @\u200beveryone: stream ended: 3 clips"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Length"] == "2 h 55 min"
    assert fields["Peak viewers"] == "1,200"


async def test_stream_end_waits_for_the_final_pass(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    await setup_channel(sessionmaker)
    route = await make_route(sessionmaker, discord_sim)
    await set_notices(sessionmaker, route, notify_stream_end=True, notify_live=True)
    await went_online(
        sessionmaker, CH, stream_id="9", started_at=None, stream_type="live", source="eventsub"
    )
    assert await went_offline(sessionmaker, CH, source="eventsub")
    assert await send(sessionmaker, discord_sim) == 1  # the live notice only
    [live, end] = await outbox(sessionmaker)
    assert (live.kind, live.status, end.kind, end.status) == (
        "live",
        "sent",
        "stream_end",
        "pending",
    )
    assert end.next_attempt_at > datetime.now(UTC) + timedelta(seconds=170)


async def test_notices_meet_the_outcomes_clip_messages_meet(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    await setup_channel(sessionmaker)
    route = await make_route(sessionmaker, discord_sim)
    await set_notices(sessionmaker, route, notify_live=True)
    await went_online(
        sessionmaker, CH, stream_id="1", started_at=None, stream_type="live", source="eventsub"
    )
    discord_sim.discord.outage(60)
    assert await send(sessionmaker, discord_sim) == 1
    [retried] = await outbox(sessionmaker)
    assert (retried.status, retried.attempts) == ("pending", 1)
    assert retried.next_attempt_at > datetime.now(UTC)

    # The webhook is deleted: the route is disabled, the notice dead.
    discord_sim.discord.outage(0)
    for hook in discord_sim.discord.webhooks.values():
        hook.deleted = True
    async with session_scope(sessionmaker) as session:
        row = await session.get(Delivery, retried.id)
        assert row is not None
        row.next_attempt_at = datetime.now(UTC)
    assert await send(sessionmaker, discord_sim) == 1
    [dead] = await outbox(sessionmaker)
    assert dead.status == "dead"
    async with session_scope(sessionmaker) as session:
        stored = await session.get(NotificationRoute, route)
        assert stored is not None
        assert not stored.enabled
        assert stored.disabled_reason


async def test_a_notice_whose_stream_is_gone_is_dead_not_stuck(
    sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    await setup_channel(sessionmaker)
    route = await make_route(sessionmaker, discord_sim)
    async with session_scope(sessionmaker) as session:
        session.add(
            Delivery(
                route_id=route,
                clip_id="live:ghost",
                kind="live",
                status="pending",
                attempts=0,
                next_attempt_at=datetime.now(UTC),
                created_at=datetime.now(UTC),
                payload={"stream": 123456},
            )
        )
    assert await send(sessionmaker, discord_sim) == 0
    [row] = await outbox(sessionmaker)
    assert (row.status, row.last_error) == ("dead", "stream not in the archive")
    assert discord_sim.discord.received == []


def test_notice_messages_stay_within_discord_limits() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for kind in ("live", "stream_end"):
        for text in ("", "x" * 10_000, "@everyone " * 600, "[link](http://x) ``` ~~"):
            view = StreamNoticeView(
                kind=kind,
                channel_name=text or "c",
                channel_login="bad login!" if text else "ok_login",
                title=text,
                game_name=text,
                started_at=start,
                ended_at=start + timedelta(minutes=59) if kind == "stream_end" else None,
                peak_viewers=0,
                clips=1,
            )
            message = stream_notice_message(view)
            assert message_problems(message) == []
            assert payload_errors(message) == {}
            assert "bad login" not in str(message.get("embeds"))
    one = stream_notice_message(
        StreamNoticeView("stream_end", "c", "c", "", "", start, start, None, clips=1)
    )
    assert one["embeds"][0]["title"] == "c: stream ended: 1 clip"


async def test_route_notices_through_the_api(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook()
    _, alice = await make_user(sessionmaker, "alice")
    async with app_client(settings) as client:
        created = await client.post(
            "/api/v1/routes",
            json={"name": "lives", "webhook_url": hook.pasted_url, "notify_live": True},
            headers=bearer(alice),
        )
        assert created.status_code == 201, created.text
        route = created.json()
        assert (route["notify_live"], route["notify_stream_end"]) == (True, False)
        path = f"/api/v1/routes/{route['id']}"
        changed = await client.patch(
            path, json={"notify_stream_end": True, "notify_live": False}, headers=bearer(alice)
        )
        assert changed.status_code == 200, changed.text
        read = (await client.get(path, headers=bearer(alice))).json()
        assert (read["notify_live"], read["notify_stream_end"]) == (False, True)
        for bad in ("yes", 1, None):
            refused = await client.patch(path, json={"notify_live": bad}, headers=bearer(alice))
            assert refused.status_code == 422 or (bad is None and refused.status_code == 200)
        default = await client.post(
            "/api/v1/routes",
            json={"name": "clips", "webhook_url": hook.pasted_url},
            headers=bearer(alice),
        )
        assert (default.json()["notify_live"], default.json()["notify_stream_end"]) == (
            False,
            False,
        )


def test_route_notices_through_the_cli(
    settings: Settings, engine: AsyncEngine, tmp_path: Any
) -> None:
    # No Discord behind this URL: the webhook check at `routes add` is off here.
    env = {"CLIPWATCH_DATABASE_URL": settings.database_url, "CLIPWATCH_WEBHOOK_CHECK": "false"}
    url = "https://discord.com/api/webhooks/123456789012345678/" + "t" * 60
    assert run(tmp_path, "users", "create", "owner", **env).returncode == 0
    added = run(
        tmp_path,
        "routes",
        "add",
        "owner",
        "highlights",
        url,
        "--notify-live",
        "--channel",
        "alpha",
        **env,
    )
    assert added.returncode == 0, added.stderr

    def row() -> str:
        listed = run(tmp_path, "routes", "list", COLUMNS="250", **env)
        [line] = [line for line in listed.stdout.splitlines() if "highlights" in line]
        return line

    assert "live" in row()
    assert "stream end" not in row()
    edited = run(tmp_path, "routes", "edit", "1", "--no-notify-live", "--notify-stream-end", **env)
    assert edited.returncode == 0, edited.stderr
    assert "stream end" in edited.stdout
    assert "stream end" in row()
    assert "live" not in row()
    nothing = run(tmp_path, "routes", "edit", "1", **env)
    assert nothing.returncode == 1
    assert "nothing to change" in nothing.stderr
    missing = run(tmp_path, "routes", "edit", "99", "--notify-live", **env)
    assert missing.returncode == 1
