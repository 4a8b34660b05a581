"""`kill -9` of the delivery worker mid-burst, then a restart: every clip delivered, and
duplicates only from the message in flight at the kill."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from clipwatch.clips.importer import parse_line, store_batch
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from tests.conftest import TEST_SECRET
from tests.factories import helix_clip
from tests.processes import CLIPWATCH, simulator
from tests.twitch.test_kill_resume import empty

CLIPS = 250
DEADLINE_S = 120.0


async def _store_fresh(url: str) -> None:
    engine = create_engine(load_settings(database_url=url, secret_key=TEST_SECRET))
    recent = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [
        parse_line(orjson.dumps(helix_clip(id=f"Burst{i:04d}", created_at=recent)))
        for i in range(CLIPS)
    ]
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            await store_batch(session, rows, notify=True)
    finally:
        await engine.dispose()


def test_kill_9_mid_burst_then_restart(database_url: str, tmp_path: Path) -> None:
    empty(database_url)
    with simulator("discord", "--webhooks", "0") as (base, _sim):
        hook = httpx.post(f"{base}/_sim/webhooks").json()
        env = {
            **os.environ,
            "CLIPWATCH_DATABASE_URL": database_url,
            "CLIPWATCH_SECRET_KEY": TEST_SECRET,
            "CLIPWATCH_DISCORD_API_URL": f"{base}/api/v10",
            "CLIPWATCH_DELIVERY_CLAIM_SECONDS": "3",
            "CLIPWATCH_LOG_LEVEL": "warning",
        }
        run: dict[str, Any] = {"env": env, "cwd": tmp_path, "capture_output": True, "text": True}
        assert (
            subprocess.run(
                [CLIPWATCH, "users", "create", "owner"], check=False, timeout=60, **run
            ).returncode
            == 0
        )
        url = f"https://discord.com/api/webhooks/{hook['id']}/{hook['token']}"  # as pasted
        added = subprocess.run(
            [CLIPWATCH, "routes", "add", "owner", "burst", url], check=False, timeout=60, **run
        )
        assert added.returncode == 0, added.stderr
        asyncio.run(_store_fresh(database_url))

        first = subprocess.Popen(
            [CLIPWATCH, "deliveries", "run"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + DEADLINE_S
        while len(httpx.get(f"{base}/_sim/messages").json()["messages"]) < 8:
            assert first.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)  # polling interval while waiting on the condition above
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        before = len(httpx.get(f"{base}/_sim/messages").json()["messages"])
        assert before < CLIPS // 10  # killed mid-burst

        second = subprocess.run(
            [CLIPWATCH, "deliveries", "run", "--until-empty"],
            check=False,
            timeout=DEADLINE_S,
            **run,
        )
        assert second.returncode == 0, second.stderr
        messages = httpx.get(f"{base}/_sim/messages").json()["messages"]
        delivered = Counter(
            e["url"].rsplit("/", 1)[1] for m in messages for e in m["payload"]["embeds"]
        )
        assert set(delivered) == {f"Burst{i:04d}" for i in range(CLIPS)}
        duplicates = sum(n - 1 for n in delivered.values())
        assert duplicates <= 10  # at most the one message in flight at the kill
