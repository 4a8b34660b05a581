"""A burst of 1,000 new clips for one route, delivered to the Discord simulator.

The figure: elapsed time ÷ the least time Discord's limits allow for the messages sent (a
schedule that sends each message at the earliest moment both the webhook's bucket, 5 per
2 s, and the channel's hidden limit, 30 per 60 s, permit). Also checked: every clip exactly
once, every message within Discord's limits, and the 429s per scope.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.common import serve_asgi
from clipwatch.accounts import service
from clipwatch.accounts.secrets import seal
from clipwatch.clips.importer import parse_line, store_batch
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from clipwatch.db.migrate import upgrade_database
from clipwatch.db.models import NotificationRoute
from clipwatch.discord import simulator as discord_limits
from clipwatch.discord.delivery import deliver_due
from clipwatch.discord.sender import WebhookSender
from clipwatch.discord.simulator import DiscordSimulator, payload_errors
from clipwatch.twitch.synthetic import World

KEY = b"bench-delivery"
DEADLINE_S = 900.0


def minimum_seconds(messages: int) -> float:
    """Earliest-feasible schedule under both sliding windows (optimal for such limits)."""
    windows = [
        (discord_limits.WEBHOOK_LIMIT, discord_limits.WEBHOOK_WINDOW, deque[float]()),
        (discord_limits.CHANNEL_LIMIT, discord_limits.CHANNEL_WINDOW, deque[float]()),
    ]
    now = 0.0
    for _ in range(messages):
        for limit, span, sent in windows:
            if len(sent) >= limit:
                now = max(now, sent[-limit] + span)
        for _limit, _span, sent in windows:
            sent.append(now)
    return now


async def run(clips: int) -> dict[str, Any]:
    discord = DiscordSimulator()
    hook = discord.add_webhook()
    server, task, base = await serve_asgi(discord)
    fresh = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [
        parse_line(orjson.dumps({**clip, "created_at": fresh}))
        for clip in World(seed=5, channels=3).clips(clips)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(
            load_settings(database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'd.db'}", secret_key="b")
        )
        sender = WebhookSender(f"{base}/api/v10")
        try:
            await upgrade_database(engine)
            sessionmaker = create_sessionmaker(engine)
            async with session_scope(sessionmaker) as session:
                user = await service.create_user(session, "bench")
                session.add(
                    NotificationRoute(
                        user_id=user.id,
                        name="burst",
                        webhook_id=hook.id,
                        webhook_token_sealed=seal(KEY, hook.token),
                        filters={},
                        template={"name": "card"},
                        delay_seconds=0,
                        batching=True,
                        enabled=True,
                    )
                )
            async with session_scope(sessionmaker) as session:
                await store_batch(session, rows, notify=True)
            started = time.perf_counter()
            while len({e["url"] for r in discord.received for e in r.payload["embeds"]}) < clips:
                if time.perf_counter() - started > DEADLINE_S:
                    raise RuntimeError("the burst was not delivered in time")
                report = await deliver_due(sessionmaker, sender, KEY)
                if report.messages == 0:
                    await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - started
        finally:
            await sender.aclose()
            await engine.dispose()
            server.should_exit = True
            await task
    urls = [e["url"] for r in discord.received for e in r.payload["embeds"]]
    return {
        "clips": clips,
        "delivered": len(urls),
        "unique": len(set(urls)),
        "messages": len(discord.received),
        "invalid": sum(1 for r in discord.received if payload_errors(r.payload)),
        "rate_limited": dict(discord.rate_limited),
        "elapsed_s": elapsed,
        "minimum_s": minimum_seconds(len(discord.received)),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench delivery", description=__doc__)
    parser.add_argument("--clips", type=int, default=1_000)
    args = parser.parse_args(argv)
    r = asyncio.run(run(args.clips))
    ratio = r["elapsed_s"] / r["minimum_s"] if r["minimum_s"] else float("nan")
    print(f"\n=== delivery benchmark: a burst of {r['clips']:,} clips to one route ===")
    print(
        f"time {r['elapsed_s']:.1f} s vs the limits' minimum {r['minimum_s']:.1f} s for "
        f"{r['messages']} messages → ratio {ratio:.2f} (target ≤ 1.20)"
    )
    print(
        f"delivered {r['delivered']:,} embeds, {r['unique']:,} distinct clips; "
        f"{r['invalid']} messages over Discord's limits; 429s by scope {r['rate_limited'] or 0}"
    )
    exact = r["delivered"] == r["unique"] == r["clips"] and r["invalid"] == 0
    return 0 if exact else 1
