"""What the operator's commands show: `deliveries run` counts as it goes, the routes and
deliveries tables, the backfill's bars by channel login. On both databases."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service
from clipwatch.accounts.secrets import seal
from clipwatch.clips.importer import parse_line, store_batch
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.models import NotificationRoute
from tests.conftest import TEST_SECRET
from tests.factories import helix_clip
from tests.processes import CLIPWATCH, simulator, twitch_simulator

Sessions = async_sessionmaker[AsyncSession]


def _run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLIPWATCH, *args],
        cwd=tmp_path,
        env={**env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _route(sessionmaker: Sessions, hook: dict[str, str], **fields: object) -> int:
    async with session_scope(sessionmaker) as session:
        owner = await service.user_by_name(session, "owner")
        route = NotificationRoute(
            user_id=owner.id,
            webhook_id=hook["id"],
            webhook_token_sealed=seal(TEST_SECRET.encode(), hook["token"]),
            enabled=True,
            **fields,
        )
        session.add(route)
        await session.flush()
        return route.id


async def _store_fresh(sessionmaker: Sessions, prefix: str, count: int) -> None:
    recent = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [
        parse_line(orjson.dumps(helix_clip(id=f"{prefix}{i:03d}", created_at=recent)))
        for i in range(count)
    ]
    async with session_scope(sessionmaker) as session:
        await store_batch(session, rows, notify=True)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


async def test_deliveries_run_counts_as_it_goes_and_the_tables_tell_the_truth(
    settings: Settings, sessionmaker: Sessions, tmp_path: Path
) -> None:
    with simulator("discord", "--webhooks", "0") as (base, _process):
        async with httpx.AsyncClient() as http:
            hook = (await http.post(f"{base}/_sim/webhooks")).json()
        env = {
            **os.environ,
            "CLIPWATCH_DATABASE_URL": settings.database_url,
            "CLIPWATCH_SECRET_KEY": TEST_SECRET,
            "CLIPWATCH_DISCORD_API_URL": f"{base}/api/v10",
            "CLIPWATCH_LOG_FORMAT": "json",
        }
        async with session_scope(sessionmaker) as session:
            await service.create_user(session, "owner")
        await _route(
            sessionmaker,
            hook,
            name="highlights",
            filters={"channels": [], "min_views": 0},
            template={"name": "compact"},
            batching=True,
        )
        await _route(
            sessionmaker, hook, name="all", filters={}, template={"name": "card"}, batching=False
        )
        # 16 deliveries: one message for "highlights", eight for "all", which Discord's
        # limit (5 per 2 s for a webhook) spreads over seconds.
        await _store_fresh(sessionmaker, "First", 8)

        ran = _run(tmp_path, env, "deliveries", "run", "--until-empty")
        assert ran.returncode == 0, ran.stderr
        # Plain lines (stderr is no terminal), one whenever the counts moved.
        lines = ran.stderr.strip().splitlines()
        assert lines[0] == "deliveries: 0 sent, 0 to retry, 0 dead, 16 pending"
        assert lines[-1] == "deliveries: 16 sent, 0 to retry, 0 dead, 0 pending"
        shown = [
            re.fullmatch(r"deliveries: (\d+) sent, 0 to retry, 0 dead, (\d+) pending", x)
            for x in lines
        ]
        counts = [(int(m[1]), int(m[2])) for m in shown if m]
        assert len(counts) == len(lines)
        assert any(0 < sent < 16 for sent, _ in counts)  # seen while it went on
        assert all(sent + pending == 16 for sent, pending in counts)
        assert ran.stdout.strip() == "16 deliveries sent (0 to retry, 0 dead)"

        # One more route, which waits an hour; its template failed once (brackets and all).
        later = await _route(
            sessionmaker,
            hook,
            name="later",
            filters={"min_views": 10, "languages": ["en", "de"]},
            template={"custom": True, "title": "{{ clip.title }}"},
            delay_seconds=3600,
            last_error="template failed: [bad] {{ tag",
            last_error_at=datetime(2026, 11, 20, 12, 30, tzinfo=UTC),
            error_count=3,
        )
        await _store_fresh(sessionmaker, "Second", 1)

        routes = _run(tmp_path, env, "routes", "list")
        assert routes.returncode == 0, routes.stderr
        rows = {c[0]: c for c in map(_cells, routes.stdout.splitlines()) if c[0].isdigit()}
        assert rows["1"][1:9] == [
            "owner",
            "highlights",
            f"{hook['id']} (token hidden)",
            "compact",
            "every clip",
            "",
            "",  # no stream notices
            "yes",
        ]
        assert rows[str(later)][4:9] == [
            "custom",
            "min views: 10; languages: en, de",
            "3600 s",
            "",
            "yes",
        ]
        assert rows[str(later)][9] == "template failed: [bad] {{ tag (2026-11-20 12:30, 3 in all)"
        assert "{'" not in routes.stdout  # no Python dict

        listed = _run(tmp_path, env, "deliveries", "list", "--limit", "100")
        assert listed.returncode == 0, listed.stderr
        deliveries = [c for c in map(_cells, listed.stdout.splitlines()) if c[0].isdigit()]
        by_status: dict[str, list[list[str]]] = {}
        for row in deliveries:
            by_status.setdefault(row[3], []).append(row)
        assert len(by_status["sent"]) == 16
        assert len(by_status["pending"]) == 3  # the last clip, for each of the three routes
        when = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        for row in by_status["sent"]:
            assert row[5] == ""  # no next attempt for what was sent
            assert when.match(row[6])
        for row in by_status["pending"]:
            assert when.match(row[5])
            assert row[6] == ""


async def test_backfill_bars_name_channels_by_login_with_their_own_counts(
    settings: Settings, sessionmaker: Sessions, tmp_path: Path
) -> None:
    args = ("--channel", "alpha:120", "--channel", "beta:30", "--years", "0.2")
    with twitch_simulator(*args, "--points-per-minute", "100000") as twitch:
        env = twitch.env(settings.database_url, CLIPWATCH_LOG_FORMAT="json")
        added = _run(tmp_path, env, "channels", "add", "alpha", "beta")
        assert added.returncode == 0, added.stderr
        synced = _run(tmp_path, env, "sync", "--backfill")
        assert synced.returncode == 0, synced.stderr
        async with httpx.AsyncClient(base_url=twitch.base) as http:
            channels = (await http.get("/_sim/channels")).json()["data"]
            counts = {}
            for channel in channels:
                truth = await http.get("/_sim/truth", params={"broadcaster_id": channel["id"]})
                counts[channel["login"]] = len(truth.json()["ids"])
                assert channel["id"] not in synced.stdout  # named by login
    bars = {
        m[1]: int(m[2].replace(",", ""))
        for m in re.finditer(r"backfill (\w+) .*? (\d[\d,]*) clips", synced.stdout)
    }
    assert bars == counts
    assert counts["alpha"] > counts["beta"] > 0
