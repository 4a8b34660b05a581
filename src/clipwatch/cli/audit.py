"""`clipwatch audit list`: the moderation audit log (docs/moderation.md)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from clipwatch.cli.common import in_transaction, print_table, run, settings_or_exit

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy.ext.asyncio import AsyncSession

audit_app = typer.Typer(help="Who hid what, and why.", no_args_is_help=True)


class ActionOption(StrEnum):
    hide = "clip.hide"
    unhide = "clip.unhide"
    role = "user.role"
    tag_create = "tag.create"
    tag_update = "tag.update"
    tag_delete = "tag.delete"


@audit_app.command("list")
def list_entries(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first")] = 50,
    action: Annotated[ActionOption | None, typer.Option(help="Only this action")] = None,
    target: Annotated[
        str | None, typer.Option(help="Only this clip id (or user:<id>, tag:<id>)")
    ] = None,
) -> None:
    """The newest audit entries."""
    from rich.table import Table

    from clipwatch.clips import moderation

    async def work(session: AsyncSession) -> Table:
        rows, _ = await moderation.audit_log(
            session,
            before=None,
            limit=limit,
            action=action.value if action else None,
            target=target,
        )
        table = Table("id", "at", "actor", "action", "target", "reason")
        for r in rows:
            table.add_row(
                str(r.id), f"{r.at:%Y-%m-%d %H:%M:%S}", r.actor, r.action, r.target, r.reason or ""
            )
        return table

    print_table(run(in_transaction(settings_or_exit(), work)))
