"""CLIPWATCH_TRUSTED_PROXIES, on both databases: behind a trusted proxy each forwarded client
has its own anonymous rate limit; a proxy not trusted (or none configured) is one client; a
bad entry is refused at start."""

from __future__ import annotations

import httpx
import pytest

from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings, load_settings
from clipwatch.errors import ConfigError
from tests.conftest import app_client

LIMIT = "3/minute"


async def statuses(http: httpx.AsyncClient, forwarded_for: str, count: int) -> list[int]:
    headers = {"X-Forwarded-For": forwarded_for}
    return [(await http.get("/api/v1/clips", headers=headers)).status_code for _ in range(count)]


@pytest.mark.parametrize(
    ("trusted", "separate"),
    [
        ("127.0.0.1", True),
        ("10.0.0.0/8, 127.0.0.0/8", True),
        ("*", True),
        ("10.0.0.1", False),
        ("", False),
    ],
)
async def test_forwarded_clients_are_counted_apart_only_behind_a_trusted_proxy(
    settings: Settings, cache: CacheManager, trusted: str, separate: bool
) -> None:
    behind = settings.model_copy(update={"rate_limit_anonymous": LIMIT, "trusted_proxies": trusted})
    async with app_client(behind, cache=cache) as http:  # the proxy is 127.0.0.1
        assert await statuses(http, "203.0.113.7", 4) == [200, 200, 200, 429]
        other = await statuses(http, "198.51.100.9", 1)
        assert other == ([200] if separate else [429])


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.0/33", "1.2.3", "*.example.com"])
def test_an_entry_that_is_no_address_is_refused(entry: str) -> None:
    with pytest.raises(ConfigError, match=r"CLIPWATCH_TRUSTED_PROXIES: .* is not an address"):
        load_settings(trusted_proxies=entry)
