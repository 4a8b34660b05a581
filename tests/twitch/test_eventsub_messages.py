"""The pure part of the EventSub client: reading messages liberally (hypothesis over shapes),
dropping repeated message ids within bounds, planning subscriptions inside the budget."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clipwatch.twitch.eventsub_messages import (
    MAX_PER_CONNECTION,
    ChannelUpdate,
    Malformed,
    SeenMessages,
    StreamOffline,
    StreamOnline,
    Wanted,
    fits,
    parse_event,
    parse_message,
    plan_subscriptions,
    ws_url,
)
from clipwatch.twitch.helix import clean_text


def envelope(kind: str, payload: dict[str, Any], **metadata: Any) -> str:
    meta = {
        "message_id": "m-1",
        "message_type": kind,
        "message_timestamp": "2026-11-27T10:00:00.123456789Z",
    }
    meta.update(metadata)
    return json.dumps({"metadata": meta, "payload": payload})


def online_notification(**event: Any) -> str:
    sub = {
        "id": "sub-1",
        "status": "enabled",
        "type": "stream.online",
        "version": "1",
        "cost": 1,
        "condition": {"broadcaster_user_id": "1337"},
        "transport": {"method": "websocket", "session_id": "s-1"},
        "created_at": "2026-11-27T10:00:00Z",
    }
    body = {
        "id": "9001",
        "broadcaster_user_id": "1337",
        "type": "live",
        "started_at": "2026-11-27T10:00:00Z",
    }
    body.update(event)
    return envelope("notification", {"subscription": sub, "event": body})


def test_welcome_read_with_nanosecond_timestamp_and_unknown_fields() -> None:
    raw = envelope(
        "session_welcome",
        {
            "session": {
                "id": "AQoQexAWVYKSTIu4ec_2VAxyuhAB",
                "status": "connected",
                "keepalive_timeout_seconds": 10,
                "reconnect_url": None,
                "recovery_url": None,
                "connected_at": "2026-11-27T10:11:12.634234626Z",
                "something_new": {"deep": [1, 2]},
            }
        },
        extra="ignored",
    )
    message = parse_message(raw)
    assert message.type == "session_welcome"
    assert message.session is not None
    assert message.session.id == "AQoQexAWVYKSTIu4ec_2VAxyuhAB"
    assert message.session.keepalive_s == 10
    assert message.session.connected_at == datetime(2026, 11, 27, 10, 11, 12, 634234, tzinfo=UTC)
    assert message.timestamp == datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC)


def test_notification_to_event() -> None:
    message = parse_message(online_notification())
    assert message.type == "notification"
    assert message.subscription is not None
    assert message.event is not None
    event = parse_event(message.subscription, message.event)
    assert event == StreamOnline("1337", "9001", datetime(2026, 11, 27, 10, tzinfo=UTC), "live")


def test_event_channel_falls_back_on_condition_and_odd_fields_cost_only_themselves() -> None:
    message = parse_message(
        online_notification(broadcaster_user_id=None, started_at="yesterday", type=7, id="a b")
    )
    assert message.subscription is not None
    assert message.event is not None
    assert parse_event(message.subscription, message.event) == StreamOnline(
        "1337", None, None, None
    )


def test_channel_update_text_is_cleaned_and_bounded() -> None:
    message = parse_message(
        envelope(
            "notification",
            {
                "subscription": {"type": "channel.update", "version": "2", "condition": {}},
                "event": {
                    "broadcaster_user_id": "42",
                    "title": "a\x00b\nc" + "x" * 5000,
                    "language": "en",
                    "category_id": "509658",
                    "category_name": "Just\tChatting",
                    "content_classification_labels": ["x"],
                },
            },
        )
    )
    assert message.subscription is not None
    assert message.event is not None
    event = parse_event(message.subscription, message.event)
    assert isinstance(event, ChannelUpdate)
    assert event.title is not None
    assert event.title.startswith("ab c")
    assert len(event.title) == 1000
    assert event.game_name == "Just Chatting"
    assert event.game_id == "509658"


def test_offline_and_other_types() -> None:
    sub = parse_message(
        envelope(
            "notification",
            {
                "subscription": {"type": "stream.offline", "version": "1"},
                "event": {"broadcaster_user_id": 5},
            },
        )
    )
    assert sub.subscription is not None
    assert sub.event is not None
    assert parse_event(sub.subscription, sub.event) == StreamOffline("5")
    other = parse_message(
        envelope(
            "notification",
            {"subscription": {"type": "channel.follow", "version": "2"}, "event": {}},
        )
    )
    assert other.subscription is not None
    assert other.event is not None
    assert parse_event(other.subscription, other.event) is None


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "not_an_object"),
        ('{"metadata": {}}', "no_message_type"),
        (envelope("session_welcome", {"session": {"id": ""}}), "no_session_id"),
        (
            envelope("session_reconnect", {"session": {"id": "x", "reconnect_url": "http://a/"}}),
            "bad_reconnect_url",
        ),
        (envelope("notification", {"subscription": {}, "event": {}}), "no_subscription_type"),
        (envelope("notification", {"subscription": {"type": "stream.online"}}), "no_event"),
        (
            envelope(
                "notification",
                {"subscription": {"type": "stream.online"}, "event": {}},
                message_id=None,
            ),
            "no_message_id",
        ),
    ],
)
def test_malformed_kinds(raw: str, kind: str) -> None:
    with pytest.raises(Malformed) as caught:
        parse_message(raw)
    assert caught.value.kind == kind


def test_unknown_type_is_unknown_not_an_error() -> None:
    assert parse_message(envelope("session_party", {"x": 1})).type == "unknown"


def test_keepalive_is_clamped_and_reconnect_url_must_be_websocket() -> None:
    welcome = parse_message(
        envelope("session_welcome", {"session": {"id": "s", "keepalive_timeout_seconds": 10**9}})
    )
    assert welcome.session is not None
    assert welcome.session.keepalive_s == 600
    assert ws_url("wss://eventsub.wss.twitch.tv/ws?x=1") is not None
    assert ws_url("https://example.com/ws") is None
    assert ws_url("ws://") is None
    assert ws_url("ws://host/\x00") is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KINDS = st.sampled_from(
    [
        "session_welcome",
        "session_keepalive",
        "notification",
        "session_reconnect",
        "revocation",
        "odd",
    ]
)
FIELD = JSON | st.text(alphabet=st.characters(codec="utf-8"), max_size=50) | st.just("\x00\ud800")


@settings(max_examples=300, deadline=None)
@given(
    kind=KINDS,
    metadata=st.dictionaries(
        st.sampled_from(["message_id", "message_timestamp", "subscription_type", "x"]), FIELD
    ),
    payload=st.dictionaries(
        st.sampled_from(["session", "subscription", "event", "y"]),
        JSON
        | st.fixed_dictionaries(
            {},
            optional={
                "id": FIELD,
                "type": FIELD,
                "version": FIELD,
                "status": FIELD,
                "keepalive_timeout_seconds": FIELD,
                "reconnect_url": FIELD,
                "connected_at": FIELD,
                "condition": st.dictionaries(st.just("broadcaster_user_id"), FIELD),
            },
        ),
    ),
)
def test_any_envelope_shape_reads_or_is_malformed(
    kind: str, metadata: dict[str, Any], payload: dict[str, Any]
) -> None:
    raw = json.dumps({"metadata": {**metadata, "message_type": kind}, "payload": payload})
    try:
        message = parse_message(raw)
    except Malformed:
        return
    if message.subscription is not None and message.event is not None:
        with contextlib.suppress(Malformed):
            parse_event(message.subscription, message.event)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200) | JSON.map(json.dumps))
def test_any_bytes_read_or_are_malformed(raw: str | bytes) -> None:
    with contextlib.suppress(Malformed):
        parse_message(raw)


@settings(max_examples=200, deadline=None)
@given(
    event=st.dictionaries(
        st.sampled_from(
            [
                "broadcaster_user_id",
                "id",
                "type",
                "started_at",
                "title",
                "language",
                "category_id",
                "category_name",
            ]
        ),
        FIELD,
    ),
    sub_type=st.sampled_from(["stream.online", "stream.offline", "channel.update"]),
)
def test_any_event_shape_reads_or_is_malformed(event: dict[str, Any], sub_type: str) -> None:
    raw = envelope(
        "notification", {"subscription": {"type": sub_type, "version": "1"}, "event": event}
    )
    message = parse_message(raw)
    assert message.subscription is not None
    assert message.event is not None
    failure = None
    try:
        parsed = parse_event(message.subscription, message.event)
    except Malformed as exc:
        failure, parsed = exc.kind, None
    if parsed is None:
        assert failure == "no_channel"  # the only way a known event fails: no channel named
        return
    for value in vars(parsed).values():
        if isinstance(value, str):
            # What a database can hold: UTF-8, no control characters (clean_text's rules).
            value.encode("utf-8")
            assert clean_text(value, len(value)) == value
            assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)


# --- duplicates ---------------------------------------------------------------------------


def test_seen_messages_drops_repeats_and_forgets_by_age_and_count() -> None:
    moment = [0.0]
    seen = SeenMessages(limit=3, ttl_s=600.0, clock=lambda: moment[0])
    assert not seen.repeat("a")
    assert seen.repeat("a")
    moment[0] = 601.0
    assert not seen.repeat("a")  # forgotten by age
    for name in "bcd":
        assert not seen.repeat(name)
    assert len(seen) == 3
    assert not seen.repeat("a")  # pushed out by count


@settings(max_examples=100, deadline=None)
@given(ids=st.lists(st.text(min_size=1, max_size=4), max_size=200))
def test_seen_messages_within_bounds_drops_exactly_repeats(ids: list[str]) -> None:
    seen = SeenMessages(limit=10_000)
    first: set[str] = set()
    for message_id in ids:
        assert seen.repeat(message_id) == (message_id in first)
        first.add(message_id)
    assert len(seen) <= 10_000


# --- planning --------------------------------------------------------------------------------


def test_plan_pairs_first_then_updates_skipping_revoked_and_removed() -> None:
    groups = plan_subscriptions(
        ["2", "1", "3"],
        skip={("stream.online", "3")},
        skip_types={("channel.update", "2")},
    )
    assert groups == [
        [Wanted("1", "stream.online", "1"), Wanted("1", "stream.offline", "1")],
        [Wanted("2", "stream.online", "1"), Wanted("2", "stream.offline", "1")],
        [Wanted("3", "stream.offline", "1")],
    ]


def test_fits_budget_and_connection_limit() -> None:
    pair = [Wanted("1", "stream.online", "1"), Wanted("1", "stream.offline", "1")]
    assert fits(pair, total_cost=0, max_total_cost=None, unit_cost=1, created=0)
    assert fits(pair, total_cost=8, max_total_cost=10, unit_cost=1, created=8)
    assert not fits(pair, total_cost=9, max_total_cost=10, unit_cost=1, created=9)
    assert not fits(
        pair, total_cost=0, max_total_cost=None, unit_cost=0, created=MAX_PER_CONNECTION - 1
    )


# --- the client's reading shell: whatever arrives, it returns -------------------------------


def _client() -> object:
    import httpx

    from clipwatch.twitch.eventsub import EventSubClient

    async def no_channels() -> list[str]:
        return []

    class NoTokens:
        async def access_token(self) -> str:
            raise AssertionError("no subscription is made here")

        async def refresh(self, reason: str, used: str | None = None) -> str:
            raise AssertionError("no subscription is made here")

        def revalidate_soon(self) -> None:
            pass

    handled: list[object] = []

    async def handle(event: object) -> None:
        handled.append(event)

    client = EventSubClient(
        ws_url="ws://127.0.0.1:9/ws",
        api_url="http://127.0.0.1:9/helix/eventsub/subscriptions",
        client_id="x",
        tokens=NoTokens(),
        channels=no_channels,
        handler=handle,
        sessionmaker=None,  # type: ignore[arg-type]  # reading touches no database
        http=httpx.AsyncClient(),
    )
    client.handled = handled  # type: ignore[attr-defined]
    return client


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(
        st.one_of(
            st.text(max_size=80),
            JSON.map(json.dumps),
            st.builds(
                lambda kind, mid, event: envelope(
                    "notification",
                    {"subscription": {"type": kind, "version": "1"}, "event": event},
                    message_id=mid,
                ),
                st.sampled_from(["stream.online", "stream.offline", "channel.update", "x"]),
                st.sampled_from(["a", "b", "c", None, 7]),
                st.dictionaries(
                    st.sampled_from(["broadcaster_user_id", "title", "started_at", "id"]), FIELD
                ),
            ),
        ),
        max_size=12,
    )
)
def test_the_client_reads_any_sequence_without_raising(messages: list[str]) -> None:
    """Whatever the socket delivers, reading and handling return: a bad message is counted;
    a good notification with an id seen before is handled once."""
    import asyncio

    client: Any = _client()

    async def feed() -> None:
        for raw in messages:
            message = client._read(raw)
            if message is not None and message.type == "notification":
                await client._notified(message)
        await client.http.aclose()

    asyncio.run(feed())
    ids = set()
    for raw in messages:
        with contextlib.suppress(Malformed):
            message = parse_message(raw)
            if message.type == "notification":
                ids.add(message.message_id)
    assert len(client.handled) <= len(ids)  # a repeated id is handled once at most
    assert client.state.events == len(client.handled)


@settings(max_examples=100, deadline=None)
@given(failures=st.integers(min_value=0, max_value=1_000))
def test_reconnect_delay_is_jittered_and_bounded(failures: int) -> None:
    from clipwatch.twitch.eventsub import BACKOFF_CAP_S, reconnect_delay

    bound = min(BACKOFF_CAP_S, 2.0 ** max(failures - 1, 0))
    delays = {reconnect_delay(failures) for _ in range(20)}
    assert all(0 <= d <= bound for d in delays)
    assert len(delays) > 1  # jitter: processes that dropped together do not return together


def test_reconnect_delay_grows_while_sessions_die_young() -> None:
    from clipwatch.twitch.eventsub import reconnect_delay

    assert max(reconnect_delay(1) for _ in range(200)) <= 1.0
    assert max(reconnect_delay(7) for _ in range(200)) > 1.0
    assert max(reconnect_delay(50) for _ in range(200)) <= 60.0
