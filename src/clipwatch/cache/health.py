"""Is Redis there? Redis is an accelerator: its state is reported, never required."""

from __future__ import annotations

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

PING_TIMEOUT = 0.5


async def redis_state(url: str) -> str:
    if not url:
        return "not configured"
    client = redis_asyncio.from_url(
        url, socket_timeout=PING_TIMEOUT, socket_connect_timeout=PING_TIMEOUT
    )
    try:
        await client.ping()
        return "ok"
    except (RedisError, OSError):
        return "down"
    finally:
        await client.aclose()
