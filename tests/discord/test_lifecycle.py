"""Messages that stay true (issue 15): a posted clip deleted on Twitch edits (or deletes) its
message once per route, a view milestone edits it once, against the Discord simulator on both
databases. Deletions go through twitch/deletions.py's confirmation (a stub Twitch that
answers every lookup empty), views through the clips' store, as the sync does."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.accounts.secrets import seal
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Delivery, NotificationRoute
from clipwatch.db.repositories import absence
from clipwatch.discord.lifecycle import (
    REMOVED_COLOR,
    Member,
    change_key,
    crossed,
    fit_embeds,
    rebuild_message,
    removed_embed,
)
from clipwatch.discord.messages import QUIET, SAMPLE, Voice, allowed_mentions_for, embed_chars
from clipwatch.discord.simulator import Received, payload_errors
from clipwatch.twitch.deletions import confirm_deletions
from clipwatch.twitch.sync import SyncReport
from tests.api.test_accounts import bearer, make_user
from tests.cli.test_commands import run
from tests.conftest import app_client
from tests.discord.conftest import DiscordSim
from tests.discord.test_delivery import KEY, deliveries, drain, store
from tests.factories import helix_clip

Sessions = async_sessionmaker[AsyncSession]
_ids = itertools.count(1)


class EmptyTwitch:
    """Twitch answering every lookup of a clip alone with `200 {"data": []}`: deleted."""

    async def get(self, path: str, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
        return {"data": [], "pagination": {}}


def clip(n: int | str, **changes: Any) -> dict[str, Any]:
    recent = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return helix_clip(id=f"Life{n}", created_at=recent, broadcaster_id="1001", **changes)


async def route_with(sessionmaker: Sessions, sim: DiscordSim, **values: Any) -> int:
    """A route posting into its own channel (Discord's hidden per-channel limit is per
    channel), its webhook's facts stored as the check at saving stores them."""
    channel = str(900_000_000_000_100_000 + next(_ids))
    hook = sim.discord.add_webhook(channel)
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, f"owner{hook.id[-6:]}")
        route = NotificationRoute(
            user_id=user.id,
            name="clips",
            webhook_id=hook.id,
            webhook_token_sealed=seal(KEY, hook.token),
            webhook_channel_id=channel,
            filters={},
            template=values.pop("template", {"name": "card"}),
            delay_seconds=0,
            batching=values.pop("batching", True),
            enabled=True,
            **values,
        )
        session.add(route)
        await session.flush()
        return route.id


async def delete_on_twitch(sessionmaker: Sessions, clip_ids: list[str]) -> int:
    """The deletion proof run to its end: suspected, then two empty lookups."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    async with session_scope(sessionmaker) as session:
        await absence.add_suspects(session, "1001", clip_ids, start)
    report = SyncReport()
    for step in (1, 2):
        await confirm_deletions(
            EmptyTwitch(),  # type: ignore[arg-type]
            sessionmaker,
            "1001",
            report,
            wait=timedelta(minutes=1),
            now=start + timedelta(minutes=5 * step),
        )
    return report.deleted


async def restore_on_twitch(sessionmaker: Sessions, clip_ids: list[str]) -> None:
    async with session_scope(sessionmaker) as session:
        await absence.restore_clips(session, clip_ids, datetime.now(UTC))


async def changes(sessionmaker: Sessions) -> list[Delivery]:
    return [d for d in await deliveries(sessionmaker) if d.kind in ("edit", "delete")]


async def hook_of(sessionmaker: Sessions, route_id: int) -> str:
    async with session_scope(sessionmaker) as session:
        route = await session.get(NotificationRoute, route_id)
        assert route is not None
        return route.webhook_id


def sim_message(sim: DiscordSim, hook: str, n: int = 0) -> Received:
    return [m for m in sim.discord.received if m.webhook_id == hook][n]


def change_requests(sim: DiscordSim, hook: str) -> list[str]:
    return [
        r.kind
        for r in sim.discord.requests
        if r.webhook_id == hook and r.kind in ("edit_message", "delete_message")
    ]


def edits_counted(kind: str, outcome: str) -> float:
    labels = {"kind": kind, "outcome": outcome}
    return REGISTRY.get_sample_value("clipwatch_message_edits_total", labels) or 0.0


# --- pure parts -------------------------------------------------------------------------------


def test_a_removed_clip_keeps_its_embed_greyed_out_without_link_or_picture() -> None:
    [message] = [rebuild_message("card", [Member(SAMPLE, True)], QUIET)["embeds"]]
    [embed] = message
    assert embed["title"].startswith("Removed on Twitch: @\u200beveryone")
    assert len(embed["title"]) <= 256
    assert not {"url", "image", "thumbnail"} & set(embed)
    assert embed["color"] == REMOVED_COLOR
    assert {"name": "Views", "value": "123,456", "inline": True} in embed["fields"]
    assert removed_embed({})["title"] == "Removed on Twitch"


def test_a_rebuilt_message_stays_within_discords_limits() -> None:
    long = SAMPLE.__class__(**{**SAMPLE.__dict__, "game_name": "g" * 5000, "title": "t " * 900})
    members = [Member(long, i % 2 == 0) for i in range(10)]
    payload = rebuild_message("card", members, QUIET)
    assert len(payload["embeds"]) == 10
    assert sum(embed_chars(e) for e in payload["embeds"]) <= 6000
    assert payload_errors(payload) == {}
    assert fit_embeds([{"title": "x"}]) == [{"title": "x"}]


def test_a_link_message_keeps_its_pings_and_loses_its_link_when_removed() -> None:
    voice = Voice(role_ids=("123456789012345678",), username="Clips")
    removed = rebuild_message("link", [Member(SAMPLE, True)], voice)
    assert SAMPLE.url not in removed["content"]
    assert removed["content"].startswith("<@&123456789012345678>\nRemoved on Twitch")
    assert removed["allowed_mentions"] == allowed_mentions_for(voice)  # the route's own
    assert "username" not in removed  # an edit cannot rename the message's author
    alive = rebuild_message("link", [Member(SAMPLE, False)], QUIET)
    assert alive["content"] == f"{SAMPLE.url} · 123,456 views"
    assert alive["allowed_mentions"] == {"parse": []}


def test_a_batch_rebuilt_under_a_link_template_keeps_every_clip() -> None:
    payload = rebuild_message("link", [Member(SAMPLE, True), Member(SAMPLE, False)], QUIET)
    assert len(payload["embeds"]) == 2
    assert payload["embeds"][1]["url"] == SAMPLE.url


def test_milestones_crossed_and_keys() -> None:
    assert crossed([1000, 10000], 500, 20000) == [1000, 10000]
    assert crossed([1000, 10000], 1000, 9999) == []
    assert crossed([1000], 999, 1000) == [1000]
    assert crossed([1000], 2000, 500) == []
    assert change_key("deleted:", "abc") == "deleted:abc"
    long = change_key("milestone:1000000000:", "x" * 128)
    assert len(long) <= 128
    assert long.startswith("milestone:1000000000:#")


# --- against the simulator --------------------------------------------------------------------


async def test_a_deleted_clip_edits_each_routes_own_message_once(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    first = await route_with(sessionmaker, discord_sim, on_deleted="edit")
    second = await route_with(sessionmaker, discord_sim, on_deleted="edit", batching=False)
    keep = await route_with(sessionmaker, discord_sim)  # on_deleted keep: the default
    await store(sessionmaker, [clip(1, title="gone soon")])
    await drain(sessionmaker, discord_sim)
    hooks = {r: await hook_of(sessionmaker, r) for r in (first, second, keep)}
    posted = {r: sim_message(discord_sim, h) for r, h in hooks.items()}

    assert await delete_on_twitch(sessionmaker, ["Life1"]) == 1
    assert await drain(sessionmaker, discord_sim) == [2]
    for route_id in (first, second):
        message = posted[route_id]
        assert change_requests(discord_sim, hooks[route_id]) == ["edit_message"]
        assert len(message.edits) == 1
        [embed] = message.payload["embeds"]
        assert embed["title"] == "Removed on Twitch: gone soon"
        assert not {"url", "image"} & set(embed)
        assert message.payload["allowed_mentions"] == {"parse": []}
        assert payload_errors(message.payload) == {}
    assert change_requests(discord_sim, hooks[keep]) == []
    assert posted[keep].edits == []
    rows = await changes(sessionmaker)
    assert sorted((d.route_id, d.clip_id, d.status) for d in rows) == [
        (first, "deleted:Life1", "sent"),
        (second, "deleted:Life1", "sent"),
    ]

    # Restored by Twitch, then deleted again: no second edit of any message.
    await restore_on_twitch(sessionmaker, ["Life1"])
    assert await delete_on_twitch(sessionmaker, ["Life1"]) == 1
    assert await delete_on_twitch(sessionmaker, ["Life1"]) == 0  # already marked
    assert await drain(sessionmaker, discord_sim) == []
    assert len(await changes(sessionmaker)) == 2
    for route_id in (first, second):
        assert len(posted[route_id].edits) == 1


async def test_the_delete_policy_deletes_a_message_and_edits_a_shared_one(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    alone = await route_with(sessionmaker, discord_sim, on_deleted="delete", batching=False)
    shared = await route_with(sessionmaker, discord_sim, on_deleted="delete")
    await store(sessionmaker, [clip(f"D{i}", title=f"clip {i}") for i in range(3)])
    await drain(sessionmaker, discord_sim)
    alone_hook, shared_hook = [await hook_of(sessionmaker, r) for r in (alone, shared)]
    batch = sim_message(discord_sim, shared_hook)
    before = [dict(e) for e in batch.payload["embeds"]]
    assert len(before) == 3
    gone = [m for m in discord_sim.discord.received if m.webhook_id == alone_hook][1]

    await delete_on_twitch(sessionmaker, ["LifeD1"])
    await drain(sessionmaker, discord_sim)
    assert gone.deleted
    assert change_requests(discord_sim, alone_hook) == ["delete_message"]
    others = [m for m in discord_sim.discord.received if m.webhook_id == alone_hook and m != gone]
    assert not any(m.deleted or m.edits for m in others)  # never another clip's message
    # The batch still holds two live clips: edited, not deleted; those two unchanged.
    assert not batch.deleted
    assert change_requests(discord_sim, shared_hook) == ["edit_message"]
    after = batch.payload["embeds"]
    assert [after[0], after[2]] == [before[0], before[2]]
    assert after[1]["title"] == "Removed on Twitch: clip 1"
    assert after[1]["color"] == REMOVED_COLOR

    # Its other clips deleted too: now nothing in it is alive, and it goes.
    await delete_on_twitch(sessionmaker, ["LifeD0", "LifeD2"])
    await drain(sessionmaker, discord_sim)
    assert batch.deleted
    assert change_requests(discord_sim, shared_hook) == ["edit_message", "delete_message"]
    assert {d.status for d in await changes(sessionmaker)} == {"sent"}


async def test_a_message_already_gone_in_discord_is_done_without_retries(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    route_id = await route_with(sessionmaker, discord_sim, on_deleted="edit")
    await store(sessionmaker, [clip("M")])
    await drain(sessionmaker, discord_sim)
    hook = await hook_of(sessionmaker, route_id)
    sim_message(discord_sim, hook).deleted = True  # a moderator deleted it in Discord
    await delete_on_twitch(sessionmaker, ["LifeM"])
    missing = edits_counted("edit", "missing")
    assert await drain(sessionmaker, discord_sim) == [1]
    assert edits_counted("edit", "missing") == missing + 1
    assert change_requests(discord_sim, hook) == ["edit_message"]
    [row] = await changes(sessionmaker)
    assert (row.status, row.attempts) == ("sent", 0)
    assert "already gone" in (row.last_error or "")
    async with session_scope(sessionmaker) as session:
        route = await session.get(NotificationRoute, route_id)
        assert route is not None
        assert route.enabled


async def test_server_errors_retry_an_edit_on_the_schedule(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    route_id = await route_with(sessionmaker, discord_sim, on_deleted="edit")
    await store(sessionmaker, [clip("R")])
    await drain(sessionmaker, discord_sim)
    await delete_on_twitch(sessionmaker, ["LifeR"])
    discord_sim.discord.faults.append("5xx")
    before = datetime.now(UTC)
    assert await drain(sessionmaker, discord_sim) == [1]  # tried once; the retry is not due
    [row] = await changes(sessionmaker)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "502" in (row.last_error or "")
    # The second attempt waits SCHEDULE[1] (2 s) plus up to 20%.
    wait = (row.next_attempt_at - before).total_seconds()
    assert 1.9 <= wait <= 2.4 + 1, wait
    async with session_scope(sessionmaker) as session:  # the wait passes
        await session.execute(
            update(Delivery).where(Delivery.id == row.id).values(next_attempt_at=before)
        )
    assert await drain(sessionmaker, discord_sim) == [1]
    [row] = await changes(sessionmaker)
    assert row.status == "sent"
    hook = await hook_of(sessionmaker, route_id)
    assert len(sim_message(discord_sim, hook).edits) == 1


async def test_a_gone_webhook_disables_the_route_on_an_edit(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    route_id = await route_with(sessionmaker, discord_sim, on_deleted="edit")
    await store(sessionmaker, [clip("G")])
    await drain(sessionmaker, discord_sim)
    discord_sim.discord.webhooks[await hook_of(sessionmaker, route_id)].deleted = True
    await delete_on_twitch(sessionmaker, ["LifeG"])
    assert await drain(sessionmaker, discord_sim) == [1]
    [row] = await changes(sessionmaker)
    assert row.status == "dead"
    async with session_scope(sessionmaker) as session:
        route = await session.get(NotificationRoute, route_id)
        assert route is not None
        assert not route.enabled
        assert "10015" in (route.disabled_reason or "")


async def test_milestones_edit_the_view_count_once_each(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    route_id = await route_with(sessionmaker, discord_sim, milestones=[1000, 10000])
    quiet = await route_with(sessionmaker, discord_sim)  # no milestones
    await store(sessionmaker, [clip("V", view_count=500)])
    await drain(sessionmaker, discord_sim)
    hook, quiet_hook = await hook_of(sessionmaker, route_id), await hook_of(sessionmaker, quiet)
    message = sim_message(discord_sim, hook)

    # One refresh crosses both milestones: a row each, the message shows the new count.
    await store(sessionmaker, [clip("V", view_count=20000)])
    rows = await changes(sessionmaker)
    assert sorted(d.clip_id for d in rows) == ["milestone:10000:LifeV", "milestone:1000:LifeV"]
    await drain(sessionmaker, discord_sim)
    assert 1 <= len(message.edits) <= 2
    [embed] = message.payload["embeds"]
    assert {"name": "Views", "value": "20,000", "inline": True} in embed["fields"]
    assert embed["url"] == "https://clips.twitch.tv/LifeV"
    assert change_requests(discord_sim, quiet_hook) == []

    # Views going on (and a count that dips and rises again) cross nothing new.
    edits = len(message.edits)
    for views in (30000, 900, 20000):
        await store(sessionmaker, [clip("V", view_count=views)])
    await drain(sessionmaker, discord_sim)
    assert len(message.edits) == edits
    assert {d.status for d in await changes(sessionmaker)} == {"sent"}
    assert len(await changes(sessionmaker)) == 2


async def test_a_clip_not_yet_posted_gets_no_change(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    await route_with(sessionmaker, discord_sim, on_deleted="edit", milestones=[100])
    await store(sessionmaker, [clip("P", view_count=10)])  # pending, never sent
    await store(sessionmaker, [clip("P", view_count=500)])
    await delete_on_twitch(sessionmaker, ["LifeP"])
    assert await changes(sessionmaker) == []


# --- whatever happens to a clip, one change per route and reason -------------------------------

OPS = st.lists(
    st.one_of(
        st.just(("delete", 0)),
        st.just(("restore", 0)),
        st.tuples(st.just("views"), st.integers(0, 30_000)),
        st.just(("send", 0)),
    ),
    max_size=8,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
async def test_never_more_than_one_change_per_route_and_reason(
    sessionmaker: Sessions, discord_sim: DiscordSim, ops: list[tuple[str, int]]
) -> None:
    async with session_scope(sessionmaker) as session:
        routes = (await session.scalars(select(NotificationRoute.id))).all()
    if not routes:
        routes = [
            await route_with(sessionmaker, discord_sim, on_deleted="edit", milestones=[1000]),
            await route_with(
                sessionmaker, discord_sim, on_deleted="delete", milestones=[100, 5000]
            ),
            await route_with(sessionmaker, discord_sim, milestones=[1000]),  # keep
        ]
    n = f"H{next(_ids)}"
    await store(sessionmaker, [clip(n, view_count=50)])
    await drain(sessionmaker, discord_sim)
    views, deleted = 50, False
    for op, value in ops:
        if op == "delete":
            deleted = deleted or await delete_on_twitch(sessionmaker, [f"Life{n}"]) == 1
        elif op == "restore":
            await restore_on_twitch(sessionmaker, [f"Life{n}"])
        elif op == "views":
            views = value
            await store(sessionmaker, [clip(n, view_count=views)])
        else:
            await drain(sessionmaker, discord_sim)
    await drain(sessionmaker, discord_sim)
    rows = [d for d in await changes(sessionmaker) if d.clip_id.endswith(f":Life{n}")]
    keys = [(d.route_id, d.clip_id) for d in rows]
    assert len(keys) == len(set(keys))
    assert {d.status for d in rows} <= {"sent"}
    posts = {
        d.route_id: d.message_id
        for d in await deliveries(sessionmaker)
        if d.clip_id == f"Life{n}" and d.status == "sent"
    }
    assert set(posts) == set(routes)
    for route_id in routes:
        message = discord_sim.discord.messages[str(posts[route_id])]
        mine = [d for d in rows if d.route_id == route_id]
        assert len(message.edits) + message.deleted <= len(mine)
        if deleted and route_id != routes[2]:
            assert message.deleted or message.payload["embeds"][0]["title"].startswith(
                "Removed on Twitch"
            )


async def test_edits_reach_messages_in_threads_and_forum_posts(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    in_thread = await route_with(sessionmaker, discord_sim, on_deleted="edit")
    hook = discord_sim.discord.webhooks[await hook_of(sessionmaker, in_thread)]
    thread = discord_sim.discord.add_thread(hook.channel_id)
    forum_channel = str(900_000_000_000_200_000 + next(_ids))
    forum_hook = discord_sim.discord.add_webhook(forum_channel, forum=True)
    async with session_scope(sessionmaker) as session:
        await session.execute(
            update(NotificationRoute)
            .where(NotificationRoute.id == in_thread)
            .values(thread_id=thread)
        )
        route = NotificationRoute(
            user_id=(await service.create_user(session, "forum-owner")).id,
            name="forum",
            webhook_id=forum_hook.id,
            webhook_token_sealed=seal(KEY, forum_hook.token),
            webhook_channel_id=forum_channel,
            filters={},
            template={"name": "card"},
            enabled=True,
            forum_mode="post",
            thread_name="{{ title }}",
            on_deleted="edit",
        )
        session.add(route)
    await store(sessionmaker, [clip("T", title="threaded")])
    await drain(sessionmaker, discord_sim)
    posted = {m.webhook_id: m for m in discord_sim.discord.received}
    assert posted[hook.id].thread_id == thread
    assert posted[forum_hook.id].thread_id not in (None, forum_channel)  # its own post

    await delete_on_twitch(sessionmaker, ["LifeT"])
    await drain(sessionmaker, discord_sim)
    for message in posted.values():  # an edit without the thread would miss (10008)
        assert len(message.edits) == 1
        assert message.payload["embeds"][0]["title"] == "Removed on Twitch: threaded"
    assert {d.last_error for d in await changes(sessionmaker)} == {None}


async def test_a_change_that_cannot_be_built_is_shown_on_the_route_and_retried(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    route_id = await route_with(sessionmaker, discord_sim, on_deleted="edit")
    await store(sessionmaker, [clip("B")])
    await drain(sessionmaker, discord_sim)
    async with session_scope(sessionmaker) as session:  # a key rotated without resealing
        await session.execute(
            update(NotificationRoute)
            .where(NotificationRoute.id == route_id)
            .values(webhook_token_sealed="not-sealed-with-this-key")
        )
    await delete_on_twitch(sessionmaker, ["LifeB"])
    failed = edits_counted("edit", "failed")
    await drain(sessionmaker, discord_sim)
    assert edits_counted("edit", "failed") == failed + 1
    [row] = await changes(sessionmaker)
    assert (row.status, row.attempts) == ("pending", 1)
    async with session_scope(sessionmaker) as session:
        route = await session.get(NotificationRoute, route_id)
        assert route is not None
        assert route.last_error
        assert route.enabled
    assert change_requests(discord_sim, await hook_of(sessionmaker, route_id)) == []


# --- set up through the CLI and the API --------------------------------------------------------


async def test_the_policy_and_milestones_through_the_cli_and_the_api(
    settings: Settings, sessionmaker: Sessions, tmp_path: Path
) -> None:
    env = {"CLIPWATCH_DATABASE_URL": settings.database_url, "CLIPWATCH_WEBHOOK_CHECK": "false"}
    url = "https://discord.com/api/webhooks/123456789012345678/" + "t" * 60
    assert run(tmp_path, "users", "create", "owner", **env).returncode == 0
    assert run(tmp_path, "routes", "add", "owner", "clips", url, **env).returncode == 0
    async with session_scope(sessionmaker) as session:
        [route_id] = (await session.scalars(select(NotificationRoute.id))).all()

    async def stored() -> tuple[str, list[int] | None]:
        async with session_scope(sessionmaker) as session:
            route = await session.get(NotificationRoute, route_id)
            assert route is not None
            return route.on_deleted, route.milestones

    assert await stored() == ("keep", None)
    edit = ("routes", "edit", str(route_id))
    changed = run(tmp_path, *edit, "--on-deleted", "edit", "--milestone", "10000",
                  "--milestone", "1000", **env)  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert await stored() == ("edit", [1000, 10000])
    assert run(tmp_path, *edit, "--on-deleted", "sometimes", **env).returncode != 0
    assert run(tmp_path, *edit, "--milestone", "0", **env).returncode != 0
    assert run(tmp_path, *edit, "--no-milestones", **env).returncode == 0
    assert await stored() == ("edit", [])

    _, alice = await make_user(sessionmaker, "alice")
    hook = "https://discord.com/api/webhooks/223456789012345678/" + "u" * 60
    async with app_client(settings) as client:
        created = await client.post(
            "/api/v1/routes",
            json={"name": "c", "webhook_url": hook, "on_deleted": "delete", "milestones": [500]},
            headers=bearer(alice),
        )
        assert created.status_code == 201, created.text
        path = f"/api/v1/routes/{created.json()['id']}"
        assert (created.json()["on_deleted"], created.json()["milestones"]) == ("delete", [500])
        patched = await client.patch(path, json={"on_deleted": "edit"}, headers=bearer(alice))
        assert patched.status_code == 200, patched.text
        assert (patched.json()["on_deleted"], patched.json()["milestones"]) == ("edit", [500])
        for bad in ({"on_deleted": "sometimes"}, {"milestones": [0]}, {"milestones": [1] * 11}):
            refused = await client.patch(path, json=bad, headers=bearer(alice))
            assert refused.status_code == 422, bad
