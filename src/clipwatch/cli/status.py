"""`clipwatch status`: what `/api/v1/status` says, read from the database by any process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clipwatch.cli.common import in_transaction, run, settings_or_exit

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy.ext.asyncio import AsyncSession

    from clipwatch.runtime.status import WorkerReport


@dataclass
class _Status:
    sync: dict[str, Any]
    deliveries: dict[str, Any]
    workers: list[WorkerReport]
    routes: list[dict[str, Any]]
    incidents: list[str]  # the alert manager's open incidents
    errors: list[str]  # error tracking: unhandled errors of the last day


def _when(moment: Any) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "never"


def _workers_table(reports: list[WorkerReport]) -> Table:
    from rich.table import Table

    table = Table("worker", "alive", "task", "state", "last success", "failures", "restarts")
    table.add_column("last error", overflow="fold")
    for report in reports:
        for task in report.tasks:
            table.add_row(
                report.worker,
                "yes" if report.alive else "no",
                task["task"],
                task["state"],
                _when(task["last_success_at"]),
                str(task["consecutive_failures"]),
                str(task["restarts"]),
                task["last_error"] or "",
            )
    return table


def _facts(title: str, values: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, value in values.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) if key == "live_channels" else len(value)
        table.add_row(key, _when(value) if key.endswith("_at") else str(value))
    return table


def status_command(
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when there is a problem (for cron, probes)")
    ] = False,
) -> None:
    """Sync, deliveries and every worker's tasks, with the problems worth a look."""
    from rich.console import Console

    from clipwatch.db.repositories import notifications, sync_state
    from clipwatch.runtime.status import (
        ROUTE_ERRORS_SHOWN_FOR,
        error_problems,
        eventsub_line,
        incident_problems,
        route_problems,
        sync_problems,
        worker_problems,
        worker_reports,
    )
    from clipwatch.runtime.supervisor import now

    settings = settings_or_exit()

    async def work(session: AsyncSession) -> _Status:
        return _Status(
            sync=await sync_state.sync_summary(session),
            deliveries=await notifications.delivery_counts(session),
            workers=await worker_reports(session),
            routes=await notifications.troubled_routes(session, now() - ROUTE_ERRORS_SHOWN_FOR),
            incidents=await incident_problems(session),
            errors=await error_problems(session),
        )

    status = run(in_transaction(settings, work))
    console = Console()
    console.print(f"mode: {'demo' if settings.demo_mode else 'live'}")
    console.print(_facts("sync", status.sync))
    console.print(_facts("deliveries", status.deliveries))
    if status.workers:
        console.print(_workers_table(status.workers))
        console.print(eventsub_line(status.workers), highlight=False, soft_wrap=True)
    else:
        console.print("no worker has reported in the last hour")
    problems = (
        worker_problems(status.workers)
        + sync_problems(status.sync)
        + route_problems(status.routes)
        + status.incidents
        + status.errors
    )
    for problem in problems:
        console.print(f"[red]problem:[/red] {problem}", highlight=False, soft_wrap=True)
    if check and problems:
        raise typer.Exit(code=1)
