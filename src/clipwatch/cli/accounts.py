"""`clipwatch users create|list` and `clipwatch tokens create|list|revoke`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from clipwatch.cli.common import in_transaction, print_table, run, settings_or_exit

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy.ext.asyncio import AsyncSession

users_app = typer.Typer(help="People who use clipwatch.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)


class ScopeOption(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


@users_app.command("create")
def create_user(
    name: Annotated[str, typer.Argument(help="Letters, digits, '_', '.' or '-'")],
    admin: Annotated[bool, typer.Option(help="Make an admin")] = False,
) -> None:
    """Create a user (then give them a token with `clipwatch tokens create`)."""
    from clipwatch.accounts import service

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> str:
        user = await service.create_user(session, name, admin=admin)
        return f"user {user.name} created (id {user.id}, {user.role})"

    typer.echo(run(in_transaction(settings, work)))


class RoleOption(StrEnum):
    member = "member"
    moderator = "moderator"
    admin = "admin"


@users_app.command("role")
def set_role(
    name: Annotated[str, typer.Argument(help="The user's name")],
    role: Annotated[RoleOption, typer.Argument(help="member, moderator (hides clips) or admin")],
) -> None:
    """Change what a user may do; written to the audit log."""
    from clipwatch.accounts import service
    from clipwatch.accounts.service import operator
    from clipwatch.clips.moderation import record_role

    settings = settings_or_exit(writes=True)

    async def work(session: AsyncSession) -> str:
        user = await service.user_by_name(session, name)
        if not await service.set_role(session, user, role.value):
            return f"user {user.name} is already a {role.value}"
        await record_role(session, operator("cli"), user)
        return f"user {user.name} is now a {role.value}"

    typer.echo(run(in_transaction(settings, work)))


@users_app.command("list")
def list_users() -> None:
    """Every user."""
    from rich.table import Table

    from clipwatch.db.repositories import accounts as repo

    async def work(session: AsyncSession) -> Table:
        table = Table("id", "name", "role", "created")
        for user in await repo.list_users(session):
            table.add_row(str(user.id), user.name, user.role, f"{user.created_at:%Y-%m-%d}")
        return table

    print_table(run(in_transaction(settings_or_exit(), work)))


@tokens_app.command("create")
def create_token(
    user: Annotated[str, typer.Argument(help="The user's name")],
    scope: Annotated[
        list[ScopeOption] | None, typer.Option(help="Repeatable; default: read and write")
    ] = None,
    name: Annotated[str, typer.Option(help="What the token is for")] = "cli",
    expires_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Expire after this many days")
    ] = None,
) -> None:
    """Create an API token and print it (this once; only its hash is kept)."""
    from clipwatch.accounts import service

    settings = settings_or_exit(writes=True)
    scopes = frozenset(s.value for s in scope) if scope else frozenset({"read", "write"})
    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None

    async def work(session: AsyncSession) -> str:
        owner = await service.user_by_name(session, user)
        _token, plaintext = await service.create_token(
            session, owner, name=name, scopes=scopes, expires_at=expires
        )
        return plaintext

    typer.echo(run(in_transaction(settings, work)))


@tokens_app.command("list")
def list_tokens(user: Annotated[str, typer.Argument(help="The user's name")]) -> None:
    """A user's tokens (prefixes only)."""
    from rich.table import Table

    from clipwatch.accounts import service
    from clipwatch.db.repositories import accounts as repo

    async def work(session: AsyncSession) -> Table:
        owner = await service.user_by_name(session, user)
        table = Table("prefix", "name", "scopes", "created", "expires", "last used", "revoked")
        for t in await repo.list_tokens(session, owner.id):
            table.add_row(
                t.prefix,
                t.name,
                t.scopes,
                f"{t.created_at:%Y-%m-%d}",
                f"{t.expires_at:%Y-%m-%d}" if t.expires_at else "never",
                f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-",
                f"{t.revoked_at:%Y-%m-%d}" if t.revoked_at else "-",
            )
        return table

    print_table(run(in_transaction(settings_or_exit(), work)))


@tokens_app.command("revoke")
def revoke_token(
    prefix: Annotated[str, typer.Argument(help="The token's prefix (cw_xxxxxxxx) or the token")],
) -> None:
    """Revoke a token: it stops working at once."""
    from clipwatch.accounts import service

    settings = settings_or_exit(writes=True)
    key = prefix[:11]

    async def work(session: AsyncSession) -> str:
        token = await service.revoke_token_by_prefix(session, key)
        return f"token {token.prefix} ({token.name}) revoked"

    typer.echo(run(in_transaction(settings, work)))
