"""`clipwatch channels …`, `sync`, `worker`, `simulate twitch|discord`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.cli.common import fail, in_transaction, open_engine, run, settings_or_exit
from clipwatch.config import Settings
from clipwatch.db.engine import create_sessionmaker, session_scope
from clipwatch.db.migrate import upgrade_database
from clipwatch.db.repositories import catalog, quarantine, sync_state
from clipwatch.monitoring.logging import configure_logging
from clipwatch.twitch import channel_health, sync
from clipwatch.twitch.client import HelixClient, client_from_settings

channels_app = typer.Typer(help="The Twitch channels clipwatch archives.", no_args_is_help=True)
simulate_app = typer.Typer(help="Local simulators of outside services.", no_args_is_help=True)
T = TypeVar("T")
Sessions = async_sessionmaker[AsyncSession]
Work = Callable[[HelixClient, Sessions], Awaitable[T]]


def _client(settings: Settings) -> HelixClient:
    client = client_from_settings(settings)
    if client is None:
        fail(
            "set CLIPWATCH_TWITCH_CLIENT_ID and CLIPWATCH_TWITCH_CLIENT_SECRET "
            "(or point CLIPWATCH_TWITCH_API_URL/AUTH_URL at `clipwatch simulate twitch`)"
        )
    return client


async def _with_twitch(settings: Settings, work: Work[T]) -> T:
    async with open_engine(settings) as (engine, _cache):
        await upgrade_database(engine)
        async with _client(settings) as client:
            await client.start()
            return await work(client, create_sessionmaker(engine))


@channels_app.command("add")
def add(logins: Annotated[list[str], typer.Argument(help="Twitch logins")]) -> None:
    """Track channels: their clips are synced from now on (backfill with `sync --backfill`)."""
    settings = settings_or_exit()

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

    Console().print(run(in_transaction(settings, work)))


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "never"


def _error(error: str | None, failures: int) -> str:
    if not error:
        return ""
    return f"{error} ({failures} in a row)" if failures > 1 else error


@channels_app.command("remove")
def remove(login: Annotated[str, typer.Argument(help="Twitch login or id")]) -> None:
    """Stop syncing a channel (its clips stay in the archive)."""
    settings = settings_or_exit()

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
    settings = settings_or_exit()
    if quarantine_list:
        Console().print(run(in_transaction(settings, _quarantine_table)))
        return
    configure_logging(settings.log_level, settings.log_format, settings.log_file)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    ) as bar:
        tasks: dict[str, TaskID] = {}
        spans: dict[str, float] = {}  # seconds of history left at the first stored window
        clients: list[HelixClient] = []

        def progress(channel_id: str, at: datetime, end: datetime, report: sync.SyncReport) -> None:
            if channel_id not in tasks:  # the first stored window: measure from here
                spans[channel_id] = max((end - at).total_seconds(), 1.0)
                tasks[channel_id] = bar.add_task(
                    f"backfill {channel_id}", total=spans[channel_id], status=""
                )
            budget = clients[0].budget if clients else None
            left = f", budget {budget.remaining}/{budget.limit}" if budget and budget.limit else ""
            bar.update(
                tasks[channel_id],
                completed=spans[channel_id] - (end - at).total_seconds(),
                status=f"{at:%Y-%m-%d} · {report.clips_seen:,} clips{left}",
            )

        async def work(
            client: HelixClient, sm: async_sessionmaker[AsyncSession]
        ) -> tuple[sync.SyncReport, dict[str, str]]:
            clients.append(client)
            report = await sync.sync_all(
                client,
                sm,
                backfill=backfill,
                only=channel,
                progress=progress,
                ignore_backoff=True,
                deletion_wait=timedelta(minutes=settings.deletion_confirm_minutes),
            )
            async with session_scope(sm) as session:
                logins = {c.id: c.login or c.id for c in await sync_state.tracked_channels(session)}
            return report, logins

        try:
            report, logins = run(_with_twitch(settings, work))
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


async def _quarantine_table(session: AsyncSession) -> Table:
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
    uvicorn.run(twitch, host="127.0.0.1", port=port, log_level="warning")


def worker_command(
    interval: Annotated[
        int | None,
        typer.Option(
            min=10, max=86_400, help="Seconds between sync passes [default: the setting, 300]"
        ),
    ] = None,
    passes: Annotated[int, typer.Option(min=0, help="Stop after this many passes (0: never)")] = 0,
) -> None:
    """Sync every tracked channel pass after pass, and deliver due Discord notifications.

    Run several on one PostgreSQL (and Redis): leases share the channels between them, the
    Twitch budget is shared through Redis, and deliveries are claimed with SKIP LOCKED.
    """
    from clipwatch.runtime.worker import run_worker

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format, settings.log_file)

    async def work() -> int:
        # Following the others' writes lets its hot data go to Redis (docs/cache.md).
        async with open_engine(settings, follow=True) as (engine, cache):
            await upgrade_database(engine)
            async with _client(settings) as client:
                await client.start()
                stats = await run_worker(
                    settings,
                    client,
                    create_sessionmaker(engine),
                    interval=interval or settings.sync_interval_seconds,
                    passes=passes,
                    cache=cache,
                )
                return stats.passes

    run(work())


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
    uvicorn.run(discord, host="127.0.0.1", port=port, log_level="warning")
