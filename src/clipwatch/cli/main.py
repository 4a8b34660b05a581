"""Typer application: wires the command groups together, with the options every command has."""

from __future__ import annotations

from typing import Annotated

import typer

from clipwatch.cli import (
    accounts,
    audit,
    clips,
    config,
    db,
    discord,
    eventsub,
    incidents,
    serve,
    status,
    twitch,
)
from clipwatch.cli.common import options

app = typer.Typer(
    help="clipwatch: a searchable archive of Twitch clips.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def global_options(
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Also show other libraries' log lines (Alembic, …)"),
    ] = False,
    database: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="The database to use (default: CLIPWATCH_DATABASE_URL, else ./var/clipwatch.db; "
            "./var/demo.db without Twitch credentials)",
        ),
    ] = None,
) -> None:
    """clipwatch: a searchable archive of Twitch clips."""
    options.verbose = verbose
    options.database = database


app.command("serve")(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(config.app, name="config")
app.add_typer(clips.app, name="clips")
app.add_typer(accounts.users_app, name="users")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(accounts.tokens_app, name="tokens")
app.add_typer(twitch.channels_app, name="channels")
app.command("sync")(twitch.sync_command)
app.command("worker")(twitch.worker_command)
app.command("status")(status.status_command)
app.add_typer(twitch.simulate_app, name="simulate")
app.add_typer(discord.routes_app, name="routes")
app.add_typer(discord.deliveries_app, name="deliveries")
app.add_typer(discord.discord_app, name="discord")
app.add_typer(incidents.incidents_app, name="incidents")
app.add_typer(eventsub.eventsub_app, name="eventsub")
