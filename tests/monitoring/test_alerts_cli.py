"""`clipwatch incidents list|ack|resolve`, and a bad rules file stopping `worker` in one line."""

from __future__ import annotations

import asyncio
from pathlib import Path

from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from clipwatch.db.repositories import incidents as repo
from clipwatch.monitoring.alerts.evaluator import fingerprint
from tests.cli.test_commands import run
from tests.cli.test_startup import _loaded_after
from tests.monitoring.alerts_helpers import START


def add_incident(tmp_path: Path) -> None:
    async def work() -> None:
        url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
        engine = create_engine(load_settings(database_url=url, secret_key="cli-test"))
        try:
            async with session_scope(create_sessionmaker(engine)) as session:
                await repo.add_incident(
                    session,
                    fingerprint=fingerprint("redis_down", {}),
                    rule="redis_down",
                    severity="warning",
                    labels={},
                    summary="Redis does not answer",
                    state="firing",
                    first_seen_at=START,
                    fired_at=START,
                    last_seen_at=START,
                )
        finally:
            await engine.dispose()

    asyncio.run(work())


def test_list_ack_and_resolve(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "upgrade").returncode == 0
    add_incident(tmp_path)
    listed = run(tmp_path, "incidents", "list")
    assert listed.returncode == 0, listed.stderr
    assert "Redis does not answer" in listed.stdout
    acked = run(tmp_path, "incidents", "ack", "1", "--note", "restarting it")
    assert (acked.returncode, acked.stdout.strip()) == (0, "incident 1 acknowledged")
    assert run(tmp_path, "incidents", "resolve", "1").returncode == 0
    again = run(tmp_path, "incidents", "resolve", "1")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == ["error: incident 1 is already resolved"]
    assert "no incidents" in run(tmp_path, "incidents", "list").stdout
    resolved = run(tmp_path, "incidents", "list", "--state", "resolved").stdout
    assert "restarting it" in resolved


def test_a_bad_rules_file_stops_the_worker_in_one_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: r\n    signal: redis_down\n    for: soon\n")
    done = run(tmp_path, "worker", CLIPWATCH_ALERT_RULES_FILE=str(rules))
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert "rules(r)" in line


def test_incidents_help_imports_nothing_heavy(tmp_path: Path) -> None:
    assert _loaded_after(tmp_path, "incidents", "--help") == set()
