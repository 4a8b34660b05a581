"""`clipwatch channels …`, `sync`, `worker`, `simulate twitch|discord`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from clipwatch.cli.common import (
    configure_cli_logging,
    fail,
    in_transaction,
    open_engine,
    print_table,
    run,
    settings_or_exit,
    started,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

    from rich.progress import Progress, TaskID
    from rich.table import Table
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from clipwatch.config import Settings
    from clipwatch.twitch import sync
    from clipwatch.twitch.client import HelixClient

    Sessions = async_sessionmaker[AsyncSession]
    Work = Callable[[HelixClient, Sessions], Awaitable["T"]]

channels_app = typer.Typer(help="The Twitch channels clipwatch archives.", no_args_is_help=True)
simulate_app = typer.Typer(help="Local simulators of outside services.", no_args_is_help=True)
T = TypeVar("T")


def _client(settings: Settings) -> HelixClient:
    from clipwatch.twitch.client import client_from_settings

    client = client_from_settings(settings)
    if client is None:
        fail(
            "set CLIPWATCH_TWITCH_CLIENT_ID and CLIPWATCH_TWITCH_CLIENT_SECRET "
            "(or point CLIPWATCH_TWITCH_API_URL/AUTH_URL at `clipwatch simulate twitch`)"
        )
    return client


async def _with_twitch(settings: Settings, work: Work[T]) -> T:
    from clipwatch.db.engine import create_sessionmaker
    from clipwatch.db.migrate import upgrade_database

    async with open_engine(settings) as (engine, _cache):
        await upgrade_database(engine)
        async with _client(settings) as client:
            await client.start()
            return await work(client, create_sessionmaker(engine))


@channels_app.command("add")
def add(logins: Annotated[list[str], typer.Argument(help="Twitch logins")]) -> None:
    """Track channels: their clips are synced from now on (backfill with `sync --backfill`)."""
    from clipwatch.twitch import sync

    settings = settings_or_exit(writes=True)

    async def work(
        client: HelixClient, sm: async_sessionmaker[AsyncSession]
    ) -> tuple[list[str], list[str]]:
        return await sync.add_channels(client, sm, logins)

    added, unknown = run(_with_twitch(settings, work))
    for login in added:
        typer.echo(f"tracking {login}")
    if unknown:
        fail(f"not on Twitch: {', '.join(unknown)}")


@channels_app.command("list")
def list_channels() -> None:
    """Tracked channels and where their sync stands."""
    from rich.table import Table

    from clipwatch.db.repositories import sync_state

    settings = settings_or_exit()

    async def work(session: AsyncSession) -> Table:
        table = Table(
            "login", "id", "backfill", "last incremental", "last refresh", "last error", "next try"
        )
        for channel in await sync_state.tracked_channels(session):
            state = await sync_state.get_state(session, channel.id)
            if state.backfill_completed_at:
                backfill = "complete"
            elif state.backfill_done_until:
                backfill = f"up to {state.backfill_done_until:%Y-%m-%d}"
            else:
                backfill = "not started"
            table.add_row(
                channel.login or "",
                channel.id,
                backfill,
                _when(state.last_incremental_at),
                _when(state.last_refresh_at),
                _error(state.last_error, state.consecutive_failures),
                _when(state.next_try_at) if state.next_try_at else "",
            )
        return table

    print_table(run(in_transaction(settings, work)))


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "never"


def _error(error: str | None, failures: int) -> str:
    if not error:
        return ""
    return f"{error} ({failures} in a row)" if failures > 1 else error


@channels_app.command("remove")
def remove(login: Annotated[str, typer.Argument(help="Twitch login or id")]) -> None:
    """Stop syncing a channel (its clips stay in the archive)."""
    from clipwatch.db.repositories import catalog

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> bool:
        return await catalog.untrack_channel(session, login) is not None

    if not run(in_transaction(settings, work)):
        fail(f"no channel {login}")
    typer.echo(f"no longer tracking {login}")


def sync_command(
    channel: Annotated[str | None, typer.Option(help="Only this channel (login or id)")] = None,
    backfill: Annotated[bool, typer.Option(help="Also fetch each channel's whole history")] = False,
    quarantine_list: Annotated[
        bool,
        typer.Option(
            "--quarantine", help="List the clips that could not be stored (and sync nothing)"
        ),
    ] = False,
) -> None:
    """One sync pass: new clips, refreshed views and deletions, and (--backfill) history.

    Every channel is tried, those waiting out a backoff too; a failed channel does not stop
    the others, and makes the command exit 1 after the pass."""
    from datetime import timedelta

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from clipwatch.db.engine import session_scope
    from clipwatch.db.repositories import sync_state
    from clipwatch.twitch import channel_health, sync

    if quarantine_list:
        settings = settings_or_exit()
        print_table(run(in_transaction(settings, _quarantine_table)))
        return
    settings = settings_or_exit(writes=True)
    configure_cli_logging(settings)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    ) as bar:
        logins: dict[str, str] = {}
        backfills = BackfillBars(bar, logins)

        async def work(client: HelixClient, sm: Sessions) -> sync.SyncReport:
            async with session_scope(sm) as session:
                logins.update(
                    {c.id: c.login or c.id for c in await sync_state.tracked_channels(session)}
                )
            backfills.client = client
            return await sync.sync_all(
                client,
                sm,
                backfill=backfill,
                only=channel,
                progress=backfills.update,
                ignore_backoff=True,
                deletion_wait=timedelta(minutes=settings.deletion_confirm_minutes),
            )

        try:
            report = run(_with_twitch(settings, work))
        except typer.Exit:
            raise
        except Exception as exc:  # anything unforeseen: still one line, not a traceback
            fail(f"sync failed: {channel_health.describe_failure(exc)}")
    typer.echo(
        f"{report.inserted:,} new clips, {report.updated:,} updated, {report.deleted:,} deleted, "
        f"{report.restored:,} restored ({report.windows:,} windows, {report.splits:,} splits)"
    )
    if report.skipped_channels:
        names = ", ".join(logins.get(c, c) for c in report.skipped_channels)
        typer.echo(f"skipped (another worker holds them): {names}")
    if report.quarantined:
        typer.echo(f"{report.quarantined:,} clips quarantined (see `clipwatch sync --quarantine`)")
    if report.failed_channels:
        failures = "; ".join(
            f"{logins.get(c, c)}: {error}" for c, error in report.failed_channels.items()
        )
        fail(f"{len(report.failed_channels)} channel(s) failed: {failures}")


@dataclass
class _ChannelBar:
    task: TaskID
    span_s: float  # seconds of history the channel's backfill has left at its start
    clips_before: int  # the pass's clip count when the channel's backfill started


class BackfillBars:
    """One bar per channel, named by login, with that channel's own clip count (the report
    the sync hands over counts the whole pass)."""

    def __init__(self, bar: Progress, logins: dict[str, str]) -> None:
        self.bar = bar
        self.logins = logins
        self.channels: dict[str, _ChannelBar] = {}
        self.client: HelixClient | None = None

    def update(self, channel_id: str, at: datetime, end: datetime, report: sync.SyncReport) -> None:
        left_s = (end - at).total_seconds()
        channel = self.channels.get(channel_id)
        if channel is None:  # the backfill's start (or the first window of a resumed one)
            span = max(left_s, 1.0)
            name = self.logins.get(channel_id, channel_id)
            task = self.bar.add_task(f"backfill {name}", total=span, status="")
            channel = self.channels[channel_id] = _ChannelBar(task, span, report.clips_seen)
        budget = self.client.budget if self.client is not None else None
        left = f", budget {budget.remaining}/{budget.limit}" if budget and budget.limit else ""
        clips = report.clips_seen - channel.clips_before
        self.bar.update(
            channel.task,
            completed=channel.span_s - left_s,
            status=f"{at:%Y-%m-%d} · {clips:,} clips{left}",
        )


async def _quarantine_table(session: AsyncSession) -> Table:
    from rich.table import Table

    from clipwatch.db.repositories import quarantine

    table = Table("clip", "channel", "reason", "times seen", "last seen", title="Quarantined clips")
    for row, login in await quarantine.list_quarantined(session, limit=500):
        table.add_row(
            row.clip_id or f"(no id) {row.key[:19]}",
            login or row.broadcaster_id or "",
            row.reason,
            str(row.times_seen),
            _when(row.last_seen_at),
        )
    if not table.row_count:
        table.caption = "none"
    return table


@simulate_app.command("twitch")
def simulate_twitch(
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8081,
    seed: Annotated[int, typer.Option(help="The world's random seed")] = 1,
    channel: Annotated[
        list[str] | None,
        typer.Option(help="LOGIN:CLIPS[:HOT_DAYS], repeatable (default: three channels)"),
    ] = None,
    points_per_minute: Annotated[int, typer.Option(min=1)] = 800,
    years: Annotated[float, typer.Option(min=0.01, max=15, help="History per channel")] = 3.0,
) -> None:
    """Serve a Twitch simulator (Helix + OAuth) on 127.0.0.1 for tests and demos."""
    import uvicorn

    from clipwatch.twitch.simulator import CLIENT_ID, CLIENT_SECRET, TwitchSimulator

    twitch = TwitchSimulator(seed=seed, points_per_minute=points_per_minute)
    for spec in channel or ["clipwatchdemo:2000:1", "speedrunner:500", "quietstreamer:40"]:
        parts = spec.split(":")
        try:
            login, clips = parts[0], int(parts[1])
            hot = int(parts[2]) if len(parts) > 2 else 0
        except (IndexError, ValueError):
            fail(f"--channel {spec!r}: expected LOGIN:CLIPS[:HOT_DAYS]")
        twitch.add_channel(login, clips=clips, hot_days=hot, years=years)
    typer.echo(
        f"Twitch simulator on http://127.0.0.1:{port}\n"
        f"  CLIPWATCH_TWITCH_CLIENT_ID={CLIENT_ID} CLIPWATCH_TWITCH_CLIENT_SECRET={CLIENT_SECRET}\n"
        f"  CLIPWATCH_TWITCH_API_URL=http://127.0.0.1:{port}/helix "
        f"CLIPWATCH_TWITCH_AUTH_URL=http://127.0.0.1:{port}/oauth2"
    )
    started()
    uvicorn.run(twitch, host="127.0.0.1", port=port, log_level="warning")


def worker_command(
    interval: Annotated[
        int | None,
        typer.Option(
            min=10, max=86_400, help="Seconds between sync passes [default: the setting, 300]"
        ),
    ] = None,
    passes: Annotated[int, typer.Option(min=0, help="Stop after this many passes (0: never)")] = 0,
    metrics_port: Annotated[
        int,
        typer.Option(
            min=0,
            max=65535,
            help="Serve this process's Prometheus metrics on this port (at CLIPWATCH_METRICS_HOST, "
            "127.0.0.1 by default); 0: none",
        ),
    ] = 0,
) -> None:
    """Sync every tracked channel pass after pass, and deliver due Discord notifications.

    Run several on one PostgreSQL (and Redis): leases share the channels between them, the
    Twitch budget is shared through Redis, and deliveries are claimed with SKIP LOCKED.
    """
    from clipwatch.cli.incidents import check_alert_rules
    from clipwatch.db.engine import create_sessionmaker
    from clipwatch.db.migrate import upgrade_database
    from clipwatch.monitoring.errors import start_error_reporting
    from clipwatch.monitoring.metrics import serve_metrics
    from clipwatch.runtime.worker import run_worker

    settings = settings_or_exit(writes=True)
    check_alert_rules(settings)
    configure_cli_logging(settings)
    stop_metrics = None
    if metrics_port:
        if not settings.metrics_enabled:
            fail("--metrics-port: metrics are turned off (CLIPWATCH_METRICS_ENABLED=false)")
        try:
            stop_metrics = serve_metrics(settings.metrics_host, metrics_port)
        except OSError as exc:
            fail(f"--metrics-port {metrics_port}: cannot listen on {settings.metrics_host} ({exc})")

    async def work() -> int:
        import asyncio
        import signal

        from clipwatch.runtime import memory
        from clipwatch.waiting import cancel_and_wait

        # SIGTERM (a restart, systemd, docker stop) and SIGINT stop the worker as `serve`
        # stops: the delivery pass in hand finishes and commits what Discord accepted, the
        # tasks report "stopped". (Without this a SIGTERM ended it at once, as kill -9 does.)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        start_error_reporting(settings, "worker")  # Sentry, with CLIPWATCH_SENTRY_DSN
        # Following the others' writes lets its hot data go to Redis (docs/cache.md).
        async with open_engine(settings, follow=True) as (engine, cache):
            await upgrade_database(engine)
            async with _client(settings) as client:
                await client.start()
                trimming = asyncio.create_task(memory.trim_forever())
                try:
                    stats = await run_worker(
                        settings,
                        client,
                        create_sessionmaker(engine),
                        interval=interval or settings.sync_interval_seconds,
                        passes=passes,
                        stop=stop,
                        cache=cache,
                    )
                finally:
                    await cancel_and_wait(trimming)
                return stats.passes

    try:
        run(work())
    finally:
        if stop_metrics is not None:
            stop_metrics()


@simulate_app.command("discord")
def simulate_discord(
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8082,
    webhooks: Annotated[int, typer.Option(min=0, max=100, help="Webhooks to create")] = 1,
) -> None:
    """Serve a Discord simulator (execute-webhook with Discord's limits) on 127.0.0.1."""
    import uvicorn

    from clipwatch.discord.simulator import DiscordSimulator

    discord = DiscordSimulator()
    base = f"http://127.0.0.1:{port}"
    typer.echo(f"Discord simulator on {base}  (CLIPWATCH_DISCORD_API_URL={base}/api/v10)")
    for _ in range(webhooks):
        typer.echo(f"  webhook: {discord.url(base, discord.add_webhook())}")
    started()
    uvicorn.run(discord, host="127.0.0.1", port=port, log_level="warning")
