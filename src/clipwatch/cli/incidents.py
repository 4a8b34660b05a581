"""`clipwatch incidents list|ack|resolve`: the alert manager's incidents, as an admin."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from clipwatch.cli.common import fail, in_transaction, print_table, run, settings_or_exit

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy.ext.asyncio import AsyncSession

    from clipwatch.config import Settings

incidents_app = typer.Typer(help="Incidents opened by the alert rules.", no_args_is_help=True)
CLI_USER = "cli"


def check_alert_rules(settings: Settings) -> None:
    """`serve` and `worker` stop at once, in one line, on alert rules they cannot use."""
    from clipwatch.errors import ConfigError
    from clipwatch.monitoring.alerts.setup import config_from_settings

    try:
        config_from_settings(settings)
    except ConfigError as exc:
        fail(str(exc))


class StateFilter(StrEnum):
    open = "open"
    firing = "firing"
    acknowledged = "acknowledged"
    resolved = "resolved"
    all = "all"


@incidents_app.command("list")
def list_incidents(
    state: Annotated[StateFilter, typer.Option(help="Which incidents")] = StateFilter.open,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Incidents, newest first (open ones by default)."""
    from rich.table import Table
    from rich.text import Text

    from clipwatch.monitoring.alerts import service

    settings = settings_or_exit()
    if state is StateFilter.all:
        states: list[str] = []
    elif state is StateFilter.open:
        states = ["firing", "acknowledged"]
    else:
        states = [state.value]

    async def work(session: AsyncSession) -> Table:
        found, notes = await service.list_incidents(session, states=states, limit=limit)
        table = Table("id", "severity", "state", "rule", "since", "last seen", "count")
        table.add_column("summary", overflow="fold")
        for i in found:
            last_note = notes[i.id][-1].text if notes.get(i.id) else ""
            cells = (
                str(i.id),
                i.severity,
                i.state,
                i.rule,
                f"{i.fired_at:%Y-%m-%d %H:%M:%S}",
                f"{i.last_seen_at:%Y-%m-%d %H:%M:%S}",
                str(i.count),
                i.summary + (f" — note: {last_note}" if last_note else ""),
            )
            table.add_row(*map(Text, cells))
        if not table.row_count:
            table.caption = "no incidents"
        return table

    print_table(run(in_transaction(settings, work)))


@incidents_app.command("ack")
def acknowledge_incident(
    incident_id: Annotated[int, typer.Argument(min=1)],
    note: Annotated[str | None, typer.Option(help="A note kept with the incident")] = None,
) -> None:
    """Acknowledge an incident: someone is on it (no more repeated messages)."""
    from clipwatch.monitoring.alerts import service

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> None:
        await service.acknowledge(session, incident_id, CLI_USER, note)

    run(in_transaction(settings, work))
    typer.echo(f"incident {incident_id} acknowledged")


@incidents_app.command("resolve")
def resolve_incident(
    incident_id: Annotated[int, typer.Argument(min=1)],
    note: Annotated[str | None, typer.Option(help="A note kept with the incident")] = None,
) -> None:
    """Resolve an incident by hand (if its condition still holds, a new one opens after
    the rule's `for`)."""
    from clipwatch.monitoring.alerts import service

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> None:
        await service.resolve(session, incident_id, CLI_USER, note)

    run(in_transaction(settings, work))
    typer.echo(f"incident {incident_id} resolved")
