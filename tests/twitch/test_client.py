"""The Helix client survives every fault the simulator can throw, with the right outcome."""

from __future__ import annotations

import time

import pytest

from clipwatch.twitch.client import Budget, TwitchAuthError, TwitchError
from tests.twitch.conftest import Sim


async def _users(sim: Sim, **client_options: object) -> tuple[list[dict[str, object]], object]:
    channel = sim.twitch.channels.get("70000000") or sim.twitch.add_channel("someone")
    async with sim.client(**client_options) as client:
        users = await client.get_users([channel.login])
        return users, client.stats


@pytest.mark.parametrize("mode", ["5xx", "drop", "malformed"])
async def test_transient_faults_are_retried(sim: Sim, mode: str) -> None:
    sim.twitch.add_fault(mode, count=2)
    users, stats = await _users(sim)
    assert [u["login"] for u in users] == ["someone"]
    assert stats.retries == 2  # type: ignore[attr-defined]


async def test_slow_answers_time_out_and_are_retried(sim: Sim) -> None:
    sim.twitch.add_fault("slow", count=1, seconds=2.0)
    started = time.monotonic()
    users, stats = await _users(sim, timeout=0.3)
    assert len(users) == 1
    assert stats.retries == 1  # type: ignore[attr-defined]
    assert time.monotonic() - started < 2.0  # it did not wait for the slow answer


async def test_429_without_headers_waits_and_is_not_a_failure(sim: Sim) -> None:
    sim.twitch.add_fault("429_no_headers", count=3)
    users, stats = await _users(sim, max_attempts=2)
    assert len(users) == 1
    assert stats.rate_limited == 3  # type: ignore[attr-defined]
    assert stats.retries == 0  # type: ignore[attr-defined]


async def test_expired_token_is_renewed_once(sim: Sim) -> None:
    channel = sim.twitch.add_channel("someone")
    async with sim.client() as client:
        await client.start()
        sim.twitch.expire_tokens()
        users = await client.get_users([channel.login])
        assert len(users) == 1
        assert client.stats.token_renewals == 1


async def test_a_token_that_keeps_failing_stops_with_an_auth_error(sim: Sim) -> None:
    async with sim.client() as client:
        await client.start()
        sim.twitch.token_lifetime = 0  # every new token is born expired
        sim.twitch.expire_tokens()
        with pytest.raises(TwitchAuthError):
            await client.get_users(["someone"])


async def test_persistent_failure_gives_up_with_one_error(sim: Sim) -> None:
    sim.twitch.add_fault("5xx", count=50)
    with pytest.raises(TwitchError, match="kept failing"):
        await _users(sim, max_attempts=3)


async def test_the_budget_waits_before_the_bucket_runs_dry(sim: Sim) -> None:
    sim.twitch.bucket.limit = 10
    sim.twitch.bucket.period = 1.0  # 10 points a second
    sim.twitch.bucket.points = 10
    channel = sim.twitch.add_channel("someone")
    async with sim.client() as client:
        for _ in range(30):
            await client.get_users([channel.login])
        assert client.budget.waited > 0
    assert sim.twitch.rate_limited == 0


def test_budget_tolerates_missing_headers() -> None:
    import httpx

    budget = Budget()
    budget.update(httpx.Headers({}))
    assert budget.delay_before_request() == 0.0
    budget.update(
        httpx.Headers(
            {"Ratelimit-Limit": "800", "Ratelimit-Remaining": "1", "Ratelimit-Reset": "2000000000"}
        )
    )
    assert 0 < budget.delay_before_request(now=1_999_999_990) <= 10
