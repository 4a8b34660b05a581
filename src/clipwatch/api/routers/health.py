"""Liveness, readiness and the status summary."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from clipwatch.api.deps import Session, State
from clipwatch.api.schemas import (
    CacheStatus,
    DeliveryStatus,
    StatusRead,
    SyncStatus,
    TaskStatus,
    WorkerProcessStatus,
    WorkerStatus,
)
from clipwatch.cache.health import redis_state
from clipwatch.cache.manager import CacheManager
from clipwatch.db.repositories import notifications, sync_state
from clipwatch.runtime.status import (
    ROUTE_ERRORS_SHOWN_FOR,
    error_problems,
    eventsub_line,
    incident_problems,
    route_problems,
    sync_problems,
    task_fields,
    worker_problems,
    worker_reports,
)
from clipwatch.runtime.supervisor import now
from clipwatch.runtime.worker import WorkerStats

router = APIRouter(tags=["health"])
status_router = APIRouter(tags=["status"])

DEMO_BANNER = "Demo mode: the clips here are simulated, not real Twitch data."


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers and the clip stream follows it (Redis state reported, "
    "not required)",
    responses={
        503: {
            "description": "The database does not answer, or the clip stream has not had its "
            "first look at it yet (a process just started)"
        }
    },
)
async def readyz(request: Request, state: State) -> JSONResponse:
    database = "ok"
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        database = "down"
    redis = await redis_state(state.settings.redis_url)
    hub = getattr(request.app.state, "stream_hub", None)
    stream = "ready" if hub is not None and hub.ready else "starting"
    status = 200 if database == "ok" and stream == "ready" else 503
    return JSONResponse(
        {"database": database, "redis": redis, "stream": stream}, status_code=status
    )


def _cache_status(cache: CacheManager) -> CacheStatus:
    stats = cache.stats
    looked = stats.hits + stats.misses
    return CacheStatus(
        mode=cache.mode,
        entries=len(cache.local),
        bytes=cache.local.bytes,
        hits=stats.hits,
        misses=stats.misses,
        hit_ratio=round(stats.hits / looked, 4) if looked else None,
        errors=stats.errors,
        evictions=cache.local.evictions,
    )


def _worker_status(stats: WorkerStats) -> WorkerStatus:
    tasks = [TaskStatus(**task_fields(t)) for t in stats.supervisor.tasks.values()]
    return WorkerStatus(
        running=stats.running,
        passes=stats.passes,
        failed_passes=stats.failed_passes,
        inserted=stats.inserted,
        messages=stats.messages,
        last_error=stats.last_error,
        tasks=tasks,
    )


@status_router.get("/status", response_model=StatusRead, summary="Mode, version and health")
async def status(state: State, session: Session) -> StatusRead:
    demo = state.settings.demo_mode
    worker = state.worker
    reports = await worker_reports(session)
    sync = await sync_state.sync_summary(session)
    routes = await notifications.troubled_routes(session, now() - ROUTE_ERRORS_SHOWN_FOR)
    incidents = await incident_problems(session)
    return StatusRead(
        mode="demo" if demo else "live",
        banner=DEMO_BANNER if demo else None,
        discord_sink=state.demo_sink,
        cache=_cache_status(state.cache),
        sync=SyncStatus.model_validate(sync),
        eventsub=eventsub_line(reports).removeprefix("eventsub: "),
        deliveries=DeliveryStatus.model_validate(await notifications.delivery_counts(session)),
        worker=None if worker is None else _worker_status(worker),
        workers=[
            WorkerProcessStatus(
                worker=r.worker,
                alive=r.alive,
                heartbeat_at=r.heartbeat_at,
                tasks=[TaskStatus(**t) for t in r.tasks],
            )
            for r in reports
        ],
        problems=worker_problems(reports)
        + sync_problems(sync)
        + route_problems(routes)
        + incidents
        + await error_problems(session),
        version=version("clipwatch"),
        database="postgresql" if state.settings.is_postgres else "sqlite",
        redis=await redis_state(state.settings.redis_url),
        rate_limiter=state.limiter.backend,
    )
