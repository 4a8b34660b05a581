"""The EventSub simulator is as strict as reference §5: welcome, deadline, keepalives after
silence, receive-only, reconnect handover, close codes, revocation, duplicates, and the
subscriptions endpoint's errors, cost and limits. Driven with a plain `websockets` client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from clipwatch.twitch.eventsub_sim import CLOSE_REASONS, EventSubSim, timestamp
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET, TwitchSimulator
from tests.twitch.conftest import Sim

DEADLINE_S = 10.0  # how long a test waits for something that must happen


def _ws(sim: Sim, query: str = "") -> str:
    return sim.base.replace("http://", "ws://") + "/ws" + query


async def _next(ws: ClientConnection, within: float = DEADLINE_S) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout=within)
    message: dict[str, Any] = json.loads(raw)
    return message


async def _next_of(ws: ClientConnection, message_type: str) -> dict[str, Any]:
    """The next message of this type (keepalives and others in between are skipped)."""
    until = time.monotonic() + DEADLINE_S
    while True:
        message = await _next(ws, within=max(until - time.monotonic(), 0.01))
        if message["metadata"]["message_type"] == message_type:
            return message


async def _closed_with(ws: ClientConnection) -> int:
    """Read until the server closes; the close code it sent."""
    async with asyncio.timeout(DEADLINE_S):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            frame = closed.rcvd
    assert frame is not None, "closed without a close frame"
    return frame.code


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Client-Id": CLIENT_ID}


def _body(session_id: str, broadcaster: str, sub_type: str = "stream.online") -> dict[str, Any]:
    version = "2" if sub_type == "channel.update" else "1"
    return {
        "type": sub_type,
        "version": version,
        "condition": {"broadcaster_user_id": broadcaster},
        "transport": {"method": "websocket", "session_id": session_id},
    }


@asynccontextmanager
async def _session(
    sim: Sim, query: str = "?keepalive_timeout_seconds=600"
) -> AsyncIterator[tuple[ClientConnection, str]]:
    """A socket and the session id of its welcome."""
    async with connect(_ws(sim, query)) as ws:
        welcome = await _next(ws)
        assert welcome["metadata"]["message_type"] == "session_welcome"
        yield ws, welcome["payload"]["session"]["id"]


async def _subscribe(
    http: httpx.AsyncClient, token: str, session_id: str, broadcaster: str, **kw: str
) -> httpx.Response:
    return await http.post(
        "/helix/eventsub/subscriptions",
        json=_body(session_id, broadcaster, **kw),
        headers=_auth(token),
    )


async def _until(check: Any, what: str) -> None:
    until = time.monotonic() + DEADLINE_S
    while not check():
        assert time.monotonic() < until, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)  # polling the simulator's state


# --- the socket ---------------------------------------------------------------------------------


async def test_welcome_clamps_keepalive_and_timestamps_have_nanoseconds(sim: Sim) -> None:
    for asked, got in (("5", 10), ("700", 600), ("42", 42)):
        async with connect(_ws(sim, f"?keepalive_timeout_seconds={asked}")) as ws:
            welcome = await _next(ws)
            session = welcome["payload"]["session"]
            assert session["keepalive_timeout_seconds"] == got
            assert session["status"] == "connected"
            assert session["reconnect_url"] is None
            stamp = welcome["metadata"]["message_timestamp"]
            fraction = stamp.rsplit(".", 1)[1]
            assert len(fraction) == 10
            assert fraction.endswith("Z")
            assert datetime.fromisoformat(stamp).tzinfo is not None
    async with connect(_ws(sim)) as ws:  # no parameter: Twitch's default
        assert (await _next(ws))["payload"]["session"]["keepalive_timeout_seconds"] == 10
    assert len(sim.twitch.eventsub.sessions()) == 4
    await _until(lambda: not any(v.open for v in sim.twitch.eventsub.sessions()), "sessions closed")


async def test_no_subscription_within_keepalive_closes_4003(sim: Sim) -> None:
    sim.twitch.eventsub.min_keepalive_s = 1
    async with connect(_ws(sim, "?keepalive_timeout_seconds=1")) as ws:
        opened = time.monotonic()
        await _next(ws)
        assert await _closed_with(ws) == 4003
        assert time.monotonic() - opened >= 0.9  # not before the window ran out
    await _until(lambda: not sim.twitch.eventsub.sessions()[0].open, "session closed")
    (view,) = sim.twitch.eventsub.sessions()
    assert view.close_code == 4003


async def test_keepalive_only_after_silence(sim: Sim) -> None:
    twitch = sim.twitch
    twitch.eventsub.min_keepalive_s = 1
    channel = twitch.add_channel("streamer")
    token, _ = twitch.issue_user_token("watcher")
    async with (
        connect(_ws(sim, "?keepalive_timeout_seconds=2")) as ws,
        httpx.AsyncClient(base_url=sim.base) as http,
    ):
        welcome = await _next(ws)
        session_id = welcome["payload"]["session"]["id"]
        assert (await _subscribe(http, token, session_id, channel.id)).status_code == 202
        last = time.monotonic()  # the welcome was the last message (lower bound: earlier)
        gaps = []
        for _ in range(2):
            message = await _next(ws)
            assert message["metadata"]["message_type"] == "session_keepalive"
            assert message["payload"] == {}
            gaps.append(time.monotonic() - last)
            last = time.monotonic()
        # A notification restarts the silence: the next keepalive is a full window later.
        twitch.go_live(channel.id, title="hello")
        note = await _next(ws)
        sent_at = time.monotonic()
        assert note["metadata"]["message_type"] == "notification"
        keepalive = await _next(ws)
        assert keepalive["metadata"]["message_type"] == "session_keepalive"
        assert time.monotonic() - sent_at >= 1.9
    # Never before a whole window of silence (the first gap counts from after the welcome).
    assert all(gap >= 1.9 for gap in gaps[1:])
    sent = [m.message for m in twitch.eventsub.messages]
    types = [m["metadata"]["message_type"] for m in sent if isinstance(m, dict)]
    assert types[:4] == [
        "session_welcome",
        "session_keepalive",
        "session_keepalive",
        "notification",
    ]


@pytest.mark.parametrize("frame", ["text", "binary"])
async def test_anything_the_client_sends_closes_4001(sim: Sim, frame: str) -> None:
    channel = sim.twitch.add_channel("streamer")
    token, _ = sim.twitch.issue_user_token("watcher")
    async with _session(sim) as (ws, session_id), httpx.AsyncClient(base_url=sim.base) as http:
        created = await _subscribe(http, token, session_id, channel.id)
        await ws.ping()  # a ping is fine: answered, no close
        await ws.send("hello" if frame == "text" else b"\x00\x01")
        assert await _closed_with(ws) == 4001
    sub_id = created.json()["data"][0]["id"]
    await _until(
        lambda: (
            sim.twitch.eventsub.subscriptions[sub_id].status == "websocket_received_inbound_traffic"
        ),
        "the subscription to be disabled",
    )


async def test_ping_is_answered_and_the_socket_stays(sim: Sim) -> None:
    async with _session(sim) as (ws, _session_id):
        pong = await ws.ping(b"are you there")
        latency = await asyncio.wait_for(pong, timeout=DEADLINE_S)
        assert latency >= 0
        assert sim.twitch.eventsub.sessions()[0].open


@pytest.mark.parametrize("code", sorted(CLOSE_REASONS))
async def test_every_close_code_on_demand(sim: Sim, code: int) -> None:
    channel = sim.twitch.add_channel("streamer")
    token, _ = sim.twitch.issue_user_token("watcher")
    async with _session(sim) as (ws, session_id), httpx.AsyncClient(base_url=sim.base) as http:
        created = await _subscribe(http, token, session_id, channel.id)
        sim.twitch.eventsub.close(code)
        assert await _closed_with(ws) == code
        sub_id = created.json()["data"][0]["id"]
        await _until(lambda: not sim.twitch.eventsub.subscriptions[sub_id].enabled, "sub disabled")
        status = sim.twitch.eventsub.subscriptions[sub_id].status
        assert status.startswith("websocket_")
        listed = await http.get("/helix/eventsub/subscriptions", headers=_auth(token))
        assert listed.json()["data"][0]["status"] == status
        assert listed.json()["total_cost"] == 0  # a disabled subscription costs nothing
    with pytest.raises(ValueError, match="4000-4007"):
        sim.twitch.eventsub.close(1000)


async def test_client_close_disables_subscriptions(sim: Sim) -> None:
    channel = sim.twitch.add_channel("streamer")
    token, _ = sim.twitch.issue_user_token("watcher")
    async with httpx.AsyncClient(base_url=sim.base) as http:
        async with _session(sim) as (_ws, session_id):
            created = await _subscribe(http, token, session_id, channel.id)
        sub_id = created.json()["data"][0]["id"]
        await _until(
            lambda: sim.twitch.eventsub.subscriptions[sub_id].status == "websocket_disconnected",
            "websocket_disconnected",
        )
        # Events from the gap are not replayed anywhere.
        sim.twitch.go_live(channel.id)
        assert sim.twitch.eventsub.notifications_sent == 0


# --- notifications ------------------------------------------------------------------------------


async def test_live_state_drives_notifications_and_get_streams(sim: Sim) -> None:
    twitch = sim.twitch
    channel = twitch.add_channel("streamer")
    game = twitch.world.games[3]
    token, _ = twitch.issue_user_token("watcher")
    async with _session(sim) as (ws, session_id), httpx.AsyncClient(base_url=sim.base) as http:
        for sub_type in ("stream.online", "stream.offline", "channel.update"):
            answer = await _subscribe(http, token, session_id, channel.id, sub_type=sub_type)
            assert answer.status_code == 202
        stream_id = twitch.go_live(
            channel.id, title="Speedrun", game_id=game.id, viewer_count=42, stream_type="rerun"
        )
        online = await _next(ws)
        meta = online["metadata"]
        assert meta["message_type"] == "notification"
        assert (meta["subscription_type"], meta["subscription_version"]) == ("stream.online", "1")
        assert len(meta["message_timestamp"].rsplit(".", 1)[1]) == 10
        event = online["payload"]["event"]
        assert event["id"] == stream_id
        assert event["type"] == "rerun"
        assert event["broadcaster_user_login"] == "streamer"
        assert online["payload"]["subscription"]["transport"]["session_id"] == session_id
        streams = await http.get(
            "/helix/streams", params={"user_id": channel.id}, headers=_auth(token)
        )
        (row,) = streams.json()["data"]
        assert row["id"] == stream_id
        assert row["title"] == "Speedrun"
        assert (row["game_id"], row["game_name"]) == (game.id, game.name)
        assert row["viewer_count"] == 42
        assert row["type"] == "live"
        started = datetime.fromisoformat(event["started_at"])
        assert row["started_at"] == started.strftime("%Y-%m-%dT%H:%M:%SZ")

        twitch.update_channel(channel.id, title="New title", language="de")
        update = await _next(ws)
        assert update["metadata"]["subscription_version"] == "2"
        assert update["payload"]["event"]["title"] == "New title"
        assert update["payload"]["event"]["category_id"] == game.id
        assert update["payload"]["event"]["content_classification_labels"] == []
        streams = await http.get(
            "/helix/streams", params={"user_id": channel.id}, headers=_auth(token)
        )
        assert streams.json()["data"][0]["title"] == "New title"
        assert streams.json()["data"][0]["language"] == "de"

        twitch.go_offline(channel.id)
        offline = await _next(ws)
        assert offline["metadata"]["subscription_type"] == "stream.offline"
        assert "id" not in offline["payload"]["event"]
        streams = await http.get(
            "/helix/streams", params={"user_id": channel.id}, headers=_auth(token)
        )
        assert streams.json()["data"] == []
    assert twitch.eventsub.notifications_sent == 3


async def test_duplicates_keep_the_message_id(sim: Sim) -> None:
    channel = sim.twitch.add_channel("streamer")
    token, _ = sim.twitch.issue_user_token("watcher")
    async with _session(sim) as (ws, session_id), httpx.AsyncClient(base_url=sim.base) as http:
        await _subscribe(http, token, session_id, channel.id)
        sim.twitch.eventsub.duplicate_next(1)
        sim.twitch.go_live(channel.id)
        first, second = await _next(ws), await _next(ws)
        assert first["metadata"]["message_id"] == second["metadata"]["message_id"]
        assert first["payload"] == second["payload"]
        sim.twitch.go_offline(channel.id)  # subscribed to online only: nothing
        sim.twitch.go_live(channel.id)  # once this time
        third = await _next(ws)
        assert third["metadata"]["message_id"] != first["metadata"]["message_id"]
        sim.twitch.eventsub.inject({"metadata": {"message_type": "marker"}, "payload": {}})
        assert (await _next(ws))["metadata"]["message_type"] == "marker"  # nothing between
    assert sim.twitch.eventsub.notifications_sent == 3


async def test_revocation(sim: Sim) -> None:
    channel = sim.twitch.add_channel("streamer")
    token, _ = sim.twitch.issue_user_token("watcher")
    async with _session(sim) as (ws, session_id), httpx.AsyncClient(base_url=sim.base) as http:
        for status in ("authorization_revoked", "user_removed", "version_removed"):
            created = await _subscribe(http, token, session_id, channel.id)
            assert created.status_code == 202
            sub_id = created.json()["data"][0]["id"]
            sim.twitch.eventsub.revoke(sub_id, status)
            message = await _next(ws)
            assert message["metadata"]["message_type"] == "revocation"
            assert message["metadata"]["subscription_type"] == "stream.online"
            assert message["payload"]["subscription"]["status"] == status
            assert "event" not in message["payload"]
        listed = await http.get(
            "/helix/eventsub/subscriptions",
            params={"status": "enabled"},
            headers=_auth(token),
        )
        assert listed.json()["data"] == []
        assert listed.json()["total_cost"] == 0
        sim.twitch.go_live(channel.id)  # revoked: nothing is sent
        sim.twitch.eventsub.inject("not even json")
        assert await asyncio.wait_for(ws.recv(), DEADLINE_S) == "not even json"
    with pytest.raises(ValueError, match="revocation status"):
        sim.twitch.eventsub.revoke(sub_id, "enabled")


async def test_silence_stops_everything_until_unsilenced(sim: Sim) -> None:
    sim.twitch.eventsub.min_keepalive_s = 1
    channel = sim.twitch.add_channel("streamer")
    token, _ = sim.twitch.issue_user_token("watcher")
    async with (
        _session(sim, "?keepalive_timeout_seconds=2") as (ws, session_id),
        httpx.AsyncClient(base_url=sim.base) as http,
    ):
        await _subscribe(http, token, session_id, channel.id)
        sim.twitch.eventsub.silence()
        sim.twitch.go_live(channel.id)  # lost on the dead link
        with pytest.raises(TimeoutError):
            await _next(ws, within=4.5)  # two keepalive windows: no keepalive either
        sim.twitch.eventsub.unsilence()
        assert (await _next(ws))["metadata"]["message_type"] == "session_keepalive"
    assert sim.twitch.eventsub.notifications_sent == 0


# --- reconnect ----------------------------------------------------------------------------------


async def test_reconnect_hands_subscriptions_over(sim: Sim) -> None:
    twitch = sim.twitch
    channel = twitch.add_channel("streamer")
    token, _ = twitch.issue_user_token("watcher")
    async with _session(sim) as (old, old_id), httpx.AsyncClient(base_url=sim.base) as http:
        created = await _subscribe(http, token, old_id, channel.id)
        sub_id = created.json()["data"][0]["id"]
        await _subscribe(http, token, old_id, channel.id, sub_type="stream.offline")
        url = twitch.eventsub.reconnect()
        message = await _next(old)
        assert message["metadata"]["message_type"] == "session_reconnect"
        session = message["payload"]["session"]
        assert session["id"] == old_id
        assert session["status"] == "reconnecting"
        assert session["keepalive_timeout_seconds"] is None
        assert session["reconnect_url"] == url
        # Before the new socket is up, events still come on the old one.
        twitch.go_live(channel.id)
        assert (await _next(old))["payload"]["event"]["broadcaster_user_id"] == channel.id
        async with connect(url) as new:
            welcome = await _next(new)
            new_id = welcome["payload"]["session"]["id"]
            assert new_id != old_id  # take the id from the new welcome
            assert welcome["payload"]["session"]["keepalive_timeout_seconds"] == 600
            # Both sockets may carry it until the client closes the old one.
            twitch.go_offline(channel.id)
            on_new, on_old = await _next(new), await _next(old)
            assert on_new["metadata"]["message_id"] == on_old["metadata"]["message_id"]
            assert on_new["payload"]["subscription"]["transport"]["session_id"] == new_id
            await old.close()
            await _until(lambda: not twitch.eventsub.sessions()[0].open, "old socket closed")
            # Subscriptions carried over: still enabled, on the new session, no resubscribe.
            assert twitch.eventsub.subscriptions[sub_id].status == "enabled"
            listed = await http.get("/helix/eventsub/subscriptions", headers=_auth(token))
            assert {s["transport"]["session_id"] for s in listed.json()["data"]} == {new_id}
            assert listed.json()["total_cost"] == 2
            twitch.go_live(channel.id)
            assert (await _next(new))["metadata"]["subscription_type"] == "stream.online"
            # The old session id is no use for new subscriptions.
            stale = await _subscribe(http, token, old_id, channel.id, sub_type="channel.update")
            assert stale.status_code == 400


async def test_old_socket_closed_4004_when_the_grace_ends(sim: Sim) -> None:
    twitch = sim.twitch
    channel = twitch.add_channel("streamer")
    token, _ = twitch.issue_user_token("watcher")
    async with _session(sim) as (old, old_id), httpx.AsyncClient(base_url=sim.base) as http:
        await _subscribe(http, token, old_id, channel.id)
        url = twitch.eventsub.reconnect()
        await _next_of(old, "session_reconnect")
        async with connect(url) as new:
            await _next(new)
            # As `grace_s` after the reconnect message (over HTTP, as another process would).
            assert (await http.post("/_sim/eventsub/expire-grace")).status_code == 200
            assert await _closed_with(old) == 4004
            assert (await http.get("/helix/eventsub/subscriptions", headers=_auth(token))).json()[
                "data"
            ][0]["status"] == "enabled"
        # A reconnect URL works once.
        async with connect(url) as again:
            assert await _closed_with(again) == 4007


async def test_no_keepalives_on_the_old_socket_after_session_reconnect(sim: Sim) -> None:
    twitch = sim.twitch
    twitch.eventsub.min_keepalive_s = 1
    channel = twitch.add_channel("streamer")
    token, _ = twitch.issue_user_token("watcher")
    async with (
        _session(sim, "?keepalive_timeout_seconds=2") as (old, old_id),
        httpx.AsyncClient(base_url=sim.base) as http,
    ):
        await _subscribe(http, token, old_id, channel.id)
        url = twitch.eventsub.reconnect()
        await _next_of(old, "session_reconnect")
        async with connect(url) as new:
            welcome = await _next(new)
            assert welcome["payload"]["session"]["keepalive_timeout_seconds"] == 2
            # The new socket keeps the window; the old one falls silent.
            assert (await _next(new))["metadata"]["message_type"] == "session_keepalive"
            assert (await _next(new))["metadata"]["message_type"] == "session_keepalive"
            with pytest.raises(TimeoutError):
                await _next(old, within=0.5)
    on_old = [
        m.message["metadata"]["message_type"]
        for m in twitch.eventsub.messages
        if m.session_id == old_id and isinstance(m.message, dict)
    ]
    assert on_old == ["session_welcome", "session_reconnect"]


async def test_reconnect_never_taken_disables_after_grace(sim: Sim) -> None:
    sim.twitch.eventsub.grace_s = 0.5
    channel = sim.twitch.add_channel("streamer")
    token, _ = sim.twitch.issue_user_token("watcher")
    async with _session(sim) as (ws, session_id), httpx.AsyncClient(base_url=sim.base) as http:
        created = await _subscribe(http, token, session_id, channel.id)
        sim.twitch.eventsub.reconnect()
        assert await _closed_with(ws) == 4004
    sub_id = created.json()["data"][0]["id"]
    await _until(
        lambda: sim.twitch.eventsub.subscriptions[sub_id].status == "websocket_failed_to_reconnect",
        "failed to reconnect",
    )


async def test_invalid_reconnect_url_closes_4007(sim: Sim) -> None:
    async with connect(_ws(sim, "?reconnect_id=made-up")) as ws:
        assert await _closed_with(ws) == 4007


# --- the subscriptions endpoint -----------------------------------------------------------------


async def _app_token(http: httpx.AsyncClient) -> str:
    answer = await http.post(
        "/oauth2/token",
        data={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "grant_type": "client_credentials",
        },
    )
    token: str = answer.json()["access_token"]
    return token


async def test_subscription_errors(sim: Sim) -> None:
    twitch = sim.twitch
    channel = twitch.add_channel("streamer")
    token, _ = twitch.issue_user_token("watcher")
    async with _session(sim) as (_ws, session_id), httpx.AsyncClient(base_url=sim.base) as http:
        path = "/helix/eventsub/subscriptions"
        app = await _app_token(http)
        body = _body(session_id, channel.id)
        assert (await http.post(path, json=body, headers=_auth(app))).status_code == 401
        assert (
            await http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        ).status_code == 401  # no Client-Id
        bad = [
            {**body, "type": "channel.clip"},
            {**body, "version": "2"},
            {**body, "condition": {}},
            {**body, "condition": {"broadcaster_user_id": 1}},
            {**body, "condition": {"broadcaster_user_id": "999"}},
            {**body, "transport": {"method": "webhook", "session_id": session_id}},
            {**body, "transport": {"method": "websocket", "session_id": "nope"}},
            {**body, "transport": {"method": "websocket"}},
            [],
        ]
        for request in bad:
            answer = await http.post(path, json=request, headers=_auth(token))
            assert answer.status_code == 400, request
            assert answer.json()["error"] == "Bad Request"
        garbled = await http.post(
            path,
            content=b"{not json",
            headers={**_auth(token), "Content-Type": "application/json"},
        )
        assert garbled.status_code == 400
        as_form = await http.post(
            path,
            content=json.dumps(body).encode(),
            headers={**_auth(token), "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert as_form.status_code == 400  # JSON bodies need Content-Type: application/json
        created = await http.post(path, json=body, headers=_auth(token))
        assert created.status_code == 202
        payload = created.json()
        assert (payload["total"], payload["total_cost"], payload["max_total_cost"]) == (1, 1, 10)
        sub = payload["data"][0]
        assert sub["status"] == "enabled"
        assert sub["cost"] == 1
        assert sub["transport"] == {
            "method": "websocket",
            "session_id": session_id,
            "connected_at": sub["transport"]["connected_at"],
        }
        again = await http.post(path, json=body, headers=_auth(token))
        assert again.status_code == 409
        assert again.json()["status"] == 409
        # Delete: 204, then it is gone; unknown id 404; no id 400.
        gone = await http.delete(path, params={"id": sub["id"]}, headers=_auth(token))
        assert gone.status_code == 204
        assert gone.content == b""
        assert (
            await http.delete(path, params={"id": sub["id"]}, headers=_auth(token))
        ).status_code == 404
        assert (await http.delete(path, headers=_auth(token))).status_code == 400
        assert (await http.get(path, headers=_auth(token))).json()["total"] == 0
        # An expired user token: 401; after a refresh, the new token works.
        twitch.expire_user_token(token)
        assert (await http.post(path, json=body, headers=_auth(token))).status_code == 401
        # A revoked user token is dead too.
        other, _ = twitch.issue_user_token("other_watcher")
        assert (await http.get(path, headers=_auth(other))).status_code == 200
        revoked = await http.post("/oauth2/revoke", data={"client_id": CLIENT_ID, "token": other})
        assert revoked.status_code == 200
        assert (await http.get(path, headers=_auth(other))).status_code == 401


async def test_cost_limits(sim: Sim) -> None:
    twitch = sim.twitch
    channels = [twitch.add_channel(f"streamer{i}") for i in range(11)]
    token, _ = twitch.issue_user_token("watcher")
    own, _ = twitch.issue_user_token("streamer0")  # the broadcaster's own token
    async with _session(sim) as (_ws, session_id), httpx.AsyncClient(base_url=sim.base) as http:
        for channel in channels[:10]:
            assert (await _subscribe(http, token, session_id, channel.id)).status_code == 202
        over = await _subscribe(http, token, session_id, channels[10].id)
        assert over.status_code == 429
        assert over.json()["error"] == "Too Many Requests"
        listed = await http.get("/helix/eventsub/subscriptions", headers=_auth(token))
        assert (listed.json()["total"], listed.json()["total_cost"]) == (10, 10)
        # Another user has their own budget; their own channel costs nothing.
        mine = await _subscribe(http, own, session_id, channels[0].id)
        assert mine.status_code == 202
        assert mine.json()["data"][0]["cost"] == 0
        assert mine.json()["total_cost"] == 0
        # Deleting one frees its cost.
        first = listed.json()["data"][0]["id"]
        await http.delete(
            "/helix/eventsub/subscriptions", params={"id": first}, headers=_auth(token)
        )
        assert (await _subscribe(http, token, session_id, channels[10].id)).status_code == 202


async def test_three_websocket_transports_per_user(sim: Sim) -> None:
    twitch = sim.twitch
    channels = [twitch.add_channel(f"streamer{i}") for i in range(4)]
    token, _ = twitch.issue_user_token("watcher")
    other, _ = twitch.issue_user_token("someone_else")
    async with (
        _session(sim) as (_a, a),
        _session(sim) as (_b, b),
        _session(sim) as (_c, c),
        _session(sim) as (_d, d),
        httpx.AsyncClient(base_url=sim.base) as http,
    ):
        for session_id, channel in zip((a, b, c), channels, strict=False):
            assert (await _subscribe(http, token, session_id, channel.id)).status_code == 202
        # More on a socket the user already uses is fine.
        more = await _subscribe(http, token, a, channels[3].id, sub_type="stream.offline")
        assert more.status_code == 202
        fourth = await _subscribe(http, token, d, channels[3].id)
        assert fourth.status_code == 429
        assert fourth.json() == {
            "error": "Too Many Requests",
            "status": 429,
            "message": "number of websocket transports limit exceeded",
        }
        # The limit is per user: another user's token may use the fourth socket.
        assert (await _subscribe(http, other, d, channels[3].id)).status_code == 202


async def test_three_connections_then_a_fourth_after_one_closes(sim: Sim) -> None:
    twitch = sim.twitch
    channels = [twitch.add_channel(f"streamer{i}") for i in range(4)]
    token, _ = twitch.issue_user_token("watcher")
    async with (
        httpx.AsyncClient(base_url=sim.base) as http,
        _session(sim) as (_d, d),
        _session(sim) as (first, a),
        _session(sim) as (_b, b),
        _session(sim) as (_c, c),
    ):
        for session_id, channel in zip((a, b, c), channels, strict=False):
            assert (await _subscribe(http, token, session_id, channel.id)).status_code == 202
        refused = await _subscribe(http, token, d, channels[3].id)
        assert refused.status_code == 429
        await first.close()
        await _until(lambda: not twitch.eventsub.sessions()[1].open, "a closed")
        # A closed socket's subscriptions are disabled and no longer count.
        assert (await _subscribe(http, token, d, channels[3].id)).status_code == 202


async def test_subscriptions_per_connection_limit(sim: Sim) -> None:
    twitch = sim.twitch
    twitch.eventsub.max_subscriptions_per_connection = 2
    channels = [twitch.add_channel(f"streamer{i}") for i in range(3)]
    token, _ = twitch.issue_user_token("watcher")
    async with _session(sim) as (_ws, session_id), httpx.AsyncClient(base_url=sim.base) as http:
        for channel in channels[:2]:
            assert (await _subscribe(http, token, session_id, channel.id)).status_code == 202
        assert (await _subscribe(http, token, session_id, channels[2].id)).status_code == 429


async def test_list_filters_and_pages(sim: Sim) -> None:
    twitch = sim.twitch
    twitch.eventsub.max_total_cost = 1_000
    channels = [twitch.add_channel(f"streamer{i}") for i in range(60)]
    token, _ = twitch.issue_user_token("watcher")
    path = "/helix/eventsub/subscriptions"
    async with _session(sim) as (_ws, session_id), httpx.AsyncClient(base_url=sim.base) as http:
        for channel in channels:
            for kind in ("stream.online", "stream.offline"):
                answer = await _subscribe(http, token, session_id, channel.id, sub_type=kind)
                assert answer.status_code == 202
        seen: list[str] = []
        after = None
        while True:
            page = await http.get(
                path, params={"after": after} if after else {}, headers=_auth(token)
            )
            seen += [s["id"] for s in page.json()["data"]]
            assert page.json()["total"] == 120
            after = page.json()["pagination"].get("cursor")
            if not after:
                break
        assert len(seen) == len(set(seen)) == 120
        online = await http.get(path, params={"type": "stream.online"}, headers=_auth(token))
        assert online.json()["total"] == 60
        one = await http.get(path, params={"user_id": channels[5].id}, headers=_auth(token))
        assert {s["condition"]["broadcaster_user_id"] for s in one.json()["data"]} == {
            channels[5].id
        }
        both = await http.get(
            path, params={"type": "stream.online", "status": "enabled"}, headers=_auth(token)
        )
        assert both.status_code == 400


async def test_subscription_calls_take_from_the_users_bucket() -> None:
    from clipwatch.simhttp import LoopbackServer

    twitch = TwitchSimulator(points_per_minute=3)
    server = LoopbackServer(twitch)
    base = await server.start()
    try:
        token, _ = twitch.issue_user_token("watcher")
        async with httpx.AsyncClient(base_url=base) as http:
            answers = [
                await http.get("/helix/eventsub/subscriptions", headers=_auth(token))
                for _ in range(4)
            ]
            assert [a.status_code for a in answers] == [200, 200, 200, 429]
            assert answers[3].headers["ratelimit-remaining"] == "0"
            # The app's own bucket is apart from the user's.
            app = await _app_token(http)
            users = await http.get("/helix/users", params={"login": "x"}, headers=_auth(app))
            assert users.status_code == 200
    finally:
        await server.stop()


# --- user tokens --------------------------------------------------------------------------------


async def test_refresh_grant_and_validate(sim: Sim) -> None:
    twitch = sim.twitch
    channel = twitch.add_channel("streamer")
    access, refresh = twitch.issue_user_token("streamer")
    async with httpx.AsyncClient(base_url=sim.base) as http:
        valid = await http.get("/oauth2/validate", headers={"Authorization": f"OAuth {access}"})
        assert valid.status_code == 200
        body = valid.json()
        assert (body["login"], body["user_id"], body["client_id"]) == (
            "streamer",
            channel.id,
            CLIENT_ID,
        )
        assert body["scopes"] == []
        assert 0 < body["expires_in"] <= 14_124
        # With a user token and no parameters, Get Users answers for the token's user.
        me = await http.get("/helix/users", headers=_auth(access))
        assert [u["id"] for u in me.json()["data"]] == [channel.id]
        twitch.expire_user_token(access)
        expired = await http.get("/oauth2/validate", headers={"Authorization": f"OAuth {access}"})
        assert expired.status_code == 401
        assert (await http.get("/helix/users", headers=_auth(access))).status_code == 401

        def grant(token: str) -> dict[str, str]:
            return {
                "grant_type": "refresh_token",
                "refresh_token": token,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            }

        renewed = await http.post("/oauth2/token", data=grant(refresh))
        assert renewed.status_code == 200
        tokens = renewed.json()
        assert tokens["access_token"] != access
        assert tokens["refresh_token"] != refresh
        assert tokens["token_type"] == "bearer"
        assert tokens["expires_in"] > 0
        assert (
            await http.get("/helix/users", headers=_auth(tokens["access_token"]))
        ).status_code == 200
        spent = await http.post("/oauth2/token", data=grant(refresh))
        assert spent.status_code == 400
        assert spent.json() == {
            "error": "Bad Request",
            "status": 400,
            "message": "Invalid refresh token",
        }
        # The grant may also come in the query string (twitch-cli's way).
        again = await http.post("/oauth2/token", params=grant(tokens["refresh_token"]))
        assert again.status_code == 200
        wrong_secret = await http.post(
            "/oauth2/token", data={**grant(again.json()["refresh_token"]), "client_secret": "x"}
        )
        assert wrong_secret.status_code == 400


# --- HTTP controls ------------------------------------------------------------------------------


async def test_http_controls_drive_live_state_and_sockets(sim: Sim) -> None:
    twitch = sim.twitch
    twitch.eventsub.grace_s = 30
    channel = twitch.add_channel("streamer")
    async with httpx.AsyncClient(base_url=sim.base) as http:
        minted = (await http.post("/_sim/users/token", params={"login": "watcher"})).json()
        token = minted["access_token"]
        async with _session(sim) as (ws, session_id):
            for kind in ("stream.online", "stream.offline", "channel.update"):
                await _subscribe(http, token, session_id, channel.id, sub_type=kind)
            online = await http.post(
                "/_sim/live/online",
                params={"channel_id": channel.id, "title": "hi", "viewer_count": "5"},
            )
            assert (await _next(ws))["payload"]["event"]["id"] == online.json()["stream_id"]
            await http.post(
                "/_sim/live/viewers", params={"channel_id": channel.id, "viewer_count": "77"}
            )
            streams = await http.get(
                "/helix/streams", params={"user_id": channel.id}, headers=_auth(token)
            )
            assert streams.json()["data"][0]["viewer_count"] == 77
            await http.post("/_sim/live/update", params={"channel_id": channel.id, "title": "t2"})
            assert (await _next(ws))["payload"]["event"]["title"] == "t2"
            await http.post("/_sim/eventsub/duplicate", params={"n": "1"})
            await http.post("/_sim/live/offline", params={"channel_id": channel.id})
            first, second = await _next(ws), await _next(ws)
            assert first == second
            await http.post("/_sim/eventsub/inject", content=b'{"metadata":{},"new":1}')
            assert json.loads(await _next_raw(ws)) == {"metadata": {}, "new": 1}
            sessions = (await http.get("/_sim/eventsub/sessions")).json()["data"]
            assert sessions[0]["id"] == session_id
            assert len(sessions[0]["subscription_ids"]) == 3
            subs = (await http.get("/_sim/eventsub/subscriptions")).json()["data"]
            await http.post("/_sim/eventsub/revoke", params={"id": subs[0]["id"]})
            assert (await _next(ws))["metadata"]["message_type"] == "revocation"
            reconnect = (await http.post("/_sim/eventsub/reconnect")).json()
            assert (await _next(ws))["payload"]["session"]["reconnect_url"] == reconnect[
                "reconnect_url"
            ]
            sent = (await http.get("/_sim/eventsub/messages")).json()
            assert sent["notifications_sent"] == 4
            await http.post("/_sim/eventsub/close", params={"code": "4006"})
            assert await _closed_with(ws) == 4006
        bad = await http.post("/_sim/eventsub/close", params={"code": "1000"})
        assert bad.status_code == 400
        config = await http.post("/_sim/eventsub/config", params={"max_total_cost": "3"})
        assert config.json()["max_total_cost"] == 3
        assert twitch.eventsub.max_total_cost == 3
        await http.post("/_sim/users/expire", params={"access_token": token})
        listed = await http.get("/helix/eventsub/subscriptions", headers=_auth(token))
        assert listed.status_code == 401


async def _next_raw(ws: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), timeout=DEADLINE_S)


async def test_get_streams_pages_and_batches(sim: Sim) -> None:
    twitch = sim.twitch
    channels = [twitch.add_channel(f"streamer{i}") for i in range(30)]
    for i, channel in enumerate(channels):
        twitch.go_live(channel.id, viewer_count=i)
    async with httpx.AsyncClient(base_url=sim.base) as http:
        app = await _app_token(http)
        ids: list[tuple[str, str | int | float | bool | None]] = [
            ("user_id", c.id) for c in channels
        ]
        first = await http.get("/helix/streams", params=ids, headers=_auth(app))
        assert len(first.json()["data"]) == 20  # the default page
        cursor = first.json()["pagination"]["cursor"]
        rest = await http.get(
            "/helix/streams", params=[*ids, ("after", cursor)], headers=_auth(app)
        )
        assert len(rest.json()["data"]) == 10
        assert rest.json()["pagination"] == {}
        views = [s["viewer_count"] for s in first.json()["data"] + rest.json()["data"]]
        assert views == sorted(views, reverse=True) == list(range(29, -1, -1))
        too_many: list[tuple[str, str | int | float | bool | None]] = [
            ("user_id", str(i)) for i in range(101)
        ]
        assert (
            await http.get("/helix/streams", params=too_many, headers=_auth(app))
        ).status_code == 400
        assert (
            await http.get("/helix/streams", params=[*ids, ("first", "0")], headers=_auth(app))
        ).status_code == 400


# --- properties ---------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _bodies() -> st.SearchStrategy[bytes]:
    shaped = st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["stream.online", "channel.update", "x"]) | _json,
            "version": st.sampled_from(["1", "2"]) | _json,
            "condition": st.fixed_dictionaries(
                {}, optional={"broadcaster_user_id": st.sampled_from(["70000000", "1"]) | _json}
            )
            | _json,
            "transport": st.fixed_dictionaries(
                {},
                optional={
                    "method": st.sampled_from(["websocket", "webhook"]) | _json,
                    "session_id": st.sampled_from(["s1", "gone"]) | _json,
                },
            )
            | _json,
        },
    )
    return shaped.map(lambda b: json.dumps(b).encode()) | st.binary(max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=st.lists(_bodies(), min_size=1, max_size=5))
def test_any_create_body_gets_an_answer_never_a_crash(bodies: list[bytes]) -> None:
    from clipwatch.twitch.eventsub_sim import Broadcaster, Session

    es = EventSubSim(lambda uid: Broadcaster(uid, "b", "B") if uid == "70000000" else None)
    es._sessions["s1"] = Session(id="s1", keepalive_s=10, connected_at=timestamp(), opened=0.0)
    for body in bodies:
        status, answer = es.helix("POST", {}, body, "80000000")
        assert status in (202, 400, 409, 429)
        assert answer is not None
        if status == 202:
            assert answer["data"][0]["status"] == "enabled"
        else:
            assert answer["status"] == status
            assert isinstance(answer["message"], str)
    assert all(s.enabled and s.session_id == "s1" for s in es.subscriptions.values())
    assert len(es.subscriptions) <= 2  # online v1 and update v2 on the one broadcaster


def test_timestamps_have_nine_digits() -> None:
    at = datetime.fromisoformat("2026-01-02T03:04:05.123456+00:00")
    assert timestamp(at) == "2026-01-02T03:04:05.123456000Z"
    assert len(timestamp().rsplit(".", 1)[1]) == 10
