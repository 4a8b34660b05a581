"""`clipwatch routes add|list|remove|test` and `clipwatch deliveries list|retry`.

The operator's commands: they act with admin rights (routes of any user), the way the API
acts for an admin.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, TypeVar

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts import service as accounts
from clipwatch.cli.common import fail, in_transaction, run, settings_or_exit
from clipwatch.db.engine import create_engine, create_sessionmaker
from clipwatch.db.migrate import upgrade_database
from clipwatch.discord import routes as service
from clipwatch.discord.sender import sender_from_settings

routes_app = typer.Typer(help="Discord notification routes.", no_args_is_help=True)
deliveries_app = typer.Typer(help="The Discord delivery outbox.", no_args_is_help=True)
T = TypeVar("T")
OPERATOR = accounts.operator("cli")


class TemplateName(StrEnum):
    card = "card"
    compact = "compact"
    link = "link"


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
) -> None:
    """Post new clips that pass the filters to a Discord webhook."""
    settings = settings_or_exit()

    async def work(session: AsyncSession) -> str:
        owner = await accounts.user_by_name(session, user)
        route = await service.create_route(
            session,
            OPERATOR,
            {
                "name": name,
                "webhook_url": webhook_url,
                "filters": {"channels": [c.lower() for c in channel or []], "min_views": min_views},
                "template": {"name": template.value},
                "delay_seconds": delay,
            },
            key=settings.signing_key,
            allowed_hosts=settings.webhook_allowed_hosts.split(","),
            owner_id=owner.id,
        )
        return f"route {route.id} ({route.name}) added for {owner.name}"

    typer.echo(run(in_transaction(settings, work)))


@routes_app.command("list")
def list_routes() -> None:
    """Every route (webhook tokens hidden)."""
    settings = settings_or_exit()

    async def work(session: AsyncSession) -> Group:
        table = Table("id", "owner", "name", "webhook", "filters", "enabled")
        errors: list[Text] = []  # under the table: an error is too long for a column
        for route in await service.routes_of(session, OPERATOR):
            state = "yes" if route.enabled else f"no: {route.disabled_reason}"
            table.add_row(
                str(route.id),
                str(route.user_id),
                route.name,
                f"{route.webhook_id} (token hidden)",
                str(route.filters or {}),
                state,
            )
            if route.last_error:
                when = f"{route.last_error_at:%Y-%m-%d %H:%M}" if route.last_error_at else "?"
                # Text, not markup: a template's [brackets] are shown as written.
                errors.append(
                    Text(
                        f"route {route.id} last error {when} ({route.error_count} in all): "
                        f"{route.last_error}"
                    )
                )
        return Group(table, *errors)

    Console().print(run(in_transaction(settings, work)))


@routes_app.command("remove")
def remove_route(route_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """Remove a route (its undelivered notifications go with it)."""
    settings = settings_or_exit()

    async def work(session: AsyncSession) -> None:
        await service.delete_route(session, OPERATOR, route_id)

    run(in_transaction(settings, work))
    typer.echo(f"route {route_id} removed")


@routes_app.command("test")
def test_route(route_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """Post a message marked as a test through a route, showing the newest stored clip it
    would post (the sample when none). A gone webhook disables the route."""
    settings = settings_or_exit()

    async def work(session: AsyncSession) -> service.TestSend:
        sender = sender_from_settings(settings)
        try:
            return await service.send_test_message(
                session, OPERATOR, route_id, sender, key=settings.signing_key
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
    settings = settings_or_exit()

    async def work(session: AsyncSession) -> Table:
        table = Table("id", "route", "clip", "status", "attempts", "next attempt", "error")
        for d in await service.deliveries_of(session, OPERATOR, "dead" if dead else None, limit):
            table.add_row(
                str(d.id),
                str(d.route_id),
                d.clip_id,
                d.status,
                str(d.attempts),
                f"{d.next_attempt_at:%Y-%m-%d %H:%M:%S}",
                d.last_error or "",
            )
        return table

    Console().print(run(in_transaction(settings, work)))


@deliveries_app.command("run")
def run_deliveries(
    until_empty: Annotated[
        bool, typer.Option(help="Stop when nothing is pending (else run until stopped)")
    ] = False,
) -> None:
    """Deliver due notifications (what `clipwatch worker` does beside the sync)."""
    import asyncio
    from datetime import timedelta

    from clipwatch.discord.delivery import deliver_due, pending_count
    from clipwatch.monitoring.logging import configure_logging

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format, settings.log_file)

    async def work() -> int:
        engine = create_engine(settings)
        sender = sender_from_settings(settings)
        sent = 0
        try:
            await upgrade_database(engine)
            sm = create_sessionmaker(engine)
            claim = timedelta(seconds=settings.delivery_claim_seconds)
            while True:
                report = await deliver_due(sm, sender, settings.signing_key, claim=claim)
                sent += report.sent
                if report.messages == 0:
                    if until_empty and await pending_count(sm) == 0:
                        return sent
                    await asyncio.sleep(0.5)
        finally:
            await sender.aclose()
            await engine.dispose()

    typer.echo(f"{run(work())} deliveries sent")


@deliveries_app.command("retry")
def retry_delivery(delivery_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """Send a dead delivery again."""
    settings = settings_or_exit()

    async def work(session: AsyncSession) -> None:
        await service.retry_delivery(session, OPERATOR, delivery_id)

    run(in_transaction(settings, work))
    typer.echo(f"delivery {delivery_id} will be sent again")


discord_app = typer.Typer(help="The Discord application (slash commands).", no_args_is_help=True)


@discord_app.command("register-commands")
def register_commands(
    guild: Annotated[
        str | None, typer.Option(help="Register in one guild (instant; for testing)")
    ] = None,
) -> None:
    """Register `/clips` with Discord (global, or in one guild)."""
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
