"""Typer application: wires the command groups together."""

from __future__ import annotations

import typer

from clipwatch.cli import accounts, clips, db, discord, serve, status, twitch

app = typer.Typer(
    help="clipwatch: a searchable archive of Twitch clips.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("serve")(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(clips.app, name="clips")
app.add_typer(accounts.users_app, name="users")
app.add_typer(accounts.tokens_app, name="tokens")
app.add_typer(twitch.channels_app, name="channels")
app.command("sync")(twitch.sync_command)
app.command("worker")(twitch.worker_command)
app.command("status")(status.status_command)
app.add_typer(twitch.simulate_app, name="simulate")
app.add_typer(discord.routes_app, name="routes")
app.add_typer(discord.deliveries_app, name="deliveries")
app.add_typer(discord.discord_app, name="discord")
