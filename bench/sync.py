"""Backfill one channel from the Twitch simulator at the real budget (800 points a minute).

The figure: elapsed time ÷ the least time the budget allows for the requests made
(requests beyond the bucket's initial 800, at 800 a minute). Context: requests made ÷ the
fewest that could return the channel's clips (100 a page).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker
from clipwatch.db.migrate import upgrade_database
from clipwatch.simhttp import LoopbackServer
from clipwatch.twitch import sync
from clipwatch.twitch.client import HelixClient
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET, TwitchSimulator

POINTS_PER_MINUTE = 800


async def run(clips: int, hot_days: int) -> dict[str, Any]:
    twitch = TwitchSimulator(seed=3, points_per_minute=POINTS_PER_MINUTE)
    channel = twitch.add_channel("benchstreamer", clips=clips, hot_days=hot_days)
    server = LoopbackServer(twitch)
    base = await server.start()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'sync.db'}"
        engine = create_engine(load_settings(database_url=url, secret_key="bench"))
        try:
            await upgrade_database(engine)
            sessionmaker = create_sessionmaker(engine)
            async with HelixClient(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                api_url=f"{base}/helix",
                auth_url=f"{base}/oauth2",
            ) as client:
                await sync.add_channels(client, sessionmaker, ["benchstreamer"])
                started = time.perf_counter()
                report = await sync.sync_all(client, sessionmaker, backfill=True)
                elapsed = time.perf_counter() - started
                requests = client.stats.requests
        finally:
            await engine.dispose()
            await server.stop()
    truth = len(twitch.visible_clips(channel.id))
    minimum = max(0, requests - POINTS_PER_MINUTE) / (POINTS_PER_MINUTE / 60)
    return {
        "clips": truth,
        "stored": report.inserted,
        "requests": requests,
        "fewest_requests": math.ceil(truth / 100),
        "rate_limited": twitch.rate_limited,
        "elapsed_s": elapsed,
        "minimum_s": minimum,
        "splits": report.splits,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sync", description=__doc__)
    parser.add_argument("--clips", type=int, default=80_000)
    parser.add_argument("--hot-days", type=int, default=12)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.clips, args.hot_days))
    ratio = result["elapsed_s"] / result["minimum_s"] if result["minimum_s"] else float("nan")
    print(f"\n=== sync benchmark: backfill of {result['clips']:,} clips at 800 points/min ===")
    print(
        f"time {result['elapsed_s']:.1f} s vs the budget's minimum {result['minimum_s']:.1f} s "
        f"for {result['requests']:,} requests → ratio {ratio:.2f} (target ≤ 1.15)"
    )
    print(
        f"requests {result['requests']:,} vs {result['fewest_requests']:,} pages at the least "
        f"({result['requests'] / result['fewest_requests']:.2f}x; {result['splits']} window "
        f"splits); 429s {result['rate_limited']}; stored {result['stored']:,}"
    )
    if result["stored"] != result["clips"]:
        print("INCOMPLETE: stored differs from the simulator's truth")
        return 1
    return 0
