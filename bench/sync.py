"""Sync against the Twitch simulator at the real budget (800 points a minute).

python -m bench sync [--only backfill|cadence] [--channels 500 --live 20 --compress 10]

- Backfill of one channel (200,000 clips, 30 days of them over the 1,000 a query yields).
  Figures: requests made ÷ the fewest that could return the channel's clips (100 a page),
  target ≤ 1.2; elapsed time ÷ the least time the budget allows for the requests made
  (requests beyond the bucket's initial 800, at 800 a minute), target ≤ 1.15.
- The adaptive cadence (twitch/cadence.py): 500 channels, 20 of them live and gaining clips
  all the time, 2 new ones with a history to backfill. For each live channel's clip, the
  delay from its appearance on Twitch (its `created_at` + the simulator's appear delay) to
  being stored; p95 against the baseline measured in the same run on the same world: the
  old worker's fixed 300 s passes. Points a minute counted by the simulator (every Helix
  request it answered), busiest minute and mean.
  Time is compressed `--compress` times (cadences, appear delay, the bucket's refill period
  and the baseline's interval alike; requests and database work are not, which only makes
  the compressed figures worse); delays are printed in uncompressed seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from bench.common import percentile
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from clipwatch.db.migrate import upgrade_database
from clipwatch.db.models import ChannelSync, Clip
from clipwatch.monitoring.logging import configure_logging
from clipwatch.runtime.sync_loop import cadence_forever
from clipwatch.runtime.worker import WorkerStats, sync_forever
from clipwatch.simhttp import LoopbackServer
from clipwatch.twitch import cadence, live, sync
from clipwatch.twitch.client import HelixClient
from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET, TwitchSimulator

POINTS_PER_MINUTE = 800
PAGES_TARGET = 1.2  # requests ÷ the fewest pages the clips fill


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


# --- the adaptive cadence with 500 channels -------------------------------------------------

BASELINE_INTERVAL_S = 300.0  # the old worker's fixed pass interval
LIVE_EVERY_S = 60.0
OFFLINE_EVERY_S = 900.0
APPEAR_DELAY_S = 120.0  # the simulator's default: clips show some minutes after created_at
CLIP_EVERY_S = 60.0  # each live channel gains a clip about this often (exponential gaps)


@dataclass
class CadenceRun:
    mode: str  # "baseline" or "cadence"
    delays: list[float]  # uncompressed seconds, sorted
    missing: int  # clips never stored before the run ended
    busiest_minute: int  # points in the busiest (uncompressed) minute
    mean_per_minute: float
    rate_limited: int
    requests: int
    backfilled: int  # clips of the backfilling channels stored by the end
    failed: int  # passes or ticks that failed (and were tried again)
    backfill_truth: int


async def run_cadence(
    mode: str,
    channels: int,
    live_count: int,
    compress: float,
    sim_minutes: float,
    backfilling: int,
    backfill_clips: int,
) -> CadenceRun:
    """One world, synced the old way ("baseline") or on the adaptive cadence."""
    k = compress
    minute_s = 60.0 / k
    twitch = TwitchSimulator(
        seed=13,
        points_per_minute=POINTS_PER_MINUTE,
        bucket_period=minute_s,
        appear_delay=timedelta(seconds=APPEAR_DELAY_S / k),
    )
    # The last `backfilling` channels are new to the archive with a history to backfill.
    world = [
        twitch.add_channel(f"chan{i:03}", years=0.1)
        if i < channels - backfilling
        else twitch.add_channel(f"chan{i:03}", clips=backfill_clips, years=2)
        for i in range(channels)
    ]
    history = world[channels - backfilling :]
    onair = world[: channels - backfilling : max(1, channels // live_count)][:live_count]
    server = LoopbackServer(twitch)
    base = await server.start()
    appeared: dict[str, datetime] = {}
    samples: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'cadence.db'}"
        settings = load_settings(database_url=url, secret_key="bench")
        engine = create_engine(settings)
        try:
            await upgrade_database(engine)
            sessionmaker = create_sessionmaker(engine)
            async with HelixClient(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                api_url=f"{base}/helix",
                auth_url=f"{base}/oauth2",
            ) as client:
                await sync.add_channels(client, sessionmaker, [c.login for c in world])
                settled = world[: channels - backfilling]
                await _steady_state(sessionmaker, [c.id for c in settled], OFFLINE_EVERY_S / k)
                for channel in onair:
                    await live.went_online(
                        sessionmaker,
                        channel.id,
                        stream_id=f"stream{channel.id}",
                        started_at=datetime.now(UTC) - timedelta(minutes=5),
                        stream_type="live",
                        source="poll",
                    )
                stop = asyncio.Event()
                stats = WorkerStats()
                state = stats.supervisor.task("sync")
                if mode == "baseline":
                    worker = sync_forever(
                        client, sessionmaker, stop, stats, state, interval=BASELINE_INTERVAL_S / k
                    )
                else:
                    policy = cadence.CadencePolicy(
                        live_every=timedelta(seconds=LIVE_EVERY_S / k),
                        offline_every=timedelta(seconds=OFFLINE_EVERY_S / k),
                        points_per_minute=POINTS_PER_MINUTE,
                        minute=timedelta(seconds=minute_s),
                        tick=timedelta(seconds=5.0 / k),
                    )
                    worker = cadence_forever(
                        client,
                        sessionmaker,
                        stop,
                        stats,
                        state,
                        settings=settings,
                        interval=BASELINE_INTERVAL_S / k,
                        policy=policy,
                    )
                first = len(twitch.requests)
                running = asyncio.create_task(worker)
                counting = asyncio.create_task(_count_requests(twitch, first, samples))
                rng = random.Random(7)
                producing = [
                    asyncio.create_task(
                        _produce(
                            twitch, c.id, CLIP_EVERY_S / k, sim_minutes * minute_s, rng, appeared
                        )
                    )
                    for c in onair
                ]
                await asyncio.gather(*producing)
                # Then until every clip is stored (the baseline needs up to a pass and more).
                deadline = time.monotonic() + 2 * BASELINE_INTERVAL_S / k
                while time.monotonic() < deadline:
                    if len(await _stored(sessionmaker, appeared)) == len(appeared):
                        break
                    await asyncio.sleep(0.2)
                stop.set()
                failed = stats.failed_passes
                for task in (running, counting):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                stored = await _stored(sessionmaker, appeared)
                backfilled = await _count_clips(sessionmaker, [c.id for c in history])
        finally:
            await engine.dispose()
            await server.stop()
    delays = sorted(max(0.0, (stored[c] - appeared[c]).total_seconds()) * k for c in stored)
    busiest, mean = _per_minute(samples, minute_s)
    return CadenceRun(
        mode=mode,
        delays=delays,
        missing=len(appeared) - len(stored),
        busiest_minute=busiest,
        mean_per_minute=mean,
        rate_limited=twitch.rate_limited,
        requests=samples[-1][1] if samples else 0,
        backfilled=backfilled,
        failed=failed,
        backfill_truth=sum(len(twitch.visible_clips(c.id)) for c in history),
    )


async def _steady_state(sessionmaker: Any, channel_ids: list[str], offline_every_s: float) -> None:
    """As a long-running archive stands: every channel backfilled, its last incremental read
    somewhere within the last offline cadence (so they do not all come due at once)."""
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(3)
    marks = {band.name: now.isoformat() for band in sync.REFRESH_BANDS}
    async with session_scope(sessionmaker) as session:
        for channel_id in channel_ids:
            last = now - timedelta(seconds=rng.uniform(0, offline_every_s))
            await session.execute(
                update(ChannelSync)
                .where(ChannelSync.channel_id == channel_id)
                .values(
                    backfill_until=now,
                    backfill_done_until=now,
                    backfill_completed_at=now,
                    last_incremental_at=last,
                    refresh_marks=marks,
                )
            )


async def _produce(
    twitch: TwitchSimulator,
    channel_id: str,
    every_s: float,
    for_s: float,
    rng: random.Random,
    appeared: dict[str, datetime],
) -> None:
    """New clips of a live channel for `for_s` seconds; when each appears on Twitch."""
    end = time.monotonic() + for_s
    while True:
        await asyncio.sleep(rng.expovariate(1 / every_s))
        if time.monotonic() >= end:
            return
        clip = twitch.add_clip(channel_id)
        appeared[clip.id] = clip.visible_at


async def _count_requests(
    twitch: TwitchSimulator, first: int, samples: list[tuple[float, int]]
) -> None:
    started = time.monotonic()
    while True:
        samples.append((time.monotonic() - started, len(twitch.requests) - first))
        await asyncio.sleep(0.05)


def _per_minute(samples: list[tuple[float, int]], minute_s: float) -> tuple[int, float]:
    """Requests in the busiest (sliding) minute, and the mean a minute."""
    if len(samples) < 2:
        return 0, 0.0
    busiest = 0
    start = 0
    for at, count in samples:
        while samples[start][0] < at - minute_s:
            start += 1
        busiest = max(busiest, count - samples[start][1])
    elapsed = samples[-1][0]
    return busiest, samples[-1][1] / (elapsed / minute_s) if elapsed else 0.0


async def _count_clips(sessionmaker: Any, channel_ids: list[str]) -> int:
    if not channel_ids:
        return 0
    async with session_scope(sessionmaker) as session:
        rows = await session.scalars(select(Clip.id).where(Clip.broadcaster_id.in_(channel_ids)))
        return len(rows.all())


async def _stored(sessionmaker: Any, appeared: dict[str, datetime]) -> dict[str, datetime]:
    ids = list(appeared)
    found: dict[str, datetime] = {}
    async with session_scope(sessionmaker) as session:
        for start in range(0, len(ids), 500):
            rows = await session.execute(
                select(Clip.id, Clip.first_seen_at).where(Clip.id.in_(ids[start : start + 500]))
            )
            found.update({clip_id: at for clip_id, at in rows.all()})
    return found


def _print_cadence(base: CadenceRun, run: CadenceRun, args: argparse.Namespace) -> bool:
    p95_base, p95 = percentile(base.delays, 95), percentile(run.delays, 95)
    print(
        f"\n=== sync benchmark: {args.channels} channels ({args.live} live, {args.backfilling} "
        f"backfilling {args.backfill_clips:,} clips each), adaptive cadence vs fixed "
        f"{BASELINE_INTERVAL_S:.0f} s passes ==="
    )
    print(
        f"time compressed {args.compress:g}x (cadences, appear delay, bucket refill, baseline "
        f"interval; figures below in uncompressed seconds and minutes)"
    )
    for r in (base, run):
        print(
            f"  {r.mode:8}: live clips {len(r.delays) + r.missing}, stored {len(r.delays)}; "
            f"delay p50 {percentile(r.delays, 50):.0f} s, p95 {percentile(r.delays, 95):.0f} s, "
            f"max {r.delays[-1] if r.delays else float('nan'):.0f} s; points/min busiest "
            f"{r.busiest_minute}, mean {r.mean_per_minute:.0f}; 429s {r.rate_limited}; "
            f"backfill {r.backfilled:,} of {r.backfill_truth:,} clips; failed passes {r.failed}"
        )
    print(
        f"live clips stored p95 {p95:.0f} s vs {p95_base:.0f} s → ratio {p95 / p95_base:.2f} "
        f"(target p95 ≤ 90 s); busiest minute {run.busiest_minute} points (target ≤ "
        f"{POINTS_PER_MINUTE})"
    )
    return run.missing == 0 and p95 <= 90 and run.busiest_minute <= POINTS_PER_MINUTE


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sync", description=__doc__)
    parser.add_argument("--only", choices=("backfill", "cadence"))
    parser.add_argument("--clips", type=int, default=200_000)
    parser.add_argument("--hot-days", type=int, default=30)
    parser.add_argument("--channels", type=int, default=500)
    parser.add_argument("--live", type=int, default=20)
    parser.add_argument("--compress", type=float, default=10.0)
    parser.add_argument("--backfilling", type=int, default=2)
    parser.add_argument("--backfill-clips", type=int, default=6_000)
    parser.add_argument("--sim-minutes", type=float, default=12.0, help="clips made for so long")
    args = parser.parse_args(argv)
    failed = 0
    if args.only in (None, "backfill"):
        failed |= backfill_main(args)
    if args.only in (None, "cadence"):
        configure_logging("warning")  # a line per channel step would drown the figures
        world = (
            args.channels,
            args.live,
            args.compress,
            args.sim_minutes,
            args.backfilling,
            args.backfill_clips,
        )
        base = asyncio.run(run_cadence("baseline", *world))
        run = asyncio.run(run_cadence("cadence", *world))
        if not _print_cadence(base, run, args):
            print("TARGET MISSED: see the figures above")
            failed |= 1
    return failed


def backfill_main(args: argparse.Namespace) -> int:
    result = asyncio.run(run(args.clips, args.hot_days))
    ratio = result["elapsed_s"] / result["minimum_s"] if result["minimum_s"] else float("nan")
    print(f"\n=== sync benchmark: backfill of {result['clips']:,} clips at 800 points/min ===")
    pages = result["requests"] / result["fewest_requests"]
    print(
        f"requests {result['requests']:,} vs {result['fewest_requests']:,} pages at the least "
        f"→ {pages:.2f}x (target ≤ {PAGES_TARGET}; 1.74x before windows were planned, "
        f"twitch/windows.py); {result['splits']} window cuts; 429s {result['rate_limited']}; "
        f"stored {result['stored']:,}"
    )
    print(
        f"time {result['elapsed_s']:.1f} s vs the budget's minimum {result['minimum_s']:.1f} s "
        f"for those requests → ratio {ratio:.2f} (target ≤ 1.15 when the budget is what "
        f"binds: at least a minute of requests beyond the bucket's first 800)"
    )
    failed = pages > PAGES_TARGET or (result["minimum_s"] >= 60 and ratio > 1.15)
    if result["stored"] != result["clips"]:
        print("INCOMPLETE: stored differs from the simulator's truth")
        return 1
    if failed:
        print("TARGET MISSED: see the figures above")
    return 1 if failed else 0
