"""Route matching is a pure function: each filter, and their combination."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clipwatch.discord.routing import ClipFacts, RouteFilters, matching_routes, route_matches

CLIP = ClipFacts(
    broadcaster_id="1001",
    broadcaster_login="alphastreams",
    game_id="33214",
    language="en",
    view_count=250,
    title="Insane CLUTCH play, world record!",
    creator_id="7001",
    creator_name="ClipperOne",
    is_featured=False,
)


@pytest.mark.parametrize(
    ("filters", "wanted"),
    [
        (RouteFilters(), True),
        (RouteFilters(channels=frozenset({"1001"})), True),
        (RouteFilters(channels=frozenset({"alphastreams"})), True),
        (RouteFilters(channels=frozenset({"other"})), False),
        (RouteFilters(games=frozenset({"33214", "1"})), True),
        (RouteFilters(games=frozenset({"1"})), False),
        (RouteFilters(languages=frozenset({"de"})), False),
        (RouteFilters(min_views=250), True),
        (RouteFilters(min_views=251), False),
        (RouteFilters(title_keywords=("clutch",)), True),
        (RouteFilters(title_keywords=("world record",)), True),
        (RouteFilters(title_keywords=("record world",)), False),
        (RouteFilters(title_keywords=("clut",)), False),  # whole words only
        (RouteFilters(title_keywords=("fail", "play")), True),  # any of them
        (RouteFilters(excluded_creators=frozenset({"clipperone"})), False),
        (RouteFilters(excluded_creators=frozenset({"7001"})), False),
        (RouteFilters(excluded_creators=frozenset({"someoneelse"})), True),
        (RouteFilters(featured_only=True), False),
        (RouteFilters(channels=frozenset({"1001"}), min_views=1000), False),
    ],
)
def test_each_filter(filters: RouteFilters, wanted: bool) -> None:
    assert route_matches(filters, CLIP) is wanted


def test_featured_and_several_routes() -> None:
    featured = replace(CLIP, is_featured=True)
    routes = [
        (1, RouteFilters(featured_only=True)),
        (2, RouteFilters(min_views=1)),
        (3, RouteFilters(games=frozenset({"9"}))),
    ]
    assert matching_routes(routes, featured) == [1, 2]
    assert matching_routes(routes, CLIP) == [2]
