"""`clipwatch eventsub connect|status`: the Twitch user token EventSub needs, and the socket
as its holder last reported it. docs/eventsub.md"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from clipwatch.cli.common import fail, in_transaction, print_table, run, settings_or_exit

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

eventsub_app = typer.Typer(
    help="EventSub over WebSocket: live state the moment it changes.", no_args_is_help=True
)


@eventsub_app.command("connect")
def connect_command(
    user_token: Annotated[
        str,
        typer.Option(
            "--user-token",
            envvar="CLIPWATCH_EVENTSUB_USER_TOKEN",
            help="A Twitch user access token of this client id (any user; no scope needed)",
        ),
    ],
    refresh_token: Annotated[
        str | None,
        typer.Option(
            "--refresh-token",
            envvar="CLIPWATCH_EVENTSUB_REFRESH_TOKEN",
            help="Its refresh token: without one, EventSub stops when the token expires",
        ),
    ] = None,
) -> None:
    """Check the token with Twitch (/oauth2/validate) and store it sealed for EventSub."""
    from clipwatch.twitch.user_tokens import check_user_token, store_user_token

    settings = settings_or_exit(writes=True)
    if not settings.twitch_client_id:
        fail("Twitch is not configured (CLIPWATCH_TWITCH_CLIENT_ID/SECRET)")

    async def work() -> str:
        owner = await check_user_token(settings, user_token)

        async def store(session: AsyncSession) -> None:
            await store_user_token(session, settings, owner, user_token, refresh_token)

        await in_transaction(settings, store)
        return owner.login or owner.user_id

    login = run(work())
    print(
        f"EventSub token of {login} stored"
        + ("" if refresh_token else " (no refresh token: it stops working when it expires)")
    )


def _when(value: Any) -> str:
    if value is None:
        return "never"
    return value if isinstance(value, str) else f"{value:%Y-%m-%d %H:%M:%S}"


@eventsub_app.command("status")
def status_command() -> None:
    """The socket (holder, session, cost), the token (no secrets) and the subscriptions."""
    from rich.table import Table
    from rich.text import Text

    from clipwatch.runtime.eventsub_task import eventsub_overview

    settings = settings_or_exit()
    overview = run(in_transaction(settings, eventsub_overview))
    facts = Table(title="eventsub", show_header=False)
    token = overview["token"]
    cost = (
        f"{overview['total_cost']} of {overview['max_total_cost']}"
        if overview["max_total_cost"] is not None
        else f"{overview['cost_enabled']} (Twitch's limit not seen yet)"
    )
    rows = {
        "enabled": "yes" if settings.eventsub_enabled else "no (CLIPWATCH_EVENTSUB_ENABLED)",
        "socket": overview["socket"],
        "holder": overview["holder"] or "none",
        "session": overview["session_id"] or "none",
        "connected_at": _when(overview["connected_at"]),
        "last message": _when(overview["last_message_at"]),
        "subscriptions": str(overview["enabled_subscriptions"]),
        "cost": cost,
        "channels by EventSub": str(overview["covered_channels"] or 0),
        "channels polled (over budget)": str(overview["over_budget_channels"] or 0),
        "token": "none (clipwatch eventsub connect)"
        if token is None
        else f"{token['login']} (validated {_when(token['validated_at'])}, "
        f"expires {_when(token['expires_at'])})",
    }
    for key, value in rows.items():
        facts.add_row(key, Text(str(value)))
    print_table(facts)
    subs = Table("type", "version", "channel", "status", "cost", "created")
    for sub in overview["subscriptions"]:
        subs.add_row(
            *map(
                Text,
                (
                    sub["type"],
                    sub["version"],
                    sub["channel_id"],
                    sub["status"],
                    str(sub["cost"]),
                    _when(sub["created_at"]),
                ),
            )
        )
    if not subs.row_count:
        subs.caption = "no subscriptions"
    print_table(subs)
    if overview["problem"]:
        from clipwatch.cli.common import err_console

        err_console().print(
            f"[red]problem:[/red] {overview['problem']}", highlight=False, soft_wrap=True
        )
