"""What each worker process last reported about its tasks (`worker_task`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import WorkerTask
from clipwatch.db.repositories._dialect import insert_for

REPORTED = (
    "state",
    "started_at",
    "heartbeat_at",
    "last_success_at",
    "last_error",
    "last_error_at",
    "consecutive_failures",
    "restarts",
    "detail",
)


async def report_tasks(session: AsyncSession, worker: str, rows: Sequence[dict[str, Any]]) -> None:
    """Write this worker's tasks as they stand now (one row per task, replaced each time)."""
    for row in rows:
        stmt = insert_for(session, WorkerTask).values(worker=worker, **row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[WorkerTask.worker, WorkerTask.task],
            set_={name: stmt.excluded[name] for name in REPORTED},
        )
        await session.execute(stmt)


async def forget_workers_before(session: AsyncSession, moment: datetime) -> None:
    """Drop the rows of processes that stopped reporting long ago."""
    await session.execute(delete(WorkerTask).where(WorkerTask.heartbeat_at < moment))


async def worker_tasks(session: AsyncSession, since: datetime) -> Sequence[WorkerTask]:
    """Every task of every worker that reported since `since`, newest workers first."""
    stmt = (
        select(WorkerTask)
        .where(WorkerTask.heartbeat_at >= since)
        .order_by(WorkerTask.worker, WorkerTask.task)
    )
    return (await session.scalars(stmt)).all()
