"""`clipwatch routes add|list|remove|test` and `clipwatch deliveries list|retry`.

The operator's commands: they act with admin rights (routes of any user), the way the API
acts for an admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clipwatch.cli.common import (
    configure_cli_logging,
    err_console,
    fail,
    in_transaction,
    print_table,
    run,
    settings_or_exit,
    stderr_is_terminal,
)
from clipwatch.waiting import cancel_and_wait

if TYPE_CHECKING:
    from datetime import datetime

    from rich.status import Status
    from rich.table import Table
    from sqlalchemy.ext.asyncio import AsyncSession

    from clipwatch.accounts.service import Principal
    from clipwatch.db.models import NotificationRoute
    from clipwatch.discord import routes as service

routes_app = typer.Typer(help="Discord notification routes.", no_args_is_help=True)
deliveries_app = typer.Typer(help="The Discord delivery outbox.", no_args_is_help=True)
# How often `deliveries run` reads the outbox's counts for its progress line: a claim of 200
# deliveries can take minutes at Discord's rate limits, and each message commits on its own.
PROGRESS_EVERY_S = 0.5


def _operator() -> Principal:
    """The CLI acts as an admin (routes of any user), as the API does for an admin."""
    from clipwatch.accounts import service as accounts

    return accounts.operator("cli")


class TemplateName(StrEnum):
    card = "card"
    compact = "compact"
    link = "link"


class OnDeleted(StrEnum):
    keep = "keep"
    edit = "edit"
    delete = "delete"


@routes_app.command("add")
def add_route(
    user: Annotated[str, typer.Argument(help="The owner's user name")],
    name: Annotated[str, typer.Argument(help="What the route is for")],
    webhook_url: Annotated[str, typer.Argument(help="The Discord webhook URL")],
    channel: Annotated[
        list[str] | None, typer.Option(help="Channel id or login; repeatable")
    ] = None,
    min_views: Annotated[int, typer.Option(min=0)] = 0,
    template: Annotated[TemplateName, typer.Option()] = TemplateName.card,
    delay: Annotated[int, typer.Option(min=0, max=3600, help="Seconds before posting")] = 0,
    notify_live: Annotated[
        bool, typer.Option("--notify-live", help="Also post when a channel goes live")
    ] = False,
    notify_stream_end: Annotated[
        bool, typer.Option("--notify-stream-end", help='Also post "stream ended: N clips"')
    ] = False,
    role: Annotated[
        list[str] | None, typer.Option(help="A role id to ping on every message; repeatable")
    ] = None,
    forum_mode: Annotated[
        str | None, typer.Option(help="A forum channel: post (one per clip), day or stream")
    ] = None,
    thread_name: Annotated[
        str | None, typer.Option(help="Forum post names, a template, e.g. '{{ title }}'")
    ] = None,
    username: Annotated[str | None, typer.Option(help="The name messages are posted under")] = None,
    avatar_url: Annotated[str | None, typer.Option(help="The avatar (an allowed host)")] = None,
) -> None:
    """Post new clips that pass the filters to a Discord webhook (and, if asked, stream
    notices for the channels the filters let through). The webhook is checked with Discord
    first (CLIPWATCH_WEBHOOK_CHECK); a `?thread_id=` in its URL is kept."""
    from clipwatch.accounts import service as accounts
    from clipwatch.discord import routes as service
    from clipwatch.discord.sender import sender_from_settings

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> str:
        owner = await accounts.user_by_name(session, user)
        sender = sender_from_settings(settings) if settings.webhook_check else None
        try:
            route = await service.create_route(
                session,
                _operator(),
                {
                    "name": name,
                    "webhook_url": webhook_url,
                    "filters": {
                        "channels": [c.lower() for c in channel or []],
                        "min_views": min_views,
                    },
                    "template": {"name": template.value},
                    "delay_seconds": delay,
                    "notify_live": notify_live,
                    "notify_stream_end": notify_stream_end,
                    "role_ids": role or None,
                    "forum_mode": forum_mode,
                    "thread_name": thread_name,
                    "username": username,
                    "avatar_url": avatar_url,
                },
                key=settings.signing_key,
                allowed_hosts=settings.webhook_allowed_hosts.split(","),
                owner_id=owner.id,
                sender=sender,
                avatar_hosts=settings.avatar_allowed_hosts.split(","),
            )
        finally:
            if sender is not None:
                await sender.aclose()
        return f"route {route.id} ({route.name}) added for {owner.name}"

    typer.echo(run(in_transaction(settings, work)))


@routes_app.command("edit")
def edit_route(
    route_id: Annotated[int, typer.Argument(min=1)],
    notify_live: Annotated[
        bool | None,
        typer.Option("--notify-live/--no-notify-live", help="Post when a channel goes live"),
    ] = None,
    notify_stream_end: Annotated[
        bool | None,
        typer.Option(
            "--notify-stream-end/--no-notify-stream-end", help='Post "stream ended: N clips"'
        ),
    ] = None,
    delay: Annotated[
        int | None, typer.Option(min=0, max=3600, help="Seconds before posting")
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Turn the route on or off")
    ] = None,
    on_deleted: Annotated[
        OnDeleted | None,
        typer.Option(help="A posted clip deleted on Twitch: keep, edit or delete its message"),
    ] = None,
    milestone: Annotated[
        list[int] | None,
        typer.Option(min=1, help="A view count that edits the posted message; repeatable"),
    ] = None,
    no_milestones: Annotated[
        bool, typer.Option("--no-milestones", help="Stop editing messages at view counts")
    ] = False,
    digest: Annotated[
        str | None,
        typer.Option(help="Make it a digest route: its top clips every day, week or month"),
    ] = None,
    weekday: Annotated[int, typer.Option(min=0, max=6, help="Weekly digests: Monday 0")] = 0,
    at: Annotated[str, typer.Option(help="The digest's time, HH:MM")] = "18:00",
    time_zone: Annotated[str, typer.Option(help="The digest's time zone (IANA)")] = "UTC",
    top: Annotated[int, typer.Option(min=1, max=25, help="Clips in a digest")] = 10,
    trending: Annotated[
        int | None, typer.Option(min=1, help="Post a clip once when it gains N views an hour")
    ] = None,
) -> None:
    """Change a route's stream notices, delay, state or message edits; what is not given
    stays."""
    from clipwatch.discord import routes as service
    from clipwatch.discord.digests import schedule_of

    settings = settings_or_exit(writes=True)
    given: dict[str, Any] = {
        "notify_live": notify_live,
        "notify_stream_end": notify_stream_end,
        "delay_seconds": delay,
        "enabled": enabled,
        "on_deleted": on_deleted.value if on_deleted else None,
        "milestones": [] if no_milestones else sorted(set(milestone)) if milestone else None,
        "trending_views_per_hour": trending,
    }
    if digest is not None:
        schedule = {"period": digest, "weekday": weekday, "time": at, "time_zone": time_zone}
        try:
            checked = schedule_of(schedule | {"top": top})
        except ValueError as exc:
            fail(str(exc))
        given["kind"] = "digest"
        given["digest"] = schedule | {"time": f"{checked.at:%H:%M}", "top": top}
    values = {k: v for k, v in given.items() if v is not None}
    if milestone and len(set(milestone)) > 10:
        fail("at most 10 milestones")
    if not values:
        fail("nothing to change (see --help)")

    async def work(session: AsyncSession) -> str:
        route = await service.update_route(
            session,
            _operator(),
            route_id,
            values,
            key=settings.signing_key,
            allowed_hosts=settings.webhook_allowed_hosts.split(","),
        )
        return f"route {route.id} ({route.name}) changed: {_notices(route) or 'no notices'}"

    typer.echo(run(in_transaction(settings, work)))


def _notices(route: NotificationRoute) -> str:
    return ", ".join(
        name
        for name, on in (("live", route.notify_live), ("stream end", route.notify_stream_end))
        if on
    )


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else ""


def _template_name(route: NotificationRoute) -> str:
    template = route.template or {}
    return "custom" if template.get("custom") else str(template.get("name") or "card")


def _filters_text(filters: dict[str, Any] | None) -> str:
    """A route's filters in words: only those that narrow anything."""
    parts = []
    for key, value in (filters or {}).items():
        if value in (None, "", 0, False, [], {}):
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(shown if value is True else f"{key.replace('_', ' ')}: {shown}")
    return "; ".join(parts) or "every clip"


def _last_error(route: NotificationRoute) -> str:
    if not route.last_error:
        return ""
    times = f", {route.error_count} in all" if route.error_count > 1 else ""
    return f"{route.last_error} ({_when(route.last_error_at)}{times})"


def routes_table(routes: list[NotificationRoute], owners: dict[int, str]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        "id", "owner", "name", "webhook", "template", "filters", "delay", "notices", "enabled"
    )
    table.add_column("last error", overflow="fold")
    for route in routes:
        cells = (
            str(route.id),
            owners.get(route.user_id, str(route.user_id)),
            route.name,
            f"{route.webhook_id} (token hidden)",
            _template_name(route),
            _filters_text(route.filters),
            f"{route.delay_seconds} s" if route.delay_seconds else "",
            _notices(route),
            "yes" if route.enabled else f"no: {route.disabled_reason or ''}",
            _last_error(route),
        )
        # Text, not markup: a name's or a template error's [brackets] are shown as written.
        table.add_row(*map(Text, cells))
    if not table.row_count:
        table.caption = "no routes"
    return table


@routes_app.command("list")
def list_routes() -> None:
    """Every route (webhook tokens hidden), with its template and last error."""
    from clipwatch.db.repositories import accounts as users
    from clipwatch.discord import routes as service

    settings = settings_or_exit()

    async def work(session: AsyncSession) -> Table:
        routes = list(await service.routes_of(session, _operator()))
        owners = {u.id: u.name for u in await users.list_users(session)}
        return routes_table(routes, owners)

    print_table(run(in_transaction(settings, work)))


@routes_app.command("remove")
def remove_route(route_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """Remove a route (its undelivered notifications go with it)."""
    from clipwatch.discord import routes as service

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> None:
        await service.delete_route(session, _operator(), route_id)

    run(in_transaction(settings, work))
    typer.echo(f"route {route_id} removed")


@routes_app.command("test")
def test_route(route_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """Post a message marked as a test through a route, showing the newest stored clip it
    would post (the sample when none). A gone webhook disables the route."""
    from clipwatch.discord import routes as service
    from clipwatch.discord.sender import sender_from_settings

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> service.TestSend:
        sender = sender_from_settings(settings)
        try:
            return await service.send_test_message(
                session, _operator(), route_id, sender, key=settings.signing_key
            )
        finally:
            await sender.aclose()

    result = run(in_transaction(settings, work))  # committed: a gone webhook's route disabled
    if not result.sent:
        fail(f"not sent: {result.detail}")
    shown = f"clip {result.clip_id}" if result.clip_id else "the sample clip (none matches)"
    typer.echo(f"sent (message {result.message_id}, {shown})")


@deliveries_app.command("list")
def list_deliveries(
    dead: Annotated[bool, typer.Option(help="Only the dead ones")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """The newest deliveries of every route."""
    from rich.table import Table
    from rich.text import Text

    from clipwatch.discord import routes as service

    settings = settings_or_exit()

    async def work(session: AsyncSession) -> Table:
        table = Table("id", "route", "clip", "status", "attempts", "next attempt", "sent")
        table.add_column("error", overflow="fold")
        status = "dead" if dead else None
        for d in await service.deliveries_of(session, _operator(), status, limit):
            cells = (
                str(d.id),
                str(d.route_id),
                d.clip_id,
                d.status,
                str(d.attempts),
                # Only a pending delivery has a next attempt; a sent or dead one has none.
                f"{d.next_attempt_at:%Y-%m-%d %H:%M:%S}" if d.status == "pending" else "",
                f"{d.sent_at:%Y-%m-%d %H:%M:%S}" if d.sent_at else "",
                d.last_error or "",
            )
            table.add_row(*map(Text, cells))
        if not table.row_count:
            table.caption = "no deliveries"
        return table

    print_table(run(in_transaction(settings, work)))


@dataclass
class DeliveryCounts:
    """What one `deliveries run` did so far, and what is left."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    pending: int = 0

    def line(self) -> str:
        return (
            f"{self.sent:,} sent, {self.retried:,} to retry, {self.dead:,} dead, "
            f"{self.pending:,} pending"
        )


class DeliveryProgress:
    """Live counts: a Rich status line on a terminal, else a plain line whenever they change."""

    def __init__(self) -> None:
        self.console = err_console()
        self.live: Status | None = None
        self.shown = ""

    def __enter__(self) -> DeliveryProgress:
        if stderr_is_terminal():
            self.live = self.console.status("delivering")
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def update(self, counts: DeliveryCounts) -> None:
        line = f"deliveries: {counts.line()}"
        if line == self.shown:
            return
        self.shown = line
        if self.live is not None:
            self.live.update(line)
        else:
            self.console.print(line, highlight=False, soft_wrap=True)


@deliveries_app.command("run")
def run_deliveries(
    until_empty: Annotated[
        bool, typer.Option(help="Stop when nothing is pending (else run until stopped)")
    ] = False,
) -> None:
    """Deliver due notifications (what `clipwatch worker` does beside the sync), showing the
    sent, retried, dead and pending counts as it goes."""
    import asyncio
    from datetime import timedelta

    from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
    from clipwatch.db.migrate import upgrade_database
    from clipwatch.db.repositories.notifications import delivery_counts
    from clipwatch.discord.delivery import deliver_due, pending_count
    from clipwatch.discord.sender import sender_from_settings

    settings = settings_or_exit(writes=True)
    configure_cli_logging(settings)
    done = DeliveryCounts()  # this run's own, from each claim's report

    async def work(progress: DeliveryProgress) -> None:
        engine = create_engine(settings)
        sender = sender_from_settings(settings)
        try:
            await upgrade_database(engine)
            sm = create_sessionmaker(engine)

            async def outbox() -> dict[str, int]:
                async with session_scope(sm) as session:
                    return await delivery_counts(session)

            start = await outbox()

            async def show() -> None:
                now = await outbox()
                progress.update(
                    DeliveryCounts(
                        sent=max(now["sent"] - start["sent"], done.sent),
                        retried=done.retried,
                        dead=max(now["dead"] - start["dead"], done.dead),
                        pending=now["pending"],
                    )
                )

            async def watch() -> None:
                while True:
                    await show()
                    await asyncio.sleep(PROGRESS_EVERY_S)

            watcher = asyncio.create_task(watch())
            try:
                claim = timedelta(seconds=settings.delivery_claim_seconds)
                while True:
                    report = await deliver_due(sm, sender, settings.signing_key, claim=claim)
                    done.sent += report.sent
                    done.retried += report.retried
                    done.dead += report.dead
                    if report.messages == 0:
                        if until_empty and await pending_count(sm) == 0:
                            break
                        await asyncio.sleep(0.5)
            finally:
                await cancel_and_wait(watcher)
            await show()
        finally:
            await sender.aclose()
            await engine.dispose()

    with DeliveryProgress() as progress:
        run(work(progress))
    typer.echo(f"{done.sent} deliveries sent ({done.retried} to retry, {done.dead} dead)")


@deliveries_app.command("retry")
def retry_delivery(delivery_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """Send a dead delivery again."""
    from clipwatch.discord import routes as service

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> None:
        await service.retry_delivery(session, _operator(), delivery_id)

    run(in_transaction(settings, work))
    typer.echo(f"delivery {delivery_id} will be sent again")


discord_app = typer.Typer(help="The Discord application (slash commands).", no_args_is_help=True)


@discord_app.command("register-commands")
def register_commands(
    guild: Annotated[
        str | None, typer.Option(help="Register in one guild (instant; for testing)")
    ] = None,
) -> None:
    """Register `/clips` and `/clipwatch` with Discord (global, or in one guild)."""
    import httpx

    from clipwatch.discord.interactions import COMMANDS

    settings = settings_or_exit()
    app_id, bot = settings.discord_application_id, settings.discord_bot_token
    if not (app_id and bot):
        fail("set CLIPWATCH_DISCORD_APPLICATION_ID and CLIPWATCH_DISCORD_BOT_TOKEN")
    where = f"/guilds/{guild}" if guild else ""
    url = f"{settings.discord_api_url}/applications/{app_id}{where}/commands"
    try:
        answer = httpx.put(url, json=COMMANDS, headers={"Authorization": f"Bot {bot}"}, timeout=15)
    except httpx.TransportError as exc:
        fail(f"Discord did not answer ({type(exc).__name__})")
    if answer.status_code != 200:
        fail(f"Discord refused the commands ({answer.status_code}): {answer.text[:200]}")
    typer.echo(
        f"registered {len(answer.json())} command(s) {'in guild ' + guild if guild else 'globally'}"
    )


@discord_app.command("link-code")
def link_code(user: Annotated[str, typer.Argument(help="The clipwatch user name")]) -> None:
    """A one-time code (10 minutes) that links a Discord server to USER: someone with Manage
    Server runs `/clipwatch link code:<code>` there. A new code replaces USER's last one."""
    from clipwatch.accounts import service as accounts
    from clipwatch.discord.link_codes import new_link_code

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> str:
        owner = await accounts.user_by_name(session, user)
        made = await new_link_code(session, owner.id, key=settings.signing_key)
        return f"{made.code} (for {owner.name}; expires {made.expires_at:%Y-%m-%d %H:%M} UTC)"

    typer.echo(run(in_transaction(settings, work)))
