from __future__ import annotations

import pytest

from clipwatch.db.search import parse_terms, row_matches


@pytest.mark.parametrize(
    ("query", "words", "prefix"),
    [
        ("Pogg", ("pogg",), True),
        ("insane CLUTCH play", ("insane", "clutch", "play"), True),
        ("pog ", ("pog",), False),
        ("a", ("a",), False),
        ("foo_bar-baz!!", ("foo", "bar", "baz"), True),
        ("pog pog POG", ("pog",), True),
        ("日本語 テスト", ("日本語", "テスト"), True),
        ("Pokémon", ("pokémon",), True),
        ("!!! ???", (), False),
        ("", (), False),
        ("one two three four five six seven eight nine ten", 8, True),
    ],
)
def test_parse_terms(query: str, words: tuple[str, ...] | int, prefix: bool) -> None:
    terms = parse_terms(query)
    if isinstance(words, int):
        assert len(terms.words) == words
    else:
        assert terms.words == words
    assert terms.last_is_prefix is prefix


def test_query_strings_for_both_indexes() -> None:
    terms = parse_terms("insane clut")
    assert terms.tsquery() == "insane & clut:*"
    assert terms.fts5_match() == '"insane" "clut"*'
    assert terms.spec() == "insane clut*"
    exact = parse_terms("insane clutch ")
    assert exact.tsquery() == "insane & clutch"
    assert exact.fts5_match() == '"insane" "clutch"'


@pytest.mark.parametrize(
    ("spec", "title", "creator", "channel", "expected"),
    [
        ("pogg*", "POGGERS moment", "x", "y", 1),
        ("pogg", "POGGERS moment", "x", "y", 0),
        ("moment pogg*", "poggers moment", "x", "y", 1),
        ("moment pogg*", "poggers", "x", "y", 0),
        ("clipper", "a title", "Clipper", "chan", 1),
        ("chan*", "a title", "someone", "ChannelTV", 1),
        ("x", None, None, None, 0),
    ],
)
def test_row_matches_agrees_with_the_index_tokenizer(
    spec: str, title: str | None, creator: str | None, channel: str | None, expected: int
) -> None:
    assert row_matches(spec, title, creator, channel) == expected
