"""Digest routes: the schedule's slots and period keys in the route's time zone (DST
included), queued once per period however often and by how many workers the task runs, the
top clips under the route's filters, rendered when sent and received by the Discord
simulator; on both databases."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Delivery, NotificationRoute
from clipwatch.discord import digests
from clipwatch.discord.delivery import deliver_due
from clipwatch.discord.digests import (
    Schedule,
    digest_message,
    latest_period,
    next_slot,
    period_of_slot,
    queue_due_digests,
    schedule_of,
)
from clipwatch.discord.messages import SAMPLE, message_problems
from clipwatch.discord.sender import WebhookSender
from clipwatch.discord.simulator import payload_errors
from clipwatch.runtime.digests import digests_forever, queue_digests_once
from clipwatch.runtime.supervisor import TaskState
from tests.api.test_accounts import bearer, make_user
from tests.cli.test_commands import run
from tests.conftest import app_client
from tests.discord.conftest import DiscordSim
from tests.discord.test_delivery import KEY, make_route, store
from tests.factories import helix_clip

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
ZONES = sorted(available_timezones() - {"Factory", "localtime"})


def weekly(zone: str = "Europe/Berlin", weekday: int = 0, at: str = "18:00") -> Schedule:
    return schedule_of(
        {"period": "week", "weekday": weekday, "time": at, "time_zone": zone, "top": 10}
    )


# --- schedule math ----------------------------------------------------------------------------


def test_mondays_1800_berlin_posts_the_week_that_ended() -> None:
    schedule = weekly()
    after = latest_period(schedule, datetime(2026, 11, 30, 17, 30, tzinfo=UTC))  # 18:30 CET
    assert after.key == "week:2026-W48"
    assert after.slot_at == datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    assert after.start == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)  # Mon 23 Nov 00:00 CET
    assert after.end == datetime(2026, 11, 29, 23, 0, tzinfo=UTC)
    before = latest_period(schedule, datetime(2026, 11, 30, 16, 59, tzinfo=UTC))
    assert before.key == "week:2026-W47"
    assert before.end == after.start
    assert next_slot(schedule, datetime(2026, 11, 30, 16, 59, tzinfo=UTC)) == after.slot_at


def test_a_skipped_local_time_comes_the_gap_later_and_a_repeated_one_first() -> None:
    daily = schedule_of({"period": "day", "time": "02:30", "time_zone": "Europe/Berlin"})
    spring = latest_period(daily, datetime(2026, 3, 29, 12, 0, tzinfo=UTC))
    assert spring.slot_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert spring.key == "day:2026-03-28"
    assert spring.end - spring.start == timedelta(hours=24)
    autumn = latest_period(daily, datetime(2026, 10, 25, 12, 0, tzinfo=UTC))
    assert autumn.slot_at == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30
    # The day that lost an hour is 23 hours long, the one that gained one 25.
    assert latest_period(daily, datetime(2026, 3, 30, 12, 0, tzinfo=UTC)).end - latest_period(
        daily, datetime(2026, 3, 30, 12, 0, tzinfo=UTC)
    ).start == timedelta(hours=23)
    assert latest_period(daily, datetime(2026, 10, 26, 12, 0, tzinfo=UTC)).end - latest_period(
        daily, datetime(2026, 10, 26, 12, 0, tzinfo=UTC)
    ).start == timedelta(hours=25)
    new_york = schedule_of({"period": "day", "time": "02:30", "time_zone": "America/New_York"})
    assert latest_period(new_york, datetime(2026, 3, 8, 12, 0, tzinfo=UTC)).slot_at == datetime(
        2026, 3, 8, 7, 30, tzinfo=UTC
    )


def test_a_monthly_digest_covers_the_month_before_its_first() -> None:
    monthly = schedule_of({"period": "month", "time": "09:00", "time_zone": "Asia/Tokyo"})
    period = latest_period(monthly, datetime(2026, 12, 1, 0, 0, tzinfo=UTC))  # 09:00 JST
    assert (period.key, period.label) == ("month:2026-11", "November 2026")
    assert period.start == datetime(2026, 10, 31, 15, 0, tzinfo=UTC)
    assert latest_period(monthly, datetime(2026, 11, 30, 23, 59, tzinfo=UTC)).key == (
        "month:2026-10"
    )
    january = latest_period(monthly, datetime(2027, 1, 5, tzinfo=UTC))
    assert january.key == "month:2026-12"


@pytest.mark.parametrize(
    "stored",
    [
        None,
        {"period": "year"},
        {"weekday": 7},
        {"weekday": True},
        {"time": "25:00"},
        {"time": "noon"},
        {"time_zone": "Mars/Olympus"},
        {"time_zone": "../etc/passwd"},
        {"top": 0},
        {"top": 26},
    ],
)
def test_an_unreadable_schedule_is_a_value_error(stored: Any) -> None:
    with pytest.raises(ValueError, match=r"."):
        schedule_of(stored)


def _exists(day: date, at: time, zone: ZoneInfo) -> bool:
    moment = datetime.combine(day, at, tzinfo=zone)
    return moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == moment.replace(
        tzinfo=None
    )


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    period=st.sampled_from(["day", "week", "month"]),
    weekday=st.integers(0, 6),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 1, 15, 30, 59]),
    now=st.datetimes(datetime(1995, 1, 1), datetime(2037, 12, 31), timezones=st.just(UTC)),
)
def test_slots_are_the_right_local_time_and_keys_are_stable(
    zone: str, period: str, weekday: int, hour: int, minute: int, now: datetime
) -> None:
    at = time(hour, minute)
    schedule = schedule_of(
        {"period": period, "weekday": weekday, "time": f"{at:%H:%M}", "time_zone": zone}
    )
    tz = schedule.zone
    p = latest_period(schedule, now)
    nxt = next_slot(schedule, now)
    assert p.slot_at <= now < nxt
    # Stable: the same period from its slot up to the next slot, another one from then on.
    assert latest_period(schedule, p.slot_at) == p
    assert latest_period(schedule, nxt - timedelta(microseconds=1)) == p
    assert latest_period(schedule, nxt).key != p.key
    slot_day = p.end.astimezone(tz).date()
    if period == "week":
        assert slot_day.weekday() == weekday
    if period == "month":
        assert slot_day.day == 1
    assert period_of_slot(schedule, slot_day) == p
    # The slot's wall time: the schedule's, or (skipped by a clock change) a little later.
    wall = p.slot_at.astimezone(tz).replace(tzinfo=None)
    wanted = datetime.combine(slot_day, at)
    if _exists(slot_day, at, tz):
        assert wall == wanted
        # A repeated time is its first occurrence.
        second = datetime.combine(slot_day, at, tzinfo=tz).replace(fold=1).astimezone(UTC)
        assert p.slot_at <= second
    else:
        assert timedelta(0) < wall - wanted <= timedelta(hours=3)
    # Periods follow each other without gap or overlap, and the slot comes at or after the end.
    assert latest_period(schedule, p.slot_at - timedelta(microseconds=1)).end == p.start
    assert p.start < p.end <= p.slot_at + timedelta(hours=3)
    kind, _, label = p.key.partition(":")
    assert kind == period
    assert label


# --- the message ------------------------------------------------------------------------------

titles = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=300
) | st.sampled_from(["@everyone **x**", "[a](b) `c` " * 40, "x" * 1000])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    template=st.sampled_from(["card", "compact", "link"]),
    clips=st.lists(
        st.tuples(titles, titles, st.integers(0, 2**53), st.integers(10, 400)),
        min_size=1,
        max_size=25,
    ),
)
def test_a_digest_is_one_message_within_discords_limits(
    template: str, clips: list[tuple[str, str, int, int]]
) -> None:
    views = [
        replace(
            SAMPLE,
            id=f"clip{i}",
            url=f"https://clips.twitch.tv/{'x' * slug}{i}",
            title=t,
            broadcaster_name=c,
            view_count=v,
        )
        for i, (t, c, v, slug) in enumerate(clips)
    ]
    message = digest_message(template, "the week of 23 Nov to 29 Nov 2026", views)
    assert message is not None
    assert message_problems(message) == []
    assert payload_errors(message) == {}
    if "embeds" not in message:  # the link template's bare links, when they all fit
        assert template == "link"
        assert message["content"].startswith(f"**Top {len(clips)} clip")
        assert message["content"].count("https://") == len(clips)
    else:  # one embed a clip, or the list when they do not fit one message
        if template == "link":  # the links did not fit the content
            assert sum(len(v.url) + 5 for v in views) > 1900
        first = message["embeds"][0]
        assert len(message["embeds"]) == len(clips) or first["title"].startswith("Top ")
    if len(clips) > 10 and "embeds" in message:  # the list form: every clip numbered, in order
        text = "\n".join(e["description"] for e in message["embeds"])
        assert [line.split(".**")[0] for line in text.split("\n")] == [
            f"**{i}" for i in range(1, len(clips) + 1)
        ]


@pytest.mark.parametrize(("slug", "linked"), [(55, True), (170, False)])
def test_25_long_clips_still_fit_one_message(slug: int, linked: bool) -> None:
    views = [
        replace(
            SAMPLE,
            id=f"clip{i}",
            url=f"https://clips.twitch.tv/{'x' * slug}{i:02d}",
            title="[long] " * 40,
            broadcaster_name="c" * 40,
            view_count=2**53,
        )
        for i in range(25)
    ]
    message = digest_message("card", "the week of 23 Nov to 29 Nov 2026", views)
    assert message is not None
    assert message_problems(message) == []
    text = "\n".join(e["description"] for e in message["embeds"])
    assert len(text.split("\n")) == 25
    # Titles are cut shorter before links are dropped (Twitch's links are ~80 characters).
    assert ("](https://clips.twitch.tv/" in text) is linked


def test_no_clips_no_message() -> None:
    assert digest_message("card", "November 2026", []) is None


# --- queued once, sent with the period's top clips --------------------------------------------

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime.now(UTC)
YESTERDAY = (NOW - timedelta(days=1)).date()
# Weekly, in UTC, on yesterday's weekday at 00:00: its latest slot was yesterday 00:00, the
# one before 8 days ago (a "downtime" spanning both: only the latest is posted).
SCHEDULE = {"period": "week", "weekday": YESTERDAY.weekday(), "time": "00:00", "top": 3}
PERIOD_END = datetime.combine(YESTERDAY, time(0, 0), tzinfo=UTC)


def clip(n: int, at: datetime, views: int, **more: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": f"DigestClip{n:03d}",
        "title": f"digest clip {n}",
        "view_count": views,
        "created_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return helix_clip(**(fields | more))


async def digest_route(
    sessionmaker: Sessions, sim: DiscordSim, *, created: datetime | None = None, **values: Any
) -> int:
    route_id = await make_route(sessionmaker, sim, filters=values.pop("filters", {}))
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(NotificationRoute)
            .where(NotificationRoute.id == route_id)
            .values(
                kind="digest",
                digest=values.pop("digest", SCHEDULE),
                created_at=created or NOW - timedelta(days=30),
                **values,
            )
        )
    return route_id


async def digest_rows(sessionmaker: Sessions) -> list[Delivery]:
    async with session_scope(sessionmaker) as session:
        stmt = select(Delivery).where(Delivery.kind == "digest").order_by(Delivery.id)
        return list((await session.scalars(stmt)).all())


async def send(sessionmaker: Sessions, sim: DiscordSim) -> int:
    sender = WebhookSender(f"{sim.base}/api/v10")
    try:
        return (await deliver_due(sessionmaker, sender, KEY)).messages
    finally:
        await sender.aclose()


async def queue(sessionmaker: Sessions, now: datetime | None = None) -> int:
    async with session_scope(sessionmaker) as session:
        return (await queue_due_digests(session, now or datetime.now(UTC))).queued


async def test_a_digest_over_a_downtime_spanning_its_slot_posts_once(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    route = await digest_route(sessionmaker, discord_sim)
    inside = PERIOD_END - timedelta(days=2)
    await store(
        sessionmaker,
        [
            clip(1, inside, 500),
            clip(2, inside, 900),
            clip(3, inside - timedelta(days=3), 700),
            clip(4, inside, 100),
            clip(5, PERIOD_END - timedelta(days=9), 10_000),  # the week before: missed too
            clip(6, PERIOD_END + timedelta(hours=1), 20_000),  # this week: not over yet
        ],
    )
    assert await send(sessionmaker, discord_sim) == 0  # a digest route posts no new clips
    # The task runs "after" the slot, twice, then from two tasks at once (lease or not).
    assert await queue(sessionmaker) == 1
    assert await queue(sessionmaker) == 0
    together = await asyncio.gather(queue(sessionmaker), queue(sessionmaker))
    assert sum(together) == 0
    once = await asyncio.gather(
        queue_digests_once(sessionmaker, "worker-a"), queue_digests_once(sessionmaker, "worker-b")
    )
    assert sum(r.queued for r in once if r is not None) == 0
    assert [r is None for r in once].count(True) == 1  # one of them held the lease
    [row] = await digest_rows(sessionmaker)
    week = PERIOD_END.date() - timedelta(days=1)
    year, number, _ = week.isocalendar()
    assert (row.route_id, row.clip_id) == (route, f"digest:week:{year}-W{number:02d}")

    assert await send(sessionmaker, discord_sim) == 1
    assert await send(sessionmaker, discord_sim) == 0
    assert await queue(sessionmaker) == 0
    [message] = discord_sim.discord.received
    assert payload_errors(message.payload) == {}
    assert message.payload["allowed_mentions"] == {"parse": []}
    assert message.payload["content"].startswith("**Top 3 clips of the week of")
    urls = [e["url"] for e in message.payload["embeds"]]
    assert urls == [f"https://clips.twitch.tv/DigestClip00{n}" for n in (2, 3, 1)]
    [row] = await digest_rows(sessionmaker)
    assert row.status == "sent"
    assert row.message_id == message.message_id


async def test_the_top_clips_pass_the_routes_filters_at_send_time(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    inside = PERIOD_END - timedelta(days=1)
    await store(
        sessionmaker,
        [
            clip(10, inside, 5000, broadcaster_id="2002", broadcaster_name="Other"),
            clip(11, inside, 4000, title="a boring one"),
            clip(12, inside, 3000, title="huge play here"),
            clip(13, inside, 20, title="huge play but few views"),
            clip(14, inside, 2000, title="HUGE PLAY again", creator_name="Banned"),
            clip(15, inside, 1000, title="another huge play"),
            clip(16, inside, 900, title="huge play in german", language="de"),
        ],
    )
    await digest_route(
        sessionmaker,
        discord_sim,
        filters={
            "channels": ["alphastreams"],
            "min_views": 50,
            "title_keywords": ["huge play"],
            "excluded_creators": ["banned"],
            "languages": ["en"],
        },
        template={"name": "compact"},
    )
    assert await queue(sessionmaker) == 1
    # Views change before it is sent: the message shows the top clips then.
    await store(sessionmaker, [clip(15, inside, 9000, title="another huge play")])
    assert await send(sessionmaker, discord_sim) == 1
    [message] = discord_sim.discord.received
    urls = [e["url"] for e in message.payload["embeds"]]
    assert urls == [f"https://clips.twitch.tv/DigestClip0{n}" for n in (15, 12)]
    assert "9,000 views" in message.payload["embeds"][0]["description"]


async def test_more_than_ten_clips_are_one_numbered_list(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    inside = PERIOD_END - timedelta(days=1)
    await store(sessionmaker, [clip(n, inside, 100 + n) for n in range(20, 40)])
    await digest_route(sessionmaker, discord_sim, digest={**SCHEDULE, "top": 15})
    assert await queue(sessionmaker) == 1
    assert await send(sessionmaker, discord_sim) == 1
    [message] = discord_sim.discord.received
    text = "\n".join(e["description"] for e in message.payload["embeds"])
    lines = text.split("\n")
    assert len(lines) == 15
    assert lines[0].startswith("**1.** [digest clip 39](https://clips.twitch.tv/DigestClip039)")
    assert message.payload["embeds"][0]["title"] == message.payload["embeds"][0]["title"].strip()
    assert message.payload["embeds"][0]["title"].startswith("Top 15 clips of the week of")


async def test_a_new_route_waits_for_its_first_slot_and_a_quiet_period_posts_nothing(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    await digest_route(sessionmaker, discord_sim, created=datetime.now(UTC))
    assert await queue(sessionmaker) == 0
    async with session_scope(sessionmaker) as session:
        await session.execute(update(NotificationRoute).values(created_at=NOW - timedelta(days=30)))
    assert await queue(sessionmaker) == 1
    assert await send(sessionmaker, discord_sim) == 0  # no clips in the period
    assert discord_sim.discord.received == []
    [row] = await digest_rows(sessionmaker)
    assert (row.status, row.message_id) == ("sent", None)
    assert row.last_error == "no clips in this period: nothing posted"


async def test_an_unreadable_schedule_shows_on_the_route(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    broken = await digest_route(sessionmaker, discord_sim, digest={"time_zone": "Mars/Base"})
    fine = await digest_route(sessionmaker, discord_sim)
    assert await queue(sessionmaker) == 1
    assert await queue(sessionmaker) == 0
    async with session_scope(sessionmaker) as session:
        route = await session.get(NotificationRoute, broken)
        assert route is not None
        assert route.last_error == "digest schedule: unknown time zone 'Mars/Base'"
        assert route.error_count == 1  # recorded once, not every pass
    assert [r.route_id for r in await digest_rows(sessionmaker)] == [fine]


async def test_the_worker_task_queues_and_two_tasks_queue_once(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    await store(sessionmaker, [clip(50, PERIOD_END - timedelta(days=1), 10)])
    await digest_route(sessionmaker, discord_sim)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(
            digests_forever(sessionmaker, stop, TaskState(f"digests{n}"), owner=f"w{n}")
        )
        for n in range(2)
    ]
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while not await digest_rows(sessionmaker):
            assert asyncio.get_running_loop().time() < deadline, "no digest queued"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert len(await digest_rows(sessionmaker)) == 1
    assert await send(sessionmaker, discord_sim) == 1
    assert len(discord_sim.discord.received) == 1


def test_period_keys_name_the_period() -> None:
    schedule = replace(weekly(zone="UTC", weekday=3), zone=UTC_ZONE)
    period = period_of_slot(schedule, date(2026, 12, 3))  # a Thursday
    assert period.key == "week:2026-W49"  # Thu 26 Nov to Wed 2 Dec: its last day's week
    assert period.clip_id == "digest:week:2026-W49"
    assert digests.PERIODS == ("day", "week", "month")


async def test_digests_ping_the_routes_roles_and_post_into_its_thread_or_forum(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    sim = discord_sim.discord
    await store(sessionmaker, [clip(60, PERIOD_END - timedelta(days=1), 10)])
    pinging = await digest_route(sessionmaker, discord_sim, role_ids=["123456789012345678"])
    threaded = await digest_route(sessionmaker, discord_sim)
    forum_route = await digest_route(sessionmaker, discord_sim, forum_mode="post")
    hooks = {}
    async with session_scope(sessionmaker) as session:
        for route_id in (pinging, threaded, forum_route):
            route = await session.get(NotificationRoute, route_id)
            assert route is not None
            hooks[route_id] = route.webhook_id
        thread = sim.add_thread(sim.webhooks[hooks[threaded]].channel_id)
        threaded_route = await session.get(NotificationRoute, threaded)
        assert threaded_route is not None
        threaded_route.thread_id = thread
        forum_channel = sim.webhooks[hooks[forum_route]].channel_id = "forum-1"
        sim.forum_channel(forum_channel)
        forum_route_row = await session.get(NotificationRoute, forum_route)
        assert forum_route_row is not None
        forum_route_row.thread_name = "{{ title }}"
    assert await queue(sessionmaker) == 3
    assert await send(sessionmaker, discord_sim) == 3
    by_hook = {m.webhook_id: m for m in sim.received}
    pinged = by_hook[hooks[pinging]].payload
    assert pinged["allowed_mentions"] == {"parse": [], "roles": ["123456789012345678"]}
    assert pinged["content"].startswith("<@&123456789012345678>\n**Top 1 clip of")
    assert by_hook[hooks[threaded]].thread_id == thread
    assert by_hook[hooks[threaded]].payload["allowed_mentions"] == {"parse": []}
    posted = by_hook[hooks[forum_route]]
    assert posted.thread_name is not None
    assert posted.thread_name.startswith("Top clips of the week of")


async def test_digest_and_trending_routes_through_the_api(
    settings: Settings, sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook()
    _, alice = await make_user(sessionmaker, "alice")
    config = settings.model_copy(update={"discord_api_url": f"{discord_sim.base}/api/v10"})
    schedule = {"period": "week", "weekday": 0, "time": "18:00", "time_zone": "Europe/Berlin"}
    async with app_client(config) as client:
        for bad in [{"time": "25:00"}, {"time_zone": "Mars/Base"}, {"top": 26}, {"weekday": 7}]:
            answer = await client.post(
                "/api/v1/routes",
                json={
                    "name": "weekly",
                    "webhook_url": hook.pasted_url,
                    "kind": "digest",
                    "digest": schedule | bad,
                },
                headers=bearer(alice),
            )
            assert answer.status_code == 422, bad
        created = await client.post(
            "/api/v1/routes",
            json={
                "name": "weekly",
                "webhook_url": hook.pasted_url,
                "kind": "digest",
                "digest": schedule,
                "trending_views_per_hour": 500,
            },
            headers=bearer(alice),
        )
        assert created.status_code == 201, created.text
        route = created.json()
        assert route["kind"] == "digest"
        assert route["digest"] == schedule | {"top": 10}
        assert route["trending_views_per_hour"] == 500
        path = f"/api/v1/routes/{route['id']}"
        changed = await client.patch(
            path, json={"digest": schedule | {"period": "month", "top": 20}}, headers=bearer(alice)
        )
        assert changed.status_code == 200, changed.text
        shown = (await client.get(path, headers=bearer(alice))).json()
        assert (shown["digest"]["period"], shown["digest"]["top"]) == ("month", 20)


async def test_digest_and_trending_set_through_the_cli(
    settings: Settings, sessionmaker: Sessions, discord_sim: DiscordSim, tmp_path: Path
) -> None:
    route_id = await make_route(sessionmaker, discord_sim)
    env = {"CLIPWATCH_DATABASE_URL": settings.database_url}
    args = ["routes", "edit", str(route_id), "--digest", "week", "--weekday", "0"]
    args += ["--at", "18:00", "--time-zone", "Europe/Berlin", "--top", "5", "--trending", "800"]
    edited = await asyncio.to_thread(run, tmp_path, *args, **env)
    assert edited.returncode == 0, edited.stderr
    async with session_scope(sessionmaker) as session:
        route = await session.get(NotificationRoute, route_id)
        assert route is not None
        assert (route.kind, route.trending_views_per_hour) == ("digest", 800)
        assert route.digest == {
            "period": "week",
            "weekday": 0,
            "time": "18:00",
            "time_zone": "Europe/Berlin",
            "top": 5,
        }
    bad = await asyncio.to_thread(
        run,
        tmp_path,
        "routes",
        "edit",
        str(route_id),
        "--digest",
        "day",
        "--time-zone",
        "Nowhere/X",
        **env,
    )
    assert bad.returncode == 1
    assert "unknown time zone 'Nowhere/X'" in bad.stderr


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@settings(max_examples=300, deadline=None)
@given(
    stored=st.dictionaries(
        st.sampled_from(["period", "weekday", "time", "time_zone", "top", "other"]),
        json_values
        | st.sampled_from(["day", "week", "month", "18:00", "Europe/Berlin", "", "..", "Europe"]),
    )
    | json_values
)
def test_whatever_a_stored_schedule_holds_it_reads_or_says_why(stored: Any) -> None:
    try:
        schedule = schedule_of(stored)
    except ValueError as exc:
        why = str(exc)
    else:
        why = latest_period(schedule, datetime(2026, 11, 27, tzinfo=UTC)).key
    assert why


async def test_a_refused_digest_shows_on_the_route(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    sim = discord_sim.discord
    await store(sessionmaker, [clip(70, PERIOD_END - timedelta(days=1), 10)])
    route_id = await digest_route(sessionmaker, discord_sim)
    async with session_scope(sessionmaker) as session:
        route = await session.get(NotificationRoute, route_id)
        assert route is not None
        # The webhook's channel became a forum, the route was not told: Discord says 220001.
        sim.webhooks[route.webhook_id].channel_id = "forum-2"
        sim.forum_channel("forum-2")
    assert await queue(sessionmaker) == 1
    assert await send(sessionmaker, discord_sim) == 1
    assert sim.received == []
    [row] = await digest_rows(sessionmaker)
    assert row.status == "dead"
    async with session_scope(sessionmaker) as session:
        route = await session.get(NotificationRoute, route_id)
        assert route is not None
        assert route.enabled
        assert (route.last_error or "").startswith("digest not posted: ")
