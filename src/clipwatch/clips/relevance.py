"""Relevance: how well a clip answers the typed words, with its popularity as a tiebreaker.

A pure function over a clip's text and views. It runs on a bounded candidate set (the most
viewed matches), never the whole archive, so its cost does not grow with popular words.
"""

from __future__ import annotations

import math
import re

from clipwatch.db.search import Terms

_TOKEN = re.compile(r"[^\W_]+")

TITLE_EXACT = 3.0
TITLE_PREFIX = 2.0
NAME_EXACT = 1.5
NAME_PREFIX = 1.0
PHRASE_BONUS = 1.0
DENSITY_WEIGHT = 0.5
POPULARITY_WEIGHT = 0.25


def _tokens(value: str) -> list[str]:
    return _TOKEN.findall(value.lower())


def _term_score(term: str, prefix: bool, title: list[str], names: list[str]) -> float:
    if term in title:
        return TITLE_EXACT
    if prefix and any(t.startswith(term) for t in title):
        return TITLE_PREFIX
    if term in names:
        return NAME_EXACT
    if prefix and any(t.startswith(term) for t in names):
        return NAME_PREFIX
    return 0.0


def relevance_score(
    terms: Terms, *, title: str, creator_name: str, broadcaster_name: str, view_count: int
) -> float:
    """Higher is better; rounded so that it survives a trip through a cursor unchanged."""
    if not terms:
        return 0.0
    title_tokens = _tokens(title)
    names = _tokens(creator_name) + _tokens(broadcaster_name)
    last = len(terms.words) - 1
    text_score = sum(
        _term_score(word, terms.last_is_prefix and i == last, title_tokens, names)
        for i, word in enumerate(terms.words)
    ) / len(terms.words)
    if len(terms.words) > 1 and " ".join(terms.words) in " ".join(title_tokens):
        text_score += PHRASE_BONUS
    text_score += DENSITY_WEIGHT * min(1.0, len(terms.words) / max(len(title_tokens), 1))
    popularity = POPULARITY_WEIGHT * math.log10(1 + max(view_count, 0))
    return round(text_score + popularity, 6)
