"""The EventSub client against the simulator (which is as strict as reference §5), on both
databases: notifications into the live state, the hard cases of the socket."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import ChannelLive, EventSubSubscription
from clipwatch.monitoring import metrics
from clipwatch.twitch.eventsub_messages import ChannelUpdate, StreamOffline, StreamOnline
from tests.twitch.conftest import Sim
from tests.twitch.eventsub_helpers import Running, Sessions, running_client, wait_for

PAIRS = 3  # online, offline, update per channel


def counter(metric: object, *labels: str) -> float:
    value: float = metric.labels(*labels)._value.get()  # type: ignore[attr-defined]
    return value


async def live_state(sessionmaker: Sessions, channel_id: str) -> ChannelLive | None:
    async with session_scope(sessionmaker) as session:
        return await session.get(ChannelLive, channel_id)


async def subscription_rows(sessionmaker: Sessions) -> list[EventSubSubscription]:
    async with session_scope(sessionmaker) as session:
        return list((await session.scalars(select(EventSubSubscription))).all())


async def goes_live(run: Running, channel_id: str) -> None:
    async def is_live() -> bool:
        row = await live_state(run.sessionmaker, channel_id)
        return row is not None and row.live and row.source == "eventsub"

    await wait_for(is_live, f"channel {channel_id} live by EventSub")


async def test_notifications_drive_the_live_state(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    async with running_client(sim, settings, sessionmaker, ["alpha", "beta"]) as run:
        session_id = await run.subscribed(2 * PAIRS)
        alpha, beta = run.channel_ids
        stream_id = sim.twitch.go_live(alpha, title="first stream")
        await goes_live(run, alpha)
        [online] = await run.events_of(StreamOnline, 1)
        assert online.channel_id == alpha
        assert online.stream_id == stream_id
        sim.twitch.update_channel(alpha, title="new title", game_id="509658")
        [update] = await run.events_of(ChannelUpdate, 1)
        assert update.title == "new title"
        assert update.game_id == "509658"
        row = await wait_for(
            lambda: _title_is(run.sessionmaker, alpha, "new title"), "the new title stored"
        )
        assert row
        sim.twitch.go_offline(alpha)
        await run.events_of(StreamOffline, 1)

        async def offline() -> bool:
            row = await live_state(run.sessionmaker, alpha)
            return row is not None and not row.live

        await wait_for(offline, "channel offline again")
        assert await live_state(run.sessionmaker, beta) is None  # beta never changed
        rows = await subscription_rows(sessionmaker)
        assert len(rows) == 2 * PAIRS
        assert {r.session_id for r in rows} == {session_id}
        assert {r.status for r in rows} == {"enabled"}
        detail = run.client.state.detail()
        assert detail["socket"] == "connected"
        assert detail["subscriptions"] == 6
        assert detail["total_cost"] == 6
        assert detail["max_total_cost"] == 10
        assert detail["covered_channels"] == 2


async def _title_is(sessionmaker: Sessions, channel_id: str, title: str) -> bool:
    row = await live_state(sessionmaker, channel_id)
    return row is not None and row.title == title


async def test_keepalive_lost_reconnects_to_the_base_url_and_resubscribes(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    before = counter(metrics.EVENTSUB_RECONNECTS, "keepalive")
    async with running_client(sim, settings, sessionmaker, ["alpha"]) as run:
        first = await run.subscribed(PAIRS)
        run.es.silence(first)  # a dead link: nothing arrives, the socket stays open
        await wait_for(lambda: run.client.state.session_id not in (None, first), "a new session")
        second = await run.subscribed(PAIRS)
        assert second != first
        assert counter(metrics.EVENTSUB_RECONNECTS, "keepalive") == before + 1
        sim.twitch.go_live(run.channel_ids[0])
        await goes_live(run, run.channel_ids[0])


async def test_reconnect_handover_keeps_every_event_once_and_creates_nothing(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    async with running_client(sim, settings, sessionmaker, ["alpha", "beta", "gamma"]) as run:
        old = await run.subscribed(3 * PAIRS)
        subscriptions_before = set(run.es.subscriptions)
        posts_before = _posts(sim)
        alpha, beta, gamma = run.channel_ids
        # Held back until the hand-over starts: events go out on the old socket and, once
        # the new one is open, on both.
        run.es.reconnect(old)
        sim.twitch.go_live(alpha)
        await wait_for(lambda: run.client.state.session_id not in (None, old), "the new welcome")
        new = run.client.state.session_id
        sim.twitch.go_live(beta)
        sim.twitch.update_channel(gamma, title="after")
        await run.events_of(StreamOnline, 2)
        await run.events_of(ChannelUpdate, 1)
        await goes_live(run, alpha)
        await goes_live(run, beta)
        onlines = [e.channel_id for e in run.events if isinstance(e, StreamOnline)]
        assert sorted(onlines) == sorted([alpha, beta])  # none lost, none twice
        # Events went out on both sockets (alpha's on the old, the later ones on the new).
        sent_on = {
            m.session_id
            for m in run.es.messages
            if isinstance(m.message, dict)
            and m.message["metadata"]["message_type"] == "notification"
        }
        assert {old, new} <= sent_on
        assert _posts(sim) == posts_before  # no subscription created again
        assert set(run.es.subscriptions) == subscriptions_before
        views = {s.id: s for s in run.es.sessions()}
        assert not views[old].open
        assert views[old].close_code != 4004  # we closed it; Twitch's grace did not
        assert views[old].handed_to == new  # the hand-over, not a fresh socket
        assert views[new].open
        assert len(views[new].subscription_ids) == 3 * PAIRS
        rows = await subscription_rows(sessionmaker)
        assert {r.session_id for r in rows} == {new}


def _posts(sim: Sim) -> int:
    return sum(1 for path, _ in sim.twitch.requests if path.endswith("/eventsub/subscriptions"))


@pytest.mark.parametrize("code", [4000, 4001, 4002, 4003, 4004, 4005, 4006, 4007])
async def test_each_close_code_reconnects_and_resubscribes(
    sim: Sim, settings: Settings, sessionmaker: Sessions, code: int
) -> None:
    before = counter(metrics.EVENTSUB_RECONNECTS, f"closed:{code}")
    async with running_client(sim, settings, sessionmaker, ["alpha"]) as run:
        first = await run.subscribed(PAIRS)
        run.es.close(code, first)
        await wait_for(lambda: run.client.state.session_id not in (None, first), "a new session")
        await run.subscribed(PAIRS)
        assert counter(metrics.EVENTSUB_RECONNECTS, f"closed:{code}") == before + 1
        assert run.client.state.last_close == f"closed:{code}"
        assert len(run.open_sessions()) == 1
        sim.twitch.go_live(run.channel_ids[0])
        await goes_live(run, run.channel_ids[0])


async def test_a_bad_reconnect_url_falls_back_to_the_base_url(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    """A session_reconnect whose URL the server refuses (4007 on the new socket): the old
    socket runs until Twitch's grace ends it (4004), then a fresh socket at the base URL."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        async with running_client(sim, settings, sessionmaker, ["alpha"]) as run:
            first = await run.subscribed(PAIRS)
            run.es.grace_s = 1.0
            run.es.reconnect(first)
            # The URL just sent stops being valid before the client can use it.
            run.es._session(first).reconnect_token = "no-longer-this-one"
            await wait_for(
                lambda: run.client.state.session_id not in (None, first), "a new session"
            )
            await run.subscribed(PAIRS)
            # The refused socket was closed 4007 (no session); the old one lived until
            # Twitch's grace ended it (4004); then a fresh socket at the base URL.
            failed = [e["code"] for e in logs if e["event"] == "eventsub_handover_failed"]
            assert failed == [4007]
            assert run.client.state.last_close == "closed:4004"
            assert len(run.es.sessions()) == 2
            sim.twitch.go_live(run.channel_ids[0])
            await goes_live(run, run.channel_ids[0])


async def test_duplicate_message_ids_are_dropped(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    before = counter(metrics.EVENTSUB_MESSAGES, "duplicate")
    async with running_client(sim, settings, sessionmaker, ["alpha", "beta"]) as run:
        await run.subscribed(2 * PAIRS)
        run.es.duplicate_next(2)
        sim.twitch.go_live(run.channel_ids[0])
        sim.twitch.go_live(run.channel_ids[1])
        await run.events_of(StreamOnline, 2)
        await wait_for(lambda: run.client.state.duplicates == 2, "two repeats dropped")
        await asyncio.sleep(0)  # let anything queued be handled
        assert len([e for e in run.events if isinstance(e, StreamOnline)]) == 2
        assert counter(metrics.EVENTSUB_MESSAGES, "duplicate") == before + 2


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        '{"metadata": {"message_type": "session_party", "message_id": "x"}, "payload": {}}',
        '{"metadata": {"message_type": "notification", "message_id": "y", "message_timestamp":'
        ' "yesterday"}, "payload": {"subscription": {"type": "stream.online"}, "event": {}}}',
        '{"metadata": {"message_type": "notification", "message_id": "z\\u0000"}, "payload": '
        '{"subscription": {"type": "channel.update", "version": "2"}, "event": '
        '{"broadcaster_user_id": "1", "title": "' + "x" * 200_000 + '"}}}',
        "[]",
    ],
)
async def test_unreadable_messages_cost_only_themselves(
    sim: Sim, settings: Settings, sessionmaker: Sessions, raw: str
) -> None:
    async with running_client(sim, settings, sessionmaker, ["alpha"]) as run:
        session_id = await run.subscribed(PAIRS)
        counted = counter(metrics.EVENTSUB_MESSAGES, "unknown")
        malformed = run.client.state.malformed
        run.es.inject(raw, session_id)
        await wait_for(
            lambda: (
                counter(metrics.EVENTSUB_MESSAGES, "unknown") > counted
                or run.client.state.malformed > malformed
            ),
            "the message counted",
        )
        sim.twitch.go_live(run.channel_ids[0])
        await goes_live(run, run.channel_ids[0])
        assert run.client.state.session_id == session_id  # the same socket lives on
        assert run.client.state.reconnects == 0


async def test_revocation_is_never_resubscribed(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    async with running_client(sim, settings, sessionmaker, ["alpha", "beta"]) as run:
        first = await run.subscribed(2 * PAIRS)
        alpha, beta = run.channel_ids
        online_alpha = next(
            s.id
            for s in run.es.subscriptions.values()
            if s.type == "stream.online" and s.condition["broadcaster_user_id"] == alpha
        )
        update_beta = next(
            s.id
            for s in run.es.subscriptions.values()
            if s.type == "channel.update" and s.condition["broadcaster_user_id"] == beta
        )
        offline_beta = next(
            s.id
            for s in run.es.subscriptions.values()
            if s.type == "stream.offline" and s.condition["broadcaster_user_id"] == beta
        )
        run.es.revoke(online_alpha, "user_removed")
        run.es.revoke(update_beta, "version_removed")
        run.es.revoke(offline_beta, "authorization_revoked")
        await wait_for(lambda: len(run.client.state.subscriptions) == 2 * PAIRS - 3, "marked")
        assert run.client.state.revoked == {("stream.online", alpha), ("stream.offline", beta)}
        assert run.client.state.removed_types == {("channel.update", "2")}

        async def rows_marked() -> bool:
            rows = {r.id: r.status for r in await subscription_rows(sessionmaker)}
            return (
                rows.get(online_alpha) == "user_removed"
                and rows.get(update_beta) == "version_removed"
                and rows.get(offline_beta) == "authorization_revoked"
            )

        await wait_for(rows_marked, "revocations stored")
        assert alpha not in run.client.state.covered()  # alpha's live state: polling
        # After a drop, the others come back; the revoked ones and the removed type do not.
        run.es.close(4000, first)
        await wait_for(lambda: run.client.state.session_id not in (None, first), "new session")
        await run.subscribed(2)  # alpha offline, beta online
        created = {
            (s.type, s.condition["broadcaster_user_id"])
            for s in run.es.subscriptions.values()
            if s.enabled
        }
        assert created == {("stream.offline", alpha), ("stream.online", beta)}
        assert run.client.state.covered() == set()  # both channels' live state: polling


async def test_cost_budget_exceeded_leaves_the_rest_to_polling(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    sim.twitch.eventsub.max_total_cost = 5
    async with running_client(
        sim, settings, sessionmaker, ["alpha", "beta", "gamma", "delta"]
    ) as run:
        await run.subscribed(5)
        state = run.client.state
        ids = sorted(run.channel_ids)
        # The plan's end (after the last bookkeeping write) says which channels it left.
        await wait_for(lambda: state.over_budget == set(ids[2:]), "the channels left to polling")
        assert state.total_cost == 5
        assert state.max_total_cost == 5
        # online+offline first for as many channels as fit, then channel.update
        assert state.covered() == set(ids[:2])
        assert state.over_budget == set(ids[2:])
        kinds = sorted((c.wanted.type, c.wanted.channel_id) for c in state.subscriptions.values())
        assert ("channel.update", ids[0]) in kinds
        assert metrics.EVENTSUB_COST.labels("total")._value.get() == 5
        assert metrics.EVENTSUB_COST.labels("max")._value.get() == 5
        # An uncovered channel sends nothing on the socket: its live state is polling's.
        sim.twitch.go_live(ids[3])
        sim.twitch.go_live(ids[0])
        await goes_live(run, ids[0])
        assert [e.channel_id for e in run.events if isinstance(e, StreamOnline)] == [ids[0]]


async def test_the_user_token_expiring_mid_session_is_refreshed(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    async with running_client(sim, settings, sessionmaker, ["alpha"]) as run:
        first = await run.subscribed(PAIRS)
        sim.twitch.expire_user_token(run.access_token)
        run.es.close(4005, first)  # the socket drops too: subscriptions must be created again
        await wait_for(lambda: run.client.state.session_id not in (None, first), "new session")
        await run.subscribed(PAIRS)
        assert run.keeper.refreshes == 1
        # The new pair is stored sealed; the old refresh token is spent.
        fresh = await _stored_tokens(run)
        assert fresh[0] != run.access_token
        assert fresh[1] != run.refresh_token
        assert run.refresh_token not in sim.twitch.refresh_tokens
        sim.twitch.go_live(run.channel_ids[0])
        await goes_live(run, run.channel_ids[0])


async def _stored_tokens(run: Running) -> tuple[str, str]:
    from clipwatch.accounts.secrets import unseal
    from clipwatch.db.models import TwitchUserToken

    async with session_scope(run.sessionmaker) as session:
        row = await session.get(TwitchUserToken, "eventsub")
        assert row is not None
        assert row.refresh_token_sealed is not None
        key = run.settings.signing_key
        return unseal(key, row.access_token_sealed), unseal(key, row.refresh_token_sealed)


async def test_a_token_near_expiry_is_refreshed_before_use(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    async with running_client(
        sim, settings, sessionmaker, ["alpha"], token_lifetime_s=120, start=False
    ) as run:
        token = await run.keeper.access_token()
        assert token != run.access_token
        assert run.keeper.refreshes == 1
        assert await run.keeper.access_token() == token  # now valid for hours


async def test_a_refused_refresh_stops_eventsub_and_marks_the_token(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    from clipwatch.db.models import TwitchUserToken
    from clipwatch.twitch.user_tokens import UserTokenFailed

    async with running_client(sim, settings, sessionmaker, ["alpha"]) as run:
        first = await run.subscribed(PAIRS)
        sim.twitch.expire_user_token(run.access_token)
        sim.twitch.refresh_tokens.clear()  # the grant is gone (password changed, app removed)
        run.es.close(4000, first)
        assert run.task is not None
        with pytest.raises(UserTokenFailed):
            await asyncio.wait_for(run.task, 15)
        run.task = None
        async with session_scope(sessionmaker) as session:
            row = await session.get(TwitchUserToken, "eventsub")
            assert row is not None
            assert row.last_error is not None
            assert "refresh" in row.last_error
        assert not [s for s in run.es.sessions() if s.open]


async def test_the_watchdog_reacts_within_keepalive_plus_grace(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    async with running_client(sim, settings, sessionmaker, ["alpha"]) as run:
        first = await run.subscribed(PAIRS)
        started = time.monotonic()
        run.es.silence(first)
        await wait_for(lambda: run.client.state.last_close == "keepalive", "the watchdog")
        # keepalive 1 s + grace 3 s after the last message; generous upper bound for CI
        assert time.monotonic() - started < 12


async def test_the_token_is_validated_hourly_and_refreshed_when_refused(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    from datetime import UTC, datetime, timedelta

    async with running_client(sim, settings, sessionmaker, ["alpha"], start=False) as run:
        assert await run.keeper.access_token() == run.access_token
        sim.twitch.expire_user_token(run.access_token)
        # Validated less than an hour ago: used as it is (Helix's 401 would refresh it).
        assert await run.keeper.access_token() == run.access_token
        run.keeper._validated_at = datetime.now(UTC) - timedelta(hours=1, seconds=1)
        fresh = await run.keeper.access_token()  # /validate answers 401: refreshed
        assert fresh != run.access_token
        assert run.keeper.refreshes == 1
        assert (await _stored_tokens(run))[0] == fresh


async def test_no_socket_without_channels_then_one_when_a_channel_is_tracked(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    from tests.twitch.eventsub_helpers import track

    async with running_client(sim, settings, sessionmaker, []) as run:
        # An empty socket would be closed 4003: the client waits for work instead.
        await wait_for(lambda: run.client.state.socket == "idle", "the client idle")
        assert sim.twitch.eventsub.sessions() == []
        run.channel_ids.extend(await track(sessionmaker, sim, ["alpha"]))
        run.client.channels_changed()  # as the holder's renewal does when channels change
        await run.subscribed(PAIRS)


async def test_a_newly_tracked_channel_is_subscribed_on_the_same_socket(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    from tests.twitch.eventsub_helpers import track

    async with running_client(sim, settings, sessionmaker, ["alpha"]) as run:
        first = await run.subscribed(PAIRS)
        run.channel_ids.extend(await track(sessionmaker, sim, ["beta"]))
        run.client.channels_changed()
        assert await run.subscribed(2 * PAIRS) == first
        sim.twitch.go_live(run.channel_ids[1])
        await goes_live(run, run.channel_ids[1])


async def test_4001_is_logged_as_our_bug_once(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        async with running_client(sim, settings, sessionmaker, ["alpha"]) as run:
            for _ in range(2):
                session_id = await run.subscribed(PAIRS)
                run.es.close(4001, session_id)
                await wait_for(
                    lambda sid=session_id: run.client.state.session_id not in (None, sid),
                    "a new session",
                )
            await run.subscribed(PAIRS)
    errors = [e for e in logs if e["event"] == "eventsub_closed_inbound_traffic"]
    assert len(errors) == 1
    assert errors[0]["log_level"] == "error"
    assert run.client.state.reconnects == 2


async def test_two_callers_refreshing_at_once_spend_the_refresh_token_once(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    async with running_client(sim, settings, sessionmaker, ["alpha"], start=False) as run:
        sim.twitch.expire_user_token(run.access_token)
        # The socket's 401 and the renewal's check refuse the same token at once.
        first, second = await asyncio.gather(
            run.keeper.refresh("401", run.access_token),
            run.keeper.refresh("401", run.access_token),
        )
        assert first == second != run.access_token
        assert run.keeper.refreshes == 1
        assert run.keeper.failed is None
        assert (await _stored_tokens(run))[0] == first


async def test_an_event_the_database_refuses_costs_only_itself(
    sim: Sim, settings: Settings, sessionmaker: Sessions
) -> None:
    from sqlalchemy.exc import OperationalError

    async with running_client(sim, settings, sessionmaker, ["alpha", "beta"]) as run:
        session_id = await run.subscribed(2 * PAIRS)
        store = run.client.handler
        refused: list[object] = []

        async def flaky(event: object) -> None:
            if not refused:
                refused.append(event)
                raise OperationalError("INSERT", {}, Exception("database is locked"))
            await store(event)  # type: ignore[arg-type]

        run.client.handler = flaky
        alpha, beta = run.channel_ids
        sim.twitch.go_live(alpha)
        await wait_for(lambda: refused, "the refused event")
        sim.twitch.go_live(beta)
        await goes_live(run, beta)
        assert run.client.state.session_id == session_id  # the socket lived on
        assert await live_state(sessionmaker, alpha) is None  # polling will see it
