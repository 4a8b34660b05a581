"""Hostile input from Twitch costs only itself, on both databases: a bad clip is cleaned or
quarantined, a failing channel is recorded and waits out its backoff, and the others go on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import ChannelSync, Clip, ClipQuarantine
from clipwatch.runtime.worker import run_worker
from clipwatch.twitch import helix, sync
from clipwatch.twitch.intake import ClipsRead, store_clips
from clipwatch.twitch.simulator import SimChannel, SimClip
from tests.factories import helix_clip
from tests.twitch.conftest import Sim

Sessions = async_sessionmaker[AsyncSession]


async def track(sim: Sim, sessionmaker: Sessions, *logins: str) -> None:
    async with sim.client() as client:
        added, _ = await sync.add_channels(client, sessionmaker, list(logins))
    assert sorted(added) == sorted(logins)


async def stored(sessionmaker: Sessions) -> dict[str, Clip]:
    async with session_scope(sessionmaker) as session:
        return {c.id: c for c in (await session.scalars(select(Clip))).all()}


async def quarantined(sessionmaker: Sessions) -> dict[str, ClipQuarantine]:
    async with session_scope(sessionmaker) as session:
        rows = (await session.scalars(select(ClipQuarantine))).all()
    return {r.clip_id or r.key: r for r in rows}


async def state_of(sessionmaker: Sessions, channel_id: str) -> ChannelSync:
    async with session_scope(sessionmaker) as session:
        state = await session.get(ChannelSync, channel_id)
    assert state is not None
    return state


async def status(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/api/v1/status")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()["sync"]
    return body


def truth(sim: Sim, *channels: SimChannel) -> set[str]:
    return {c.id for channel in channels for c in sim.twitch.visible_clips(channel.id)}


def recent(sim: Sim, channel: SimChannel, **raw: Any) -> SimClip:
    """A clip half an hour old (every incremental pass reads it again), sent with `raw`."""
    now = datetime.now(UTC)
    clip = sim.twitch.add_clip(
        channel.id, created_at=now - timedelta(minutes=30), visible_at=now - timedelta(minutes=29)
    )
    clip.raw.update(raw)
    return clip


def close_to(moment: datetime | None, expected: datetime, slack: float = 10.0) -> bool:
    return moment is not None and abs((moment - expected).total_seconds()) <= slack


async def test_bad_clips_among_good_ones_on_two_channels(
    sim: Sim,
    sessionmaker: Sessions,
    client: httpx.AsyncClient,
    twitch_settings: Settings,
) -> None:
    alpha = sim.twitch.add_channel("alpha", clips=60, years=0.05)
    beta = sim.twitch.add_channel("beta", clips=60, years=0.05)
    gamma = sim.twitch.add_channel("gamma", clips=30, years=0.05)
    nul = recent(
        sim, alpha, title="nul\x00 in\x01 the\x7f title\x9b", creator_name="cre\x00at\x07or"
    )
    huge = recent(sim, alpha, title="T" * 100_000)
    no_time = recent(sim, alpha, created_at="sometime last week")
    spaced = recent(sim, alpha)
    spaced.raw["created_at"] = f"{spaced.created_at:%Y-%m-%d %H:%M:%S}"
    zoneless = recent(sim, beta)
    zoneless.raw["created_at"] = f"{zoneless.created_at:%Y-%m-%dT%H:%M:%S}.000000000"
    lower = recent(sim, beta)
    lower.raw["created_at"] = f"{lower.created_at:%Y-%m-%dt%H:%M:%S.5z}"
    no_id = recent(sim, beta)
    no_id.drop.add("id")
    no_broadcaster = recent(sim, beta)
    no_broadcaster.drop.add("broadcaster_id")
    unreadable = {no_time.id, no_id.id, no_broadcaster.id}
    await track(sim, sessionmaker, "alpha", "beta", "gamma")

    # Two passes of the worker: it stays alive, and each pass completes.
    async with sim.client() as helix_client:
        stats = await run_worker(
            twitch_settings, helix_client, sessionmaker, interval=0.01, passes=2
        )
    assert (stats.passes, stats.failed_passes, stats.last_error) == (2, 0, None)

    clips = await stored(sessionmaker)
    assert set(clips) == truth(sim, alpha, beta, gamma) - unreadable
    assert clips[nul.id].title == "nul in the title"
    assert clips[nul.id].creator_name == "creator"
    assert clips[huge.id].title == "T" * helix.TITLE_MAX
    for clip in (spaced, zoneless, lower):
        assert clips[clip.id].created_at == clip.created_at.replace(
            microsecond=500_000 if clip is lower else 0
        )

    kept = await quarantined(sessionmaker)
    assert len(kept) == 3  # one row each, however often they came back
    assert kept[no_time.id].reason.startswith("created_at:")
    assert kept[no_time.id].broadcaster_id == alpha.id
    assert "\\u0000" not in kept[no_time.id].payload
    assert "sometime" in kept[no_time.id].payload
    assert kept[no_broadcaster.id].reason.startswith("broadcaster_id:")
    assert kept[no_broadcaster.id].broadcaster_id == beta.id
    idless = next(r for r in kept.values() if r.clip_id is None)
    assert idless.key.startswith("sha256:")
    assert idless.reason.startswith("id:")
    # Read by both passes (and by the first pass's backfill too): counted, one row each.
    assert {r.times_seen for r in kept.values()} == {3}

    summary = await status(client)
    assert summary["quarantined"] == 3
    assert summary["failing"] == 0
    assert summary["failing_channels"] == []

    # Twitch mends a clip: the next pass stores it, and it leaves quarantine.
    no_time.raw.clear()
    async with sim.client() as helix_client:
        report = await sync.sync_all(helix_client, sessionmaker)
    assert report.failed_channels == {}
    assert report.quarantined == 2
    assert no_time.id in await stored(sessionmaker)
    assert set(await quarantined(sessionmaker)) == {no_broadcaster.id, idless.key}
    assert (await status(client))["quarantined"] == 2


async def test_a_channel_whose_every_clip_is_unreadable_fails_alone_and_backs_off(
    sim: Sim, sessionmaker: Sessions, client: httpx.AsyncClient
) -> None:
    alpha = sim.twitch.add_channel("alpha", clips=40, years=0.05)
    broken = sim.twitch.add_channel("broken", clips=0, years=0.05)
    bad = [recent(sim, broken, created_at=f"garbage {i}") for i in range(5)]
    await track(sim, sessionmaker, "alpha", "broken")

    async with sim.client() as helix_client:
        report = await sync.sync_all(helix_client, sessionmaker, backfill=True)
    assert list(report.failed_channels) == [broken.id]
    error = report.failed_channels[broken.id]
    assert error == "UnreadableChannel: every clip Twitch returned was unreadable (5 quarantined)"
    assert set(await stored(sessionmaker)) == truth(sim, alpha)

    state = await state_of(sessionmaker, broken.id)
    assert state.last_error == error
    assert state.consecutive_failures == 1
    assert state.last_error_at is not None
    assert close_to(state.next_try_at, state.last_error_at + timedelta(minutes=1), 1)
    summary = await status(client)
    assert summary["failing"] == 1
    assert summary["quarantined"] == 5
    (failing,) = summary["failing_channels"]
    assert failing["login"] == "broken"
    assert failing["last_error"] == error
    assert failing["next_try_at"] is not None
    assert failing["last_success_at"] is None

    # The next pass leaves it alone until its next try; an operator's pass tries anyway,
    # and a second failure doubles the wait.
    asked = len(sim.twitch.requests)
    async with sim.client() as helix_client:
        again = await sync.sync_all(helix_client, sessionmaker)
    assert again.backing_off == [broken.id]
    assert again.failed_channels == {}
    assert not any(broken.id in query for _, query in sim.twitch.requests[asked:])
    async with sim.client() as helix_client:
        forced = await sync.sync_all(helix_client, sessionmaker, ignore_backoff=True)
    assert list(forced.failed_channels) == [broken.id]
    state = await state_of(sessionmaker, broken.id)
    assert state.consecutive_failures == 2
    assert state.last_error_at is not None
    assert close_to(state.next_try_at, state.last_error_at + timedelta(minutes=2), 1)

    # Mended: the channel's next step succeeds and clears its error.
    for clip in bad:
        clip.raw.clear()
    async with session_scope(sessionmaker) as session:
        await session.execute(update(ChannelSync).values(next_try_at=datetime.now(UTC)))
    async with sim.client() as helix_client:
        mended = await sync.sync_all(helix_client, sessionmaker)
    assert mended.failed_channels == {}
    assert mended.backing_off == []
    state = await state_of(sessionmaker, broken.id)
    assert (state.last_error, state.consecutive_failures, state.next_try_at) == (None, 0, None)
    assert state.last_success_at is not None
    summary = await status(client)
    assert (summary["failing"], summary["quarantined"]) == (0, 0)


async def test_a_channel_whose_twitch_answers_fail_does_not_stop_the_others(
    sim: Sim, sessionmaker: Sessions
) -> None:
    alpha = sim.twitch.add_channel("alpha", clips=30, years=0.05)
    beta = sim.twitch.add_channel("beta", clips=30, years=0.05)
    gamma = sim.twitch.add_channel("gamma", clips=30, years=0.05)
    await track(sim, sessionmaker, "alpha", "beta", "gamma")
    sim.twitch.add_fault("5xx", count=2)  # alpha (the first by login) gets both

    async with sim.client(max_attempts=2) as helix_client:
        report = await sync.sync_all(helix_client, sessionmaker, backfill=True)
    assert list(report.failed_channels) == [alpha.id]
    assert report.failed_channels[alpha.id] == "TwitchError: Twitch kept failing: 503 on /clips"
    assert set(await stored(sessionmaker)) == truth(sim, beta, gamma)
    state = await state_of(sessionmaker, alpha.id)
    assert state.consecutive_failures == 1
    assert state.lease_owner is None
    assert state.last_error_at is not None
    assert close_to(state.next_try_at, state.last_error_at + timedelta(minutes=1), 1)
    for other in (beta, gamma):
        assert (await state_of(sessionmaker, other.id)).last_success_at is not None


async def test_a_batch_the_database_refuses_is_stored_clip_by_clip(
    sessionmaker: Sessions,
) -> None:
    """Rows that slipped past validation (here built by hand): only the refused one is
    quarantined, with the database's reason; the batch's other clips are stored."""
    good = [helix.HelixClip.model_validate(helix_clip()) for _ in range(5)]
    rows = {c.id: dict(vars(c)) for c in good}
    bad = dict(vars(helix.HelixClip.model_validate(helix_clip())))
    bad["view_count"] = 2**70  # no 64-bit column holds it, on either database
    rows[bad["id"]] = bad
    read = ClipsRead(rows=rows, received={i: {"id": i, "sent": "as is"} for i in rows})
    async with session_scope(sessionmaker) as session:
        outcome = await store_clips(session, read, channel_id="1001")
    assert (outcome.inserted, outcome.quarantined) == (5, 1)
    assert set(await stored(sessionmaker)) == {c.id for c in good}
    kept = await quarantined(sessionmaker)
    assert list(kept) == [bad["id"]]
    assert kept[bad["id"]].reason.startswith("database refused the clip:")
    assert kept[bad["id"]].payload == f'{{"id": "{bad["id"]}", "sent": "as is"}}'


async def test_a_lone_surrogate_costs_neither_its_page_nor_its_channel(
    sim: Sim, sessionmaker: Sessions, client: httpx.AsyncClient
) -> None:
    # Valid JSON ("\ud800" escaped) that orjson refuses to parse: the whole page once failed.
    alpha = sim.twitch.add_channel("alpha", clips=20, years=0.05)
    odd = recent(sim, alpha, title="lone \ud800 surrogate", creator_name="\udfffname")
    await track(sim, sessionmaker, "alpha")
    async with sim.client() as helix_client:
        report = await sync.sync_all(helix_client, sessionmaker, backfill=True)
    assert report.failed_channels == {}
    clips = await stored(sessionmaker)
    assert set(clips) == truth(sim, alpha)
    assert (clips[odd.id].title, clips[odd.id].creator_name) == ("lone  surrogate", "name")
    body = (await client.get("/api/v1/status")).json()
    assert body["problems"] == []
