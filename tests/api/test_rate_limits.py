"""Rate limits: per IP, per token, per user; shared through Redis; surviving its death."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from tests.api.test_accounts import bearer, make_user
from tests.conftest import RedisServer, app_client

RECOVERY_DEADLINE_S = 30.0


def limited(settings: Settings, redis_url: str, prefix: str, **limits: str) -> Settings:
    return settings.model_copy(
        update={"redis_url": redis_url, "redis_key_prefix": prefix, **limits}
    )


async def statuses(client: httpx.AsyncClient, count: int, **kwargs: object) -> list[int]:
    return [(await client.get("/api/v1/clips", **kwargs)).status_code for _ in range(count)]  # type: ignore[arg-type]


async def test_anonymous_calls_are_limited_per_ip_with_headers(
    settings: Settings, engine: object, redis_url: str, redis_prefix: str
) -> None:
    config = limited(settings, redis_url, redis_prefix, rate_limit_anonymous="3/minute")
    async with app_client(config) as one, app_client(config, client_ip="10.0.0.2") as other:
        remaining = []
        for _ in range(3):
            answer = await one.get("/api/v1/clips")
            assert answer.status_code == 200
            assert answer.headers["ratelimit-limit"] == "3"
            assert 0 < int(answer.headers["ratelimit-reset"]) <= 60
            remaining.append(answer.headers["ratelimit-remaining"])
        assert remaining == ["2", "1", "0"]
        refused = await one.get("/api/v1/clips")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-remaining"] == "0"
        # Another address has its own count.
        assert await statuses(other, 3) == [200, 200, 200]
        # Liveness is never limited.
        assert (await one.get("/healthz")).status_code == 200


async def test_tokens_and_users_have_their_own_limits(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis_url: str,
    redis_prefix: str,
) -> None:
    _, first = await make_user(sessionmaker, "alice")
    async with session_scope(sessionmaker) as session:
        alice = await service.user_by_name(session, "alice")
        _, second = await service.create_token(
            session, alice, name="second", scopes=frozenset({"read"})
        )
    _, bobs = await make_user(sessionmaker, "bob")
    config = limited(
        settings,
        redis_url,
        redis_prefix,
        rate_limit_token="2/minute",
        rate_limit_user="3/minute",
        rate_limit_anonymous="1/minute",
    )
    async with app_client(config) as client:
        assert await statuses(client, 2, headers=bearer(first)) == [200, 200]
        # The second token has its own count, but alice as a user has 3 requests a minute.
        assert (await client.get("/api/v1/clips", headers=bearer(second))).status_code == 200
        refused = await client.get("/api/v1/clips", headers=bearer(second))
        assert refused.status_code == 429
        assert refused.headers["ratelimit-limit"] == "3"
        # Bob's token: its own limit of 2.
        assert await statuses(client, 2, headers=bearer(bobs)) == [200, 200]
        refused = await client.get("/api/v1/clips", headers=bearer(bobs))
        assert refused.status_code == 429
        assert refused.headers["ratelimit-limit"] == "2"
        # Anonymous calls from the same address are counted apart from the tokens.
        assert await statuses(client, 2) == [200, 429]


async def test_failed_credentials_use_the_strict_auth_limit(
    settings: Settings, engine: object, redis_url: str, redis_prefix: str
) -> None:
    config = limited(settings, redis_url, redis_prefix, rate_limit_auth="2/minute")
    async with app_client(config) as client:
        codes = await statuses(client, 3, headers=bearer("cw_aaaaaaaa_" + "x" * 43))
        assert codes == [401, 401, 429]


async def test_two_app_instances_share_counts_through_redis(
    settings: Settings, engine: object, redis_url: str, redis_prefix: str
) -> None:
    config = limited(settings, redis_url, redis_prefix, rate_limit_anonymous="4/minute")
    async with app_client(config) as one, app_client(config) as two:
        codes = [
            (await client.get("/api/v1/clips")).status_code for client in (one, two, one, two, one)
        ]
        assert codes == [200, 200, 200, 200, 429]
        assert (await two.get("/api/v1/clips")).status_code == 429


async def test_without_redis_each_process_counts_alone(settings: Settings, engine: object) -> None:
    config = settings.model_copy(update={"redis_url": "", "rate_limit_anonymous": "2/minute"})
    async with app_client(config) as one, app_client(config) as two:
        assert await _limiter_backend(one) == "memory"  # the first of one's two requests
        assert await statuses(one, 2) == [200, 429]
        assert await statuses(two, 3) == [200, 200, 429]


async def _limiter_backend(client: httpx.AsyncClient) -> str:
    answer = await client.get("/api/v1/status")
    assert answer.status_code == 200, answer.text
    backend: str = answer.json()["rate_limiter"]
    return backend


@pytest.fixture
async def two_apps_on_own_redis(
    settings: Settings, engine: object, redis_server: RedisServer
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    config = limited(settings, redis_server.url, "killtest", rate_limit_anonymous="100000/minute")
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(app_client(config))
        two = await stack.enter_async_context(app_client(config))
        yield one, two


async def test_redis_dying_mid_traffic_fails_no_request(
    two_apps_on_own_redis: tuple[httpx.AsyncClient, httpx.AsyncClient],
    redis_server: RedisServer,
) -> None:
    one, two = two_apps_on_own_redis
    assert await _limiter_backend(one) == "redis"
    results: list[int] = []
    killed = asyncio.Event()

    async def traffic(client: httpx.AsyncClient) -> None:
        # Keep requesting until Redis has been dead for a while (bounded by count).
        after_kill = 0
        for _ in range(2_000):
            results.append((await client.get("/api/v1/clips")).status_code)
            if killed.is_set():
                after_kill += 1
                if after_kill >= 40:
                    return

    async def killer() -> None:
        deadline = time.monotonic() + RECOVERY_DEADLINE_S
        while len(results) < 60:  # wait on traffic flowing through Redis first
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        redis_server.stop()
        killed.set()

    await asyncio.gather(traffic(one), traffic(two), killer())
    assert len(results) >= 140
    assert set(results) == {200}, [code for code in results if code != 200]
    assert await _limiter_backend(one) == "memory (redis unavailable)"
    assert await _limiter_backend(two) == "memory (redis unavailable)"

    # Redis comes back on the same port: both processes share counts again by themselves.
    redis_server.start()
    deadline = time.monotonic() + RECOVERY_DEADLINE_S
    while {await _limiter_backend(one), await _limiter_backend(two)} != {"redis"}:
        assert time.monotonic() < deadline, "the limiter did not go back to Redis"
        await asyncio.sleep(0.2)  # polling interval while waiting on the condition above
    first = await one.get("/api/v1/clips")
    second = await two.get("/api/v1/clips")
    assert (
        int(second.headers["ratelimit-remaining"]) == int(first.headers["ratelimit-remaining"]) - 1
    )
