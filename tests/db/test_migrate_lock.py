"""Several processes migrating one new PostgreSQL database at once (a rolling upgrade, compose
scaling up): one migrates, the others wait on the advisory lock and find the schema at head.
Without the lock two ran the same CREATE TABLE and one failed."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from sqlalchemy import text

from clipwatch.db.engine import create_engine
from clipwatch.db.migrate import head_revisions, stored_revisions
from tests.conftest import TEST_SECRET
from tests.db.test_upgrades import postgresql_database, settings_for
from tests.processes import CLIPWATCH

UPGRADERS = 3


async def test_concurrent_upgrades_of_a_new_database_all_succeed(tmp_path: Path) -> None:
    async with postgresql_database() as url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CLIPWATCH_")},
            "CLIPWATCH_DATABASE_URL": url,
            "CLIPWATCH_SECRET_KEY": TEST_SECRET,
        }
        processes = [
            await asyncio.create_subprocess_exec(
                CLIPWATCH,
                "db",
                "upgrade",
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(UPGRADERS)
        ]
        outputs = await asyncio.wait_for(
            asyncio.gather(*(p.communicate() for p in processes)), timeout=180
        )
        codes = [p.returncode for p in processes]
        assert codes == [0] * UPGRADERS, [o[0].decode(errors="replace")[-500:] for o in outputs]
        engine = create_engine(settings_for(url, tmp_path))
        try:
            assert await stored_revisions(engine) == head_revisions()
            async with engine.connect() as conn:
                tables = (
                    await conn.execute(
                        text("SELECT count(*) FROM pg_tables WHERE tablename = 'clip'")
                    )
                ).scalar_one()
            assert tables == 1
        finally:
            await engine.dispose()
