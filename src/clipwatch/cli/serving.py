"""What `clipwatch serve` runs: migrate, then the API with the worker beside it (unless
--no-worker). Imported only by that command (it loads the API, uvicorn and the worker).

In demo mode both simulators start first, in this process, and the settings point at them.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import structlog
import uvicorn

from clipwatch.api.app import create_app
from clipwatch.api.routers.health import DEMO_BANNER
from clipwatch.cache.manager import CacheManager, cache_from_settings
from clipwatch.config import Settings
from clipwatch.db.engine import attach_cache, create_engine, create_sessionmaker
from clipwatch.db.migrate import upgrade_database
from clipwatch.monitoring.errors import start_error_reporting
from clipwatch.runtime.demo import DemoWorld, demo_world, reset_demo_database, seed_demo
from clipwatch.runtime.worker import TRANSIENT, WorkerStats, run_worker
from clipwatch.twitch.client import client_from_settings

log = structlog.get_logger("clipwatch.serve")
# How long the worker may take to finish what it is doing when the server stops; then it is
# cancelled (each sync window commits with its mark, so nothing stored is lost).
WORKER_STOP_S = 5.0
STOP_REQUESTS_S = 10  # requests still in flight at a stop get this long (uvicorn), then end


@asynccontextmanager
async def _world(settings: Settings) -> AsyncIterator[tuple[Settings, DemoWorld | None]]:
    if not settings.demo_mode:
        yield settings, None
        return
    reset_demo_database(settings)
    async with demo_world(settings) as (demo_settings, world):
        log.warning(
            "demo_mode",
            banner=DEMO_BANNER,
            database=settings.database_url,
            twitch_simulator=world.twitch_base,
            discord_sink=world.sink_url,
        )
        yield demo_settings, world


async def _embedded_worker(
    settings: Settings,
    world: DemoWorld | None,
    stats: WorkerStats,
    stop: asyncio.Event,
    cache: CacheManager,
) -> None:
    """The worker (and, in demo mode, the demo's channels and route) beside the API, sharing
    its cache: the worker's writes invalidate the API's answers at once."""
    client = client_from_settings(settings)
    if client is None:
        stats.running = False
        return
    engine = create_engine(settings)
    attach_cache(engine, cache)
    try:
        sessionmaker = create_sessionmaker(engine)

        async def start() -> None:
            await client.start()
            if world is not None:
                await seed_demo(settings, sessionmaker, client, world)

        # A stop during start-up (a Twitch that does not answer retries for a while) ends
        # the start at once: `serve` stops promptly whatever Twitch does.
        starting = asyncio.create_task(start())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()
            await asyncio.wait({starting})
            stats.running = False
            return
        try:
            starting.result()
        except TRANSIENT as exc:  # each sync pass tries again
            log.warning("worker_start_failed", error=f"{type(exc).__name__}: {exc}")
        await run_worker(
            settings,
            client,
            sessionmaker,
            interval=settings.sync_interval_seconds,
            stop=stop,
            stats=stats,
            cache=cache,
        )
    finally:
        await client.aclose()
        await engine.dispose()


@asynccontextmanager
async def _beside(
    settings: Settings, world: DemoWorld | None, stats: WorkerStats, cache: CacheManager
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    stats.running = True  # from now on, start-up (token, demo seeding) included
    task = asyncio.create_task(_embedded_worker(settings, world, stats, stop, cache))
    task.add_done_callback(_report_end)
    try:
        yield
    finally:
        stop.set()
        _done, pending = await asyncio.wait({task}, timeout=WORKER_STOP_S)
        for late in pending:  # still starting (a Twitch that does not answer), or mid-pass
            late.cancel()
            await asyncio.wait({late})


def _report_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("worker_failed", error=repr(task.exception()))


class _Server(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM/SIGINT is not raised again once it stopped:
    the worker beside it still has to stop, and then `serve` exits with status 0."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.should_exit:  # said once: what a stop that takes long began with
            log.info("stopping", signal=signal.Signals(sig).name)
        super().handle_exit(sig, frame)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


async def serve_api(
    settings: Settings, host: str, port: int, access_log: bool, worker: bool
) -> None:
    start_error_reporting(settings, "serve")  # Sentry, with CLIPWATCH_SENTRY_DSN
    async with _world(settings) as (settings, world):
        engine = create_engine(settings)
        try:
            await upgrade_database(engine)
        finally:
            await engine.dispose()
        stats = WorkerStats()
        cache = cache_from_settings(settings)
        await cache.start()
        app = create_app(
            settings,
            worker=stats if worker else None,
            demo_sink=world.sink_url if world else None,
            cache=cache,
            access_log=access_log,
        )
        # The access log is the app's own (api/telemetry.py: request ids, route templates,
        # redaction), in every mode; uvicorn's is off.
        # A stop waits for requests in flight at most STOP_REQUESTS_S (a long export does
        # not hold a rolling restart); open streams are ended at once (api/routers/stream.py).
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=STOP_REQUESTS_S,
        )
        server = _Server(config)
        try:
            if worker:
                async with _beside(settings, world, stats, cache):
                    log.info("serving", url=f"http://{host}:{port}", worker=True)
                    await server.serve()
            else:
                log.info("serving", url=f"http://{host}:{port}", worker=False)
                await server.serve()
        finally:
            await cache.close()
            log.info("stopped")
