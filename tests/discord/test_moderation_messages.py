"""A hidden clip in Discord (issue 17), against the Discord simulator on both databases: its
pending messages are cancelled and never sent (also when it is hidden after the delivery pass
claimed them), and each route that posted it changes its message by its policy, once, with
no word of the clip left in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts.service import operator
from clipwatch.clips import moderation
from clipwatch.db.engine import session_scope
from clipwatch.db.models import HiddenClip
from clipwatch.db.repositories import clip_search, notifications
from clipwatch.db.repositories.moderation import HIDDEN_ERROR
from tests.discord.conftest import DiscordSim
from tests.discord.test_delivery import deliveries, drain, store
from tests.discord.test_lifecycle import change_requests, clip, hook_of, route_with, sim_message

Sessions = async_sessionmaker[AsyncSession]


async def hide(sessionmaker: Sessions, clip_id: str) -> moderation.Hidden:
    async with session_scope(sessionmaker) as session:
        return await moderation.hide(session, operator("test"), clip_id, "a leaked address")


async def unhide(sessionmaker: Sessions, clip_id: str) -> bool:
    async with session_scope(sessionmaker) as session:
        return await moderation.unhide(session, operator("test"), clip_id)


async def test_pending_messages_of_a_hidden_clip_are_cancelled_and_never_sent(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    first = await route_with(sessionmaker, discord_sim)
    second = await route_with(sessionmaker, discord_sim, batching=False)
    await store(sessionmaker, [clip("Hid1", title="secret one"), clip("Hid2", title="fine")])
    assert {d.clip_id for d in await deliveries(sessionmaker)} == {"LifeHid1", "LifeHid2"}

    done = await hide(sessionmaker, "LifeHid1")
    assert (done.changed, done.cancelled, done.changes) == (True, 2, 0)
    await drain(sessionmaker, discord_sim)
    sent = orjson.dumps([m.payload for m in discord_sim.discord.received]).decode()
    assert "LifeHid2" in sent
    assert "LifeHid1" not in sent
    assert "secret one" not in sent
    rows = {(d.route_id, d.clip_id): d for d in await deliveries(sessionmaker)}
    for route_id in (first, second):
        assert rows[(route_id, "LifeHid1")].status == "cancelled"
        assert rows[(route_id, "LifeHid1")].last_error == HIDDEN_ERROR
        assert rows[(route_id, "LifeHid2")].status == "sent"
    # Unhidden: the clip is back in the archive's answers, its cancelled messages stay so.
    assert await unhide(sessionmaker, "LifeHid1")
    await drain(sessionmaker, discord_sim)
    assert (
        "LifeHid1" not in orjson.dumps([m.payload for m in discord_sim.discord.received]).decode()
    )


async def test_a_clip_hidden_after_its_delivery_was_queued_is_not_sent(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    """The hiding's cancel missed the row (claimed by a pass in flight): the pass itself
    still sees the clip hidden and cancels it."""
    await route_with(sessionmaker, discord_sim)
    await store(sessionmaker, [clip("Late1", title="secret late")])
    async with session_scope(sessionmaker) as session:
        found = await clip_search.get_clip(session, "LifeLate1")
        assert found is not None
        session.add(
            HiddenClip(
                clip_seq=found.seq,
                clip_id=found.id,
                hidden_at=datetime.now(UTC),
                hidden_by="test",
                reason="raced",
            )
        )
    await drain(sessionmaker, discord_sim)
    assert discord_sim.discord.received == []
    [row] = await deliveries(sessionmaker)
    assert (row.status, row.last_error) == ("cancelled", HIDDEN_ERROR)


async def test_posted_messages_change_by_each_routes_policy_once_without_the_clip(
    sessionmaker: Sessions, discord_sim: DiscordSim
) -> None:
    edit = await route_with(sessionmaker, discord_sim, on_deleted="edit", batching=False)
    delete = await route_with(sessionmaker, discord_sim, on_deleted="delete", batching=False)
    keep = await route_with(sessionmaker, discord_sim, batching=False)
    await store(sessionmaker, [clip("Post1", title="secret posted")])
    await drain(sessionmaker, discord_sim)
    hooks = {r: await hook_of(sessionmaker, r) for r in (edit, delete, keep)}
    posted = {r: sim_message(discord_sim, h) for r, h in hooks.items()}

    done = await hide(sessionmaker, "LifePost1")
    assert done.changes == 2
    await drain(sessionmaker, discord_sim)
    edited = posted[edit]
    assert change_requests(discord_sim, hooks[edit]) == ["edit_message"]
    assert len(edited.edits) == 1
    text = orjson.dumps(edited.payload).decode()
    assert "secret posted" not in text
    assert "LifePost1" not in text
    [embed] = edited.payload["embeds"]
    assert embed["title"] == "Removed by the moderators"
    assert change_requests(discord_sim, hooks[delete]) == ["delete_message"]
    assert posted[delete].deleted
    assert change_requests(discord_sim, hooks[keep]) == []

    # Unhidden and hidden again: no second change of any message.
    assert await unhide(sessionmaker, "LifePost1")
    again = await hide(sessionmaker, "LifePost1")
    assert again.changed
    await drain(sessionmaker, discord_sim)
    assert change_requests(discord_sim, hooks[edit]) == ["edit_message"]
    assert change_requests(discord_sim, hooks[delete]) == ["delete_message"]


async def test_digests_leave_a_hidden_clip_out(sessionmaker: Sessions) -> None:
    await store(sessionmaker, [clip("Top1", view_count=900), clip("Top2", view_count=100)])
    await hide(sessionmaker, "LifeTop1")
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        top = await notifications.top_clips_between(session, now - timedelta(days=1), now)
    assert [c.id for c in top] == ["LifeTop2"]
