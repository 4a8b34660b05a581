"""The app served on a loopback port, in a thread of its own: for a browser, or a plain client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from clipwatch.api.app import create_app
from clipwatch.config import Settings
from tests.conftest import free_port

START_S = 20.0


@contextmanager
def serving_app(settings: Settings, *, demo_sink: str | None = None) -> Iterator[str]:
    """Yields the base URL; `base_url` is set to it (the clip player's `parent=` host).
    `demo_sink`: where the demo's Discord messages are read (as `serve` in demo mode passes)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(
        settings.model_copy(update={"base_url": base}), demo_sink=demo_sink, access_log=False
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the app did not start")
        time.sleep(0.02)  # polling a condition, with a deadline
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=START_S)


@pytest.fixture(name="database_url")
def sqlite_only(sqlite_url: str) -> str:
    """Imported by a browser test module, its database: SQLite only. What a browser adds
    (layout, the keyboard, JavaScript, axe) does not depend on the database; every page's
    answers are tested on both databases in-process (test_pages.py, test_me_page.py,
    test_routes_page.py, test_admin_page.py, test_channel_page.py). Halves the suite's
    slowest part (the browser tests took ~450 s of test time on both)."""
    return sqlite_url
