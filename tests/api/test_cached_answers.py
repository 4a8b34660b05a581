"""Cached answers through the API, on both databases: ETags, 304s, invalidation by writes,
per-channel generations, personal answers left out, channel stats kept hot."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.cache.manager import CacheManager
from clipwatch.clips.stats import hot_key, refresh_hot_stats
from clipwatch.db.engine import session_scope
from tests.factories import helix_clip, store_clips

ALPHA = {"broadcaster_id": "1001", "broadcaster_name": "AlphaStreams"}
BETA = {"broadcaster_id": "1002", "broadcaster_name": "BetaGaming"}


async def seeded(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await store_clips(
        sessionmaker,
        [helix_clip(id=f"Alpha{i}", view_count=100 + i, **ALPHA) for i in range(3)]
        + [helix_clip(id=f"Beta{i}", view_count=10 + i, **BETA) for i in range(2)],
    )


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [c["id"] for c in answer.json()["data"]]


async def test_second_answer_is_the_cached_bytes_with_an_etag(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seeded(sessionmaker)
    first = await client.get("/api/v1/clips", params={"sort": "views"})
    second = await client.get("/api/v1/clips", params={"sort": "views"})
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert ids(second) == ["Alpha2", "Alpha1", "Alpha0", "Beta1", "Beta0"]
    # Served by the layer in front of the app, its headers are the app's headers too.
    for name in ("ratelimit-limit", "x-content-type-options", "content-security-policy"):
        assert name in second.headers


async def test_parameter_order_does_not_matter(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seeded(sessionmaker)
    await client.get("/api/v1/clips?sort=views&limit=2")
    again = await client.get("/api/v1/clips?limit=2&sort=views")
    assert again.headers["x-cache"] == "hit"
    assert ids(again) == ["Alpha2", "Alpha1"]


async def test_if_none_match_gets_304(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seeded(sessionmaker)
    first = await client.get("/api/v1/clips/Alpha1")
    tag = first.headers["etag"]
    for _ in range(2):  # computed (handler) and then cached (front layer): both answer 304
        answer = await client.get("/api/v1/clips/Alpha1", headers={"If-None-Match": tag})
        assert answer.status_code == 304
        assert answer.content == b""
        assert answer.headers["etag"] == tag
    other = await client.get("/api/v1/clips/Alpha1", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200
    assert other.json()["id"] == "Alpha1"


async def test_a_write_shows_at_once_in_this_process(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seeded(sessionmaker)
    before = await client.get("/api/v1/clips", params={"sort": "views"})
    await store_clips(sessionmaker, [helix_clip(id="Newest", view_count=10_000, **BETA)])
    after = await client.get("/api/v1/clips", params={"sort": "views"})
    assert after.headers["x-cache"] == "miss"
    assert ids(after)[0] == "Newest"
    assert after.headers["etag"] != before.headers["etag"]
    # An updated view count is a write too.
    await store_clips(sessionmaker, [helix_clip(id="Alpha0", view_count=50_000, **ALPHA)])
    assert ids(await client.get("/api/v1/clips", params={"sort": "views"}))[0] == "Alpha0"
    clip = await client.get("/api/v1/clips/Alpha0")
    assert clip.json()["view_count"] == 50_000


async def test_a_channel_answer_survives_writes_to_other_channels(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seeded(sessionmaker)
    query = {"broadcaster": "alphastreams", "sort": "views"}
    await client.get("/api/v1/clips", params=query)
    await store_clips(sessionmaker, [helix_clip(id="BetaNew", **BETA)])
    kept = await client.get("/api/v1/clips", params=query)
    assert kept.headers["x-cache"] == "hit"
    everything = await client.get("/api/v1/clips", params={"sort": "views"})
    assert "BetaNew" in ids(everything)
    await store_clips(sessionmaker, [helix_clip(id="AlphaNew", view_count=999, **ALPHA)])
    fresh = await client.get("/api/v1/clips", params=query)
    assert fresh.headers["x-cache"] == "miss"
    assert ids(fresh)[0] == "AlphaNew"


async def test_errors_are_not_cached(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert (await client.get("/api/v1/clips/Later")).status_code == 404
    await store_clips(sessionmaker, [helix_clip(id="Later", **ALPHA)])
    assert (await client.get("/api/v1/clips/Later")).status_code == 200
    assert (await client.get("/api/v1/clips", params={"limit": 0})).status_code == 422


async def test_credentials_are_checked_before_any_cached_answer(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seeded(sessionmaker)
    async with session_scope(sessionmaker) as session:
        user = await service.create_user(session, "reader")
        _, token = await service.create_token(session, user, name="t", scopes=frozenset({"read"}))
    warm = await client.get("/api/v1/clips")
    assert warm.status_code == 200
    bad = await client.get("/api/v1/clips", headers={"Authorization": "Bearer cw_wrong"})
    assert bad.status_code == 401
    good = await client.get("/api/v1/clips", headers={"Authorization": f"Bearer {token}"})
    assert good.headers["x-cache"] == "hit"  # the same answer, after the token was checked
    assert good.content == warm.content


async def test_a_feed_is_never_shared(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seeded(sessionmaker)
    tokens: dict[str, str] = {}
    async with session_scope(sessionmaker) as session:
        for name in ("ann", "bob"):
            user = await service.create_user(session, name)
            _, tokens[name] = await service.create_token(
                session, user, name="t", scopes=frozenset({"read", "write"})
            )
    prefs = {"ann": ["alphastreams"], "bob": ["betagaming"]}
    for name, channels in prefs.items():
        answer = await client.put(
            "/api/v1/me/preferences",
            json={"channels": channels},
            headers={"Authorization": f"Bearer {tokens[name]}"},
        )
        assert answer.status_code == 200, answer.text
    feeds: dict[str, Any] = {}
    for name in ("ann", "bob"):
        answer = await client.get(
            "/api/v1/clips",
            params={"feed": "mine"},
            headers={"Authorization": f"Bearer {tokens[name]}"},
        )
        assert answer.headers["cache-control"] == "private"
        feeds[name] = {c["broadcaster_id"] for c in answer.json()["data"]}
    assert feeds == {"ann": {"1001"}, "bob": {"1002"}}


async def test_channel_stats_are_kept_hot(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    cache: CacheManager,
) -> None:
    await seeded(sessionmaker)
    refreshed = await refresh_hot_stats(cache, sessionmaker, ["1001", "1002"], ttl=600)
    assert refreshed == 10  # five periods for each of two channels
    assert cache.holds(hot_key("1001", "all"))
    misses = cache.stats.misses
    answer = await client.get("/api/v1/channels/alphastreams/stats", params={"period": "all"})
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    assert cache.stats.misses == misses + 1  # the answer itself; the numbers were hot
    assert stats["clips"] == 3
    assert stats["views"] == 100 + 101 + 102
    assert [c["id"] for c in stats["top_clips"]] == ["Alpha2", "Alpha1", "Alpha0"]
    assert stats["top_creators"][0]["clips"] == 3
    assert sum(d["clips"] for d in stats["per_day"]) == 3
    # A sync's write outdates the hot copy; the worker's next refresh recomputes only that.
    await store_clips(sessionmaker, [helix_clip(id="Alpha9", view_count=7, **ALPHA)])
    assert not cache.holds(hot_key("1001", "all"))
    assert cache.holds(hot_key("1002", "all"))
    assert await refresh_hot_stats(cache, sessionmaker, ["1001", "1002"], ttl=600) == 5
    again = await client.get("/api/v1/channels/1001/stats", params={"period": "all"})
    assert again.json()["clips"] == 4
    missing = await client.get("/api/v1/channels/nobody/stats")
    assert missing.status_code == 404
    bad = await client.get("/api/v1/channels/alphastreams/stats", params={"period": "decade"})
    assert bad.status_code == 422


async def test_status_reports_the_cache(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await seeded(sessionmaker)
    for _ in range(3):
        await client.get("/api/v1/clips")
    cache = (await client.get("/api/v1/status")).json()["cache"]
    assert cache["mode"] == "memory"
    assert cache["hits"] >= 2
    assert cache["entries"] >= 1
    assert 0 < cache["hit_ratio"] <= 1
