"""Signed but malformed interactions answer 400 (problem+json), never a 5xx or a reset.

The signature is valid on every request here: what is tested is what comes after it. The
shapes are those a reviewer tried (`{"type":2,"data":"abc"}`, options of the wrong type,
missing keys, JSON that is not an object, deep nesting, unknown types), then whatever
Hypothesis builds from Discord's shapes with any part replaced by any JSON value.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey
from sqlalchemy.ext.asyncio import AsyncEngine

from clipwatch.api.app import create_app
from clipwatch.config import Settings

SIGNER = SigningKey.generate()
PROBLEM = "application/problem+json"


def signed(body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {
        "X-Signature-Ed25519": SIGNER.sign(timestamp.encode() + body).signature.hex(),
        "X-Signature-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def command(*options: Any, sub: Any = "search", kind: Any = 2) -> dict[str, Any]:
    return {
        "type": kind,
        "token": "interaction-token",
        "data": {"name": "clips", "options": [{"type": 1, "name": sub, "options": list(options)}]},
    }


class Poster:
    """The app with its lifespan open in a loop of its own, so that Hypothesis (which is not
    async) can post example after example to one app."""

    def __init__(self, app_settings: Settings) -> None:
        self.runner = asyncio.Runner()
        self.app = create_app(app_settings)
        self.lifespan = self.app.router.lifespan_context(self.app)
        self.runner.run(self.lifespan.__aenter__())
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://test")

    def post(self, body: bytes) -> httpx.Response:
        return self.runner.run(
            self.client.post("/discord/interactions", content=body, headers=signed(body))
        )

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.run(self.lifespan.__aexit__(None, None, None))
        self.runner.close()


@pytest.fixture
def poster(settings: Settings, engine: AsyncEngine) -> Iterator[Poster]:
    """On both databases (a well-formed command searches the archive; `engine` empties it)."""
    app_settings = settings.model_copy(
        update={
            "discord_public_key": SIGNER.verify_key.encode().hex(),
            "discord_application_id": "123456789012345678",
            # A deferred answer's follow-up must go nowhere real.
            "discord_api_url": "http://127.0.0.1:9/api/v10",
            "rate_limit_interactions": "1000000/minute",
        }
    )
    poster = Poster(app_settings)
    try:
        yield poster
    finally:
        poster.close()


def assert_bad_request(answer: httpx.Response) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["status"] == 400


MALFORMED: list[Any] = [
    {"type": 2, "data": "abc"},
    {"type": 2, "data": None},
    {"type": 2, "data": [1, 2]},
    {"type": 2},  # no data
    {"data": {"name": "clips"}},  # no type
    {"type": "2", "data": {"name": "clips"}},
    {"type": True},
    {"type": 1.0},
    {"type": 99},
    {"type": -1},
    {"type": 2, "data": {"options": []}},  # no command name
    {"type": 2, "data": {"name": 7}},
    {"type": 2, "data": {"name": "clips"}},  # no subcommand
    {"type": 2, "data": {"name": "clips", "options": "abc"}},
    {"type": 2, "data": {"name": "clips", "options": {"name": "top"}}},
    {"type": 2, "data": {"name": "clips", "options": [5]}},
    {"type": 2, "data": {"name": "clips", "options": [{"type": 1}]}},
    {"type": 2, "data": {"name": "clips", "options": [{"name": ["top"]}]}},
    command({"name": "query", "value": 5}),  # a number where text belongs
    command({"name": "query", "value": {"a": 1}}),
    command({"name": "query", "value": ["clutch"]}),
    command({"name": "query", "value": None}),
    command({"name": ["query"], "value": "clutch"}),  # an unhashable name
    command({"value": "clutch"}),  # an option without a name
    command("query"),
    command({"name": "query", "value": "clutch"}, sub="top") | {"token": None},
    command({"name": "query", "value": "clutch"}) | {"token": 12},
    command({"name": "query", "value": "clutch"}) | {"token": ""},
    {"type": 4, "data": "abc"},
    {"type": 4, "data": {"name": "clips", "options": 3}},
    {"type": 4, "data": {"name": "clips", "options": [{"name": "top", "options": [7]}]}},
    command({"name": "channel", "value": 3, "focused": True}, kind=4),
    command({"name": "channel", "value": "al", "focused": "yes"}, kind=4),
    [],
    [{"type": 1}],
    "abc",
    1,
    None,
    True,
]
RAW: list[bytes] = [
    b"",
    b"{",
    b'{"type": 1',
    b"\xff\xfe{}",
    b"[" * 5000 + b"]" * 5000,  # deeper than any parser should follow
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b'{"type": 1e999}',
    b'{"type": 123456789012345678901234567890}',
    b'{"type": NaN}',
]


@pytest.mark.parametrize("payload", MALFORMED, ids=[repr(p)[:60] for p in MALFORMED])
def test_each_malformed_shape_answers_400(poster: Poster, payload: Any) -> None:
    assert_bad_request(poster.post(orjson.dumps(payload)))


@pytest.mark.parametrize("body", RAW, ids=[repr(b)[:40] for b in RAW])
def test_bodies_that_are_no_json_object_answer_400(poster: Poster, body: bytes) -> None:
    assert_bad_request(poster.post(body))


def test_well_formed_ones_still_answer(poster: Poster) -> None:
    assert poster.post(b'{"type":1}').json() == {"type": 1}
    found = poster.post(orjson.dumps(command({"name": "query", "value": "clutch"})))
    assert found.json()["type"] == 4  # "No clips found" on the empty archive
    unknown = poster.post(orjson.dumps({"type": 2, "data": {"name": "other"}}))
    assert unknown.json()["data"]["content"] == "Unknown command."
    component = poster.post(orjson.dumps({"type": 3, "data": {"custom_id": "x"}}))
    assert component.json()["type"] == 4
    typed = command({"name": "channel", "value": "al", "focused": True}, sub="top", kind=4)
    assert poster.post(orjson.dumps(typed)).json() == {"type": 8, "data": {"choices": []}}


# --- Any shape --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Discord's shape for this part, or any JSON value in its place."""
    return st.one_of(strategy, strategy, json_values)


leaf_options = maybe(
    st.fixed_dictionaries(
        {"name": maybe(st.sampled_from(["query", "channel", "game", "other"]))},
        optional={
            "type": maybe(st.just(3)),
            "value": maybe(st.text(max_size=30)),
            "focused": maybe(st.booleans()),
        },
    )
)
subcommands = maybe(
    st.fixed_dictionaries(
        {"name": maybe(st.sampled_from(["search", "top", "latest", "random", "nope"]))},
        optional={"type": maybe(st.just(1)), "options": maybe(st.lists(leaf_options, max_size=4))},
    )
)
interactions = st.fixed_dictionaries(
    {},
    optional={
        "type": maybe(st.sampled_from([1, 2, 3, 4, 5, 0, 6, 99])),
        "token": maybe(st.text(min_size=1, max_size=20)),
        "id": json_values,
        "data": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": maybe(st.sampled_from(["clips", "other"])),
                    "options": maybe(st.lists(subcommands, max_size=3)),
                },
            )
        ),
    },
)


@settings(
    # On both databases, each example a signed request through the app: 150 of them (with
    # the examples below) keep it near 20 s a database; 300 cost the suite's budget.
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=interactions | json_values)
@example(payload={"type": 2, "data": "abc"})
@example(payload=command({"name": "query", "value": 5}))
@example(payload=command({"name": ["query"], "value": "x"}))
@example(payload={"type": 4, "data": {"options": [{"name": "top", "options": 5}]}})
def test_no_signed_shape_is_a_server_error(poster: Poster, payload: Any) -> None:
    answer = poster.post(orjson.dumps(payload))
    assert answer.status_code == 400 or 200 <= answer.status_code < 300, answer.text
    if answer.status_code == 400:
        assert answer.headers["content-type"] == PROBLEM
