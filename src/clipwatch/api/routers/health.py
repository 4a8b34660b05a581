"""Liveness, readiness and the status summary."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from clipwatch.api.deps import State
from clipwatch.api.schemas import StatusRead
from clipwatch.cache.health import redis_state

router = APIRouter(tags=["health"])
status_router = APIRouter(tags=["status"])

DEMO_BANNER = "Demo mode: the clips here are simulated, not real Twitch data."


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers (Redis state reported, not required)",
    responses={503: {"description": "The database does not answer"}},
)
async def readyz(state: State) -> JSONResponse:
    database = "ok"
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        database = "down"
    redis = await redis_state(state.settings.redis_url)
    status = 200 if database == "ok" else 503
    return JSONResponse({"database": database, "redis": redis}, status_code=status)


@status_router.get("/status", response_model=StatusRead, summary="Mode, version and health")
async def status(state: State) -> StatusRead:
    demo = state.settings.demo_mode
    return StatusRead(
        mode="demo" if demo else "live",
        banner=DEMO_BANNER if demo else None,
        version=version("clipwatch"),
        database="postgresql" if state.settings.is_postgres else "sqlite",
        redis=await redis_state(state.settings.redis_url),
        rate_limiter=state.limiter.backend,
    )
