from __future__ import annotations

import base64

import pytest

from clipwatch.clips.cursor import decode_cursor, encode_cursor, fingerprint
from clipwatch.clips.relevance import relevance_score
from clipwatch.db.search import parse_terms
from clipwatch.errors import BadRequest

KEY = b"k" * 32


def test_cursor_round_trip() -> None:
    query = fingerprint({"q": "pog", "sort": "views"})
    cursor = encode_cursor(KEY, {"q": query, "k": [10, 5], "m": 99})
    assert decode_cursor(KEY, cursor, query=query) == {"q": query, "k": [10, 5], "m": 99}


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),
        lambda c: "garbage!",
        lambda c: "A" * 600,
        lambda c: base64.urlsafe_b64encode(b"x" * 16 + b"[1,2]").decode(),
        lambda c: "",
    ],
)
def test_tampered_cursors_are_invalid(mangle: object) -> None:
    query = fingerprint({"q": "pog"})
    cursor = encode_cursor(KEY, {"q": query, "k": [1, 1], "m": 1})
    with pytest.raises(BadRequest):
        decode_cursor(KEY, mangle(cursor), query=query)  # type: ignore[operator]


def test_cursor_is_bound_to_key_and_query() -> None:
    query = fingerprint({"q": "pog"})
    cursor = encode_cursor(KEY, {"q": query, "k": [1, 1], "m": 1})
    with pytest.raises(BadRequest):
        decode_cursor(b"another key", cursor, query=query)
    with pytest.raises(BadRequest):
        decode_cursor(KEY, cursor, query=fingerprint({"q": "other"}))


def score(q: str, title: str, views: int = 10, creator: str = "c", channel: str = "ch") -> float:
    return relevance_score(
        parse_terms(q),
        title=title,
        creator_name=creator,
        broadcaster_name=channel,
        view_count=views,
    )


def test_relevance_prefers_title_matches_then_names() -> None:
    exact = score("clutch ", "insane clutch play")
    prefix = score("clut", "insane clutch play")
    in_name = score("clutch ", "insane play", creator="clutch")
    assert exact > prefix > 0
    assert exact > in_name > 0


def test_relevance_phrase_density_and_views() -> None:
    assert score("insane clutch ", "insane clutch x") > score("insane clutch ", "clutch x insane")
    assert score("pog ", "pog") > score("pog ", "pog and many other words here")
    assert score("pog ", "pog", views=10_000) > score("pog ", "pog", views=10)
    assert score("", "anything") == 0.0
    value = score("pog", "pog moment", views=12345)
    assert value == round(value, 6)
