"""`clipwatch serve`: migrate, then run the API (the workers join in later issues)."""

from __future__ import annotations

from typing import Annotated

import structlog
import typer
import uvicorn

from clipwatch.api.app import create_app
from clipwatch.api.routers.health import DEMO_BANNER
from clipwatch.cli.common import run, settings_or_exit
from clipwatch.clips.demo import seed_demo_archive
from clipwatch.config import Settings
from clipwatch.db.engine import create_engine, create_sessionmaker
from clipwatch.db.migrate import upgrade_database
from clipwatch.monitoring.logging import configure_logging

log = structlog.get_logger("clipwatch.serve")


async def prepare(settings: Settings) -> None:
    """Migrate the schema; in demo mode, seed the demo archive."""
    engine = create_engine(settings)
    try:
        await upgrade_database(engine)
        if settings.demo_mode:
            report = await seed_demo_archive(create_sessionmaker(engine))
            if report:
                log.info("demo_archive_seeded", clips=report.stored)
    finally:
        await engine.dispose()


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8000,
    demo: Annotated[bool, typer.Option(help="Simulated data even with Twitch credentials")] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request")] = True,
) -> None:
    """Run the HTTP API (migrating the database first)."""
    settings = settings_or_exit(demo=True) if demo else settings_or_exit()
    configure_logging(settings.log_level, settings.log_format, settings.log_file)
    if settings.demo_mode:
        log.warning("demo_mode", banner=DEMO_BANNER, database=settings.database_url)
    run(prepare(settings))
    log.info("serving", url=f"http://{host}:{port}", docs=f"http://{host}:{port}/docs")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=access_log,
        proxy_headers=False,
    )
