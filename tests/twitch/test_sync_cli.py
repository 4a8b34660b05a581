"""`clipwatch sync` as an operator runs it against a Twitch that sends unreadable clips: one
error line and exit 1, the quarantine listed, the channel's error in `channels list`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx

from tests.processes import CLIPWATCH, twitch_simulator


def clipwatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLIPWATCH), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_sync_with_an_unreadable_channel(tmp_path: Path) -> None:
    args = ("--channel", "alpha:20", "--channel", "broken:3", "--years", "0.05")
    with twitch_simulator(*args, "--points-per-minute", "1000000") as twitch:
        env = twitch.env(
            f"sqlite+aiosqlite:///{tmp_path}/cli.db",
            CLIPWATCH_LOG_LEVEL="error",
            COLUMNS="250",
        )
        channels = httpx.get(f"{twitch.base}/_sim/channels").json()["data"]
        broken = next(c["id"] for c in channels if c["login"] == "broken")
        ids = httpx.get(f"{twitch.base}/_sim/truth", params={"broadcaster_id": broken}).json()
        for clip_id in ids["ids"]:
            fields = json.dumps({"created_at": "garbage", "title": "a\u0000b"})
            answer = httpx.get(f"{twitch.base}/_sim/raw", params={"id": clip_id, "fields": fields})
            assert answer.status_code == 200, answer.text
            assert answer.json()["created_at"] == "garbage"

        assert clipwatch(env, "channels", "add", "alpha", "broken").returncode == 0
        done = clipwatch(env, "sync", "--backfill")
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        (line,) = [line for line in done.stderr.splitlines() if line.strip()]
        # Its recent step fails if one of its clips is recent, else its backfill: how many
        # it saw depends on where the seeded clips fell.
        failed = re.fullmatch(
            r"error: 1 channel\(s\) failed: broken: UnreadableChannel: every clip Twitch "
            r"returned was unreadable \(([123]) quarantined\)",
            line,
        )
        assert failed is not None, line
        assert "20 new clips" in done.stdout
        assert f"{failed[1]} clips quarantined" in done.stdout

        listed = clipwatch(env, "sync", "--quarantine")
        assert listed.returncode == 0, listed.stderr
        assert sum(clip_id in listed.stdout for clip_id in ids["ids"]) == int(failed[1])
        assert listed.stdout.count("created_at: Value error, not a timestamp") == int(failed[1])

        table = clipwatch(env, "channels", "list")
        assert table.returncode == 0, table.stderr
        (row,) = [line for line in table.stdout.splitlines() if "broken" in line]
        assert "UnreadableChannel" in row
