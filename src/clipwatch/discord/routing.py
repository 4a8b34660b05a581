"""Which notification routes want a clip: a pure function of the route's filters and the clip."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from clipwatch.db.search import parse_terms


@dataclass(frozen=True)
class ClipFacts:
    """What routing looks at of a clip."""

    broadcaster_id: str
    broadcaster_login: str | None
    game_id: str | None
    language: str
    view_count: int
    title: str
    creator_id: str
    creator_name: str
    is_featured: bool


@dataclass(frozen=True)
class RouteFilters:
    """Empty means "any"; every non-empty filter must pass."""

    channels: frozenset[str] = field(default_factory=frozenset)  # ids or logins
    games: frozenset[str] = field(default_factory=frozenset)  # ids
    languages: frozenset[str] = field(default_factory=frozenset)
    min_views: int = 0
    title_keywords: tuple[str, ...] = ()  # any of them, as whole words (phrases allowed)
    excluded_creators: frozenset[str] = field(default_factory=frozenset)  # ids or names
    featured_only: bool = False


def _words(text: str) -> tuple[str, ...]:
    return parse_terms(text + " ").words if text.strip() else ()


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def route_matches(filters: RouteFilters, clip: ClipFacts) -> bool:
    if filters.channels and not (
        clip.broadcaster_id in filters.channels
        or (clip.broadcaster_login or "").lower() in filters.channels
    ):
        return False
    if filters.games and clip.game_id not in filters.games:
        return False
    if filters.languages and clip.language not in filters.languages:
        return False
    if clip.view_count < filters.min_views:
        return False
    if filters.featured_only and not clip.is_featured:
        return False
    excluded = filters.excluded_creators
    if excluded and (clip.creator_id in excluded or clip.creator_name.lower() in excluded):
        return False
    if filters.title_keywords:
        title = _words(clip.title)
        if not any(_contains(title, _words(k)) for k in filters.title_keywords):
            return False
    return True


def matching_routes(routes: Iterable[tuple[int, RouteFilters]], clip: ClipFacts) -> list[int]:
    """The ids of the routes that want this clip."""
    return [route_id for route_id, filters in routes if route_matches(filters, clip)]
