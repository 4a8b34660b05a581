"""A burst of 1,000 new clips for one route, delivered to the Discord simulator.

The figure: elapsed time ÷ the least time Discord's limits allow for the messages sent (a
schedule that sends each message at the earliest moment both the webhook's bucket, 5 per
2 s, and the channel's hidden limit, 30 per 60 s, permit). Also checked: every clip exactly
once, every message within Discord's limits, and the 429s per scope.

Then the scaled setup: the same burst on PostgreSQL + Redis, sent by 2 and by 4
`clipwatch deliveries run` processes at once, all to the one webhook. They share its bucket
through Redis, so the targets are those of one process: at most two 429s in all, time within
1.2 times the limits' minimum (measured from the first message Discord accepted to the last, as
the minimum is: the processes' start-up is not the sender's), every clip exactly once.

Then the same burst again, with `clipwatch deliveries run` killed with SIGKILL halfway and
restarted: every clip must arrive, twice at most for the one message in flight at the kill.

`--forum`: the burst to four routes (each its own webhook and channel, each taking every
clip), a quarter of them (one) a forum route of mode `day` (its first message opens the
day's post, the others reply into it). The least time is the busiest channel's (channels
are limited apart; the global limit, 50 a second, is far); target: within 1.2 times it,
every clip once per route, one forum post.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.common import REDIS_URL, create_database, drop_database, drop_redis_keys
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
from clipwatch.simhttp import LoopbackServer
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


def _burst(clips: int) -> list[Any]:
    fresh = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        parse_line(orjson.dumps({**clip, "created_at": fresh}))
        for clip in World(seed=5, channels=3).clips(clips)
    ]


async def _prepare(url: str, hook: Any, clips: int) -> None:
    """A migrated database with one route to `hook` and a burst of fresh clips for it."""
    engine = create_engine(load_settings(database_url=url, secret_key=KEY.decode()))
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
            await store_batch(session, _burst(clips), notify=True)
    finally:
        await engine.dispose()


def _summary(discord: DiscordSimulator, clips: int) -> dict[str, Any]:
    urls = [e["url"] for r in discord.received for e in r.payload["embeds"]]
    return {
        "clips": clips,
        "delivered": len(urls),
        "unique": len(set(urls)),
        "messages": len(discord.received),
        "invalid": sum(1 for r in discord.received if payload_errors(r.payload)),
        "rate_limited": dict(discord.rate_limited),
    }


def _distinct(discord: DiscordSimulator) -> int:
    return len({e["url"] for r in discord.received for e in r.payload["embeds"]})


@asynccontextmanager
async def _burst_ready(clips: int) -> AsyncIterator[tuple[DiscordSimulator, str, str, str]]:
    """The Discord simulator serving, and a database holding the burst for one route to it:
    (simulator, its base URL, the database URL, a scratch directory)."""
    discord = DiscordSimulator()
    hook = discord.add_webhook()
    server = LoopbackServer(discord)
    base = await server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'd.db'}"
            await _prepare(url, hook, clips)
            yield discord, base, url, tmp
    finally:
        await server.stop()


async def _deliver_until(
    sessionmaker: async_sessionmaker[AsyncSession], sender: WebhookSender, done: Callable[[], bool]
) -> float:
    """Delivery passes in this process until `done()`; the seconds they took."""
    started = time.perf_counter()
    while not done():
        if time.perf_counter() - started > DEADLINE_S:
            raise RuntimeError("the burst was not delivered in time")
        report = await deliver_due(sessionmaker, sender, KEY)
        if report.messages == 0:
            await asyncio.sleep(0.1)  # nothing due yet: the next pass in a moment
    return time.perf_counter() - started


async def run(clips: int) -> dict[str, Any]:
    """The burst delivered by one worker loop in this process: the timed figure."""
    async with _burst_ready(clips) as (discord, base, url, _tmp):
        engine = create_engine(load_settings(database_url=url, secret_key=KEY.decode()))
        sender = WebhookSender(f"{base}/api/v10")
        try:
            sessionmaker = create_sessionmaker(engine)
            elapsed = await _deliver_until(
                sessionmaker, sender, lambda: _distinct(discord) >= clips
            )
        finally:
            await sender.aclose()
            await engine.dispose()
    return {
        **_summary(discord, clips),
        "elapsed_s": elapsed,
        "minimum_s": minimum_seconds(len(discord.received)),
    }


async def run_killed(clips: int) -> dict[str, Any]:
    """The same burst; `clipwatch deliveries run` is killed with SIGKILL halfway, then a
    second one delivers the rest (`--until-empty`)."""
    async with _burst_ready(clips) as (discord, base, url, tmp):
        env = {
            **os.environ,
            "CLIPWATCH_DATABASE_URL": url,
            "CLIPWATCH_SECRET_KEY": KEY.decode(),
            "CLIPWATCH_DISCORD_API_URL": f"{base}/api/v10",
            "CLIPWATCH_DELIVERY_CLAIM_SECONDS": "5",
            "CLIPWATCH_LOG_LEVEL": "warning",
        }
        command = _command()
        first = await asyncio.create_subprocess_exec(*command, env=env, cwd=tmp)
        try:
            halfway = math.ceil(clips / 10) // 2
            deadline = time.monotonic() + DEADLINE_S
            while len(discord.received) < halfway:
                if first.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("the first worker stopped before the kill")
                await asyncio.sleep(0.01)  # polling interval while waiting for the halfway mark
        finally:
            if first.returncode is None:
                first.send_signal(signal.SIGKILL)  # the kill itself, or cleanup on failure
            await first.wait()
        at_kill = len(discord.received)
        second = await asyncio.create_subprocess_exec(*command, "--until-empty", env=env, cwd=tmp)
        await asyncio.wait_for(second.wait(), timeout=DEADLINE_S)
        if second.returncode != 0:
            raise RuntimeError(f"the restarted worker failed ({second.returncode})")
    return {**_summary(discord, clips), "messages_at_kill": at_kill}


def _command() -> list[str]:
    return [str(Path(sys.executable).parent / "clipwatch"), "deliveries", "run"]


async def run_processes(clips: int, workers: int) -> dict[str, Any]:
    """The burst on PostgreSQL + Redis, delivered by `workers` processes at once."""
    name, url = await create_database()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    discord = DiscordSimulator()
    hook = discord.add_webhook()
    server = LoopbackServer(discord)
    base = await server.start()
    try:
        await _prepare(url, hook, clips)
        env = {
            **os.environ,
            "CLIPWATCH_DATABASE_URL": url,
            "CLIPWATCH_SECRET_KEY": KEY.decode(),
            "CLIPWATCH_DISCORD_API_URL": f"{base}/api/v10",
            "CLIPWATCH_REDIS_URL": REDIS_URL,
            "CLIPWATCH_REDIS_KEY_PREFIX": prefix,
            "CLIPWATCH_LOG_LEVEL": "warning",
        }
        with tempfile.TemporaryDirectory() as tmp:
            processes = [
                await asyncio.create_subprocess_exec(
                    *_command(), "--until-empty", env=env, cwd=tmp, stdout=asyncio.subprocess.PIPE
                )
                for _ in range(workers)
            ]
            try:
                outputs = await asyncio.wait_for(
                    asyncio.gather(*(p.communicate() for p in processes)), DEADLINE_S
                )
            finally:
                for process in processes:
                    if process.returncode is None:
                        process.kill()  # cleanup on failure
                        await process.wait()
        if any(p.returncode != 0 for p in processes):
            raise RuntimeError("a delivery process failed")
    finally:
        await server.stop()
        await drop_database(name)
        drop_redis_keys(REDIS_URL, prefix)
    times = [r.at for r in discord.received]
    return {
        **_summary(discord, clips),
        "elapsed_s": max(times) - min(times),
        "minimum_s": minimum_seconds(len(discord.received)),
        "per_process": [int(out.split()[0]) for out, _ in outputs],
    }


async def run_forum(clips: int, routes: int = 4) -> dict[str, Any]:
    """The burst to `routes` routes, each its own channel; the first a forum route (`day`)."""
    discord = DiscordSimulator()
    burst = [
        parse_line(orjson.dumps({**clip, "created_at": _fresh()}))
        for clip in World(seed=5, channels=3).clips(clips)
    ]
    hooks = [discord.add_webhook(f"90000000000000{n:04d}", forum=n == 0) for n in range(routes)]
    server = LoopbackServer(discord)
    base = await server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'f.db'}"
            engine = create_engine(load_settings(database_url=url, secret_key=KEY.decode()))
            sender = WebhookSender(f"{base}/api/v10")
            try:
                await upgrade_database(engine)
                sessionmaker = create_sessionmaker(engine)
                async with session_scope(sessionmaker) as session:
                    user = await service.create_user(session, "bench")
                    for n, hook in enumerate(hooks):
                        session.add(
                            NotificationRoute(
                                user_id=user.id,
                                name=f"burst {n}",
                                webhook_id=hook.id,
                                webhook_token_sealed=seal(KEY, hook.token),
                                filters={},
                                template={"name": "card"},
                                delay_seconds=0,
                                batching=True,
                                enabled=True,
                                forum_mode="day" if n == 0 else None,
                                thread_name="Clips of {{ created_at[:10] }}" if n == 0 else None,
                            )
                        )
                async with session_scope(sessionmaker) as session:
                    await store_batch(session, burst, notify=True)
                elapsed = await _deliver_until(
                    sessionmaker, sender, lambda: sum(1 for _ in _embeds(discord)) >= clips * routes
                )
            finally:
                await sender.aclose()
                await engine.dispose()
    finally:
        await server.stop()
    pairs = list(_embeds(discord))
    per_channel = [sum(1 for r in discord.received if r.webhook_id == h.id) for h in hooks]
    forum = [r for r in discord.received if r.webhook_id == hooks[0].id]
    return {
        "clips": clips * routes,
        "delivered": len(pairs),
        "unique": len(set(pairs)),
        "messages": len(discord.received),
        "invalid": sum(1 for r in discord.received if payload_errors(r.payload)),
        "rate_limited": dict(discord.rate_limited),
        "elapsed_s": elapsed,
        "minimum_s": max(minimum_seconds(m) for m in per_channel),
        "per_channel": per_channel,
        "forum_posts": sum(1 for r in forum if r.payload.get("thread_name")),
        "forum_threads": len({r.thread_id for r in forum}),
    }


def _embeds(discord: DiscordSimulator) -> Iterator[tuple[str, str]]:
    """(webhook, clip URL) of every embed received."""
    for r in discord.received:
        for embed in r.payload["embeds"]:
            yield r.webhook_id, embed["url"]


def _fresh() -> str:
    return (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_forum(r: dict[str, Any]) -> bool:
    ratio = r["elapsed_s"] / r["minimum_s"] if r["minimum_s"] else float("nan")
    exact = r["delivered"] == r["unique"] == r["clips"] and r["invalid"] == 0
    print(
        f"forum variant ({len(r['per_channel'])} routes, one a forum route of mode day): time "
        f"{r['elapsed_s']:.1f} s vs the limits' minimum {r['minimum_s']:.1f} s (the busiest "
        f"channel) → ratio {ratio:.2f} (target ≤ 1.20); messages per channel "
        f"{r['per_channel']}; {r['unique']:,} of {r['clips']:,} (route, clip) pairs, "
        f"{r['delivered'] - r['unique']} twice; forum posts opened {r['forum_posts']} "
        f"(threads {r['forum_threads']}); 429s {r['rate_limited'] or 0}"
    )
    return exact and ratio <= 1.2 and r["forum_posts"] == r["forum_threads"] == 1


def _print_processes(workers: int, r: dict[str, Any], one: dict[str, Any]) -> bool:
    ratio = r["elapsed_s"] / r["minimum_s"] if r["minimum_s"] else float("nan")
    limited = sum(r["rate_limited"].values())
    exact = r["delivered"] == r["unique"] == r["clips"] and r["invalid"] == 0
    print(
        f"{workers} processes (PostgreSQL + Redis): time {r['elapsed_s']:.1f} s vs the limits' "
        f"minimum {r['minimum_s']:.1f} s for {r['messages']} messages → ratio {ratio:.2f} "
        f"(target ≤ 1.20; one process in this run: {one['elapsed_s'] / one['minimum_s']:.2f}); "
        f"429s in all {limited} (target ≤ 2) {r['rate_limited'] or ''}; "
        f"{r['unique']:,} of {r['clips']:,} clips, {r['delivered'] - r['unique']} twice; "
        f"deliveries per process {r['per_process']}"
    )
    return exact and limited <= 2 and ratio <= 1.2


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench delivery", description=__doc__)
    parser.add_argument("--clips", type=int, default=1_000)
    parser.add_argument("--no-kill", dest="kill", action="store_false", help="Skip the kill -9 run")
    parser.add_argument(
        "--forum", action="store_true", help="Only the variant over four routes, one a forum"
    )
    parser.add_argument(
        "--processes",
        default="2,4",
        help="Process counts of the PostgreSQL + Redis runs (comma-separated; empty: none)",
    )
    args = parser.parse_args(argv)
    if args.forum:
        return 0 if _print_forum(asyncio.run(run_forum(args.clips))) else 1
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
    for workers in [int(n) for n in args.processes.split(",") if n.strip()]:
        scaled = asyncio.run(run_processes(args.clips, workers))
        exact = _print_processes(workers, scaled, r) and exact
    if not args.kill:
        return 0 if exact else 1
    k = asyncio.run(run_killed(args.clips))
    duplicates = k["delivered"] - k["unique"]
    print(
        f"kill -9 of `clipwatch deliveries run` after {k['messages_at_kill']} of "
        f"~{math.ceil(args.clips / 10)} messages, then a restart: {k['unique']:,} of "
        f"{k['clips']:,} clips delivered, {duplicates} twice (at most the one message in "
        f"flight: 10); {k['invalid']} messages over Discord's limits; 429s {k['rate_limited'] or 0}"
    )
    survived = k["unique"] == k["clips"] and duplicates <= 10 and k["invalid"] == 0
    return 0 if exact and survived else 1
