"""`clipwatch serve`: migrate, then run the API with the worker beside it (unless --no-worker).

Demo mode (docs/demo.md) runs on the separate demo database only: without Twitch credentials
and with a database the operator configured, `serve` stops and says what is missing, since
simulated clips must never mix into a real archive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from clipwatch.cli.common import configure_cli_logging, fail, run, settings_or_exit
from clipwatch.cli.incidents import check_alert_rules

if TYPE_CHECKING:
    from clipwatch.config import Settings


def serve_settings(demo: bool) -> Settings:
    """The settings `serve` runs with: demo mode always on the demo database."""
    from clipwatch.config import DEMO_DATABASE_URL

    settings = settings_or_exit()
    check_alert_rules(settings)
    if demo or settings.demo:
        return settings.model_copy(update={"demo": True, "database_url": DEMO_DATABASE_URL})
    if settings.demo_mode and settings.database_url != DEMO_DATABASE_URL:
        missing = " and ".join(
            name
            for name, value in (
                ("CLIPWATCH_TWITCH_CLIENT_ID", settings.twitch_client_id),
                ("CLIPWATCH_TWITCH_CLIENT_SECRET", settings.twitch_client_secret),
            )
            if not value
        )
        fail(
            f"{missing} not set: a configured database is served live only (demo data never "
            "goes into it); set the Twitch credentials, or run `clipwatch serve --demo` for "
            "simulated data in the separate demo database"
        )
    return settings


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8000,
    worker: Annotated[
        bool, typer.Option(help="Run the sync and delivery worker in this process")
    ] = True,
    demo: Annotated[
        bool,
        typer.Option(
            help="Simulated data, even with Twitch credentials, in the demo database "
            "(./var/demo.db, wiped at start)"
        ),
    ] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request")] = True,
) -> None:
    """Run the HTTP API and the worker (migrating the database first)."""
    settings = serve_settings(demo)
    configure_cli_logging(settings)
    from clipwatch.cli.serving import serve_api

    run(serve_api(settings, host, port, access_log, worker))
