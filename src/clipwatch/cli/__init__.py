"""The `clipwatch` command line. Errors print one line and exit non-zero."""

from __future__ import annotations

import gc

from clipwatch.cli.main import app

__all__ = ["app", "main"]


def main() -> None:
    """The `clipwatch` program. The cyclic garbage collector is off while a command imports
    what it needs (FastAPI's routes, pydantic's and SQLAlchemy's models: ~0.3 s of a 1.8 s
    start went to collections that found nothing) and on again, with what startup made
    frozen out of its reach, once the command's work begins (`common.started`)."""
    gc.disable()
    app()
