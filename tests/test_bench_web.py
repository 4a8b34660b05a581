"""bench/web.py at a small size: the searches it asks, and one whole run on SQLite."""

from __future__ import annotations

import random
import re
from collections import Counter
from urllib.parse import parse_qsl, urlsplit

import pytest
from bench import web
from bench.__main__ import BENCHMARKS

KINDS = {
    *(f"{words} word, {sort}" for words in ("common", "rare") for sort in web.SORTS_ASKED),
    "no words (front page)",
    "channel filter",
    "views range",
    "date range",
    "page 2 (cursor)",
}


def test_every_kind_of_search_is_asked_and_none_twice() -> None:
    searches = web.make_searches(300)
    kinds = Counter(s.kind for s in searches)
    assert set(kinds) == KINDS
    assert set(kinds.values()) == {300}
    for kind in KINDS - {"no words (front page)"}:  # the front page has only its sorts
        asked = [tuple(s.params) for s in searches if s.kind == kind]
        assert len(set(asked)) == len(asked), kind


def test_more_searches_than_distinct_common_queries() -> None:
    assert len(web.make_searches(2_000)) == 2_000 * len(KINDS)


def test_page_and_api_ask_the_same_search() -> None:
    for search in web.make_searches(3):
        page, api = urlsplit(search.page()), urlsplit(search.api())
        assert (page.path, api.path) == ("/", "/api/v1/clips")
        assert parse_qsl(api.query) == [*parse_qsl(page.query), ("limit", str(web.PAGE_SIZE))]


def test_common_queries_never_repeat() -> None:
    words = [f"w{n}" for n in range(12)]
    queries = list(web.common_queries(words, random.Random(1)))
    assert len(queries) == len(set(queries)) == 12 + 12 * 11 // 2
    assert set(words) <= set(queries)


def test_registered_in_make_bench() -> None:
    assert BENCHMARKS["web"] is web.main


@pytest.mark.slow
def test_a_small_run_prints_both_modes(capsys: pytest.CaptureFixture[str]) -> None:
    assert web.main(["--clips", "3000", "--database", "sqlite", "--requests", "2"]) == 0
    out = capsys.readouterr().out
    assert "uncached: 22 searches" in out
    assert re.search(r"uncached: .*cache hit ratio 0%", out)
    assert re.search(r"\ncached: .*cache hit ratio 100%", out)
    for mode in ("uncached", "cached"):
        section = out.split(f"\n{mode}:")[1]
        assert re.search(r"page  GET /\?…\s+[\d.]+\s+[\d.]+\s+[\d.]+", section)
        assert re.search(r"API   GET /api/v1/clips\s+[\d.]+\s+[\d.]+\s+[\d.]+", section)
        assert re.search(r"page/API p95 ratio [\d.]+", section)
    weight = re.search(r"a 24-card page: ([\d,]+) bytes .*/static/site.css [\d,]+", out)
    assert weight is not None
    assert 10_000 < int(weight[1].replace(",", "")) < web.WEIGHT_TARGET
