"""`clipwatch clips export` as an operator runs it, on both databases: the same rows and
order as the API's export, a file or stdout, one-line errors."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from pathlib import Path

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from tests.api.test_accounts import bearer, make_user
from tests.factories import helix_clip, store_clips
from tests.processes import CLIPWATCH


def export(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CLIPWATCH_DATABASE_URL": settings.database_url,
        "CLIPWATCH_SECRET_KEY": "cli-test",
        "CLIPWATCH_TWITCH_CLIENT_ID": "x",  # an operator's database, not the demo's
        "CLIPWATCH_TWITCH_CLIENT_SECRET": "x",
    }
    return subprocess.run(
        [str(CLIPWATCH), "clips", "export", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_cli_export_is_the_apis(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    _, alice = await make_user(sessionmaker, "alice")
    clips = [
        helix_clip(title=f"pog {i}" if i % 2 else f"calm {i}", view_count=i) for i in range(40)
    ]
    await store_clips(sessionmaker, clips)
    api = await client.get("/api/v1/clips/export", params={"sort": "views"}, headers=bearer(alice))
    done = export(settings, tmp_path, str(tmp_path / "out.csv"), "--sort", "views")
    assert done.returncode == 0, done.stderr
    assert "40 clips exported" in done.stderr
    assert (tmp_path / "out.csv").read_bytes() == api.content

    to_stdout = export(
        settings, tmp_path, "-", "--format", "jsonl", "--q", "pog", "--max-rows", "5"
    )
    assert to_stdout.returncode == 0, to_stdout.stderr
    rows = [orjson.loads(line) for line in to_stdout.stdout.splitlines()]
    assert len(rows) == 5
    assert all(r["title"].startswith("pog") for r in rows)

    filtered = export(settings, tmp_path, "-", "--min-views", "35", "--sort", "views")
    ids = [r["id"] for r in csv.DictReader(io.StringIO(filtered.stdout))]
    assert ids == [c["id"] for c in sorted(clips, key=lambda c: -c["view_count"])[:5]]


async def test_bad_options_are_one_line(settings: Settings, tmp_path: Path) -> None:
    for args in (["--format", "xml"], ["--sort", "loudest"], [str(tmp_path / "no" / "dir.csv")]):
        done = export(settings, tmp_path, *args)
        assert done.returncode != 0, args
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) <= 2, done.stderr
