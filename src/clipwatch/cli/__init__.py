"""The `clipwatch` command line. Errors print one line and exit non-zero."""

from __future__ import annotations

from clipwatch.cli.main import app

__all__ = ["app"]
