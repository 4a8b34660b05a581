"""create_app(): the FastAPI application, wired to one engine for its lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from clipwatch.api.deps import AppState
from clipwatch.api.errors import install_error_handlers
from clipwatch.api.routers import catalog, clips, health
from clipwatch.config import Settings
from clipwatch.db.engine import create_engine, create_sessionmaker

API_PREFIX = "/api/v1"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.clipwatch = AppState(settings, engine, create_sessionmaker(engine))
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="clipwatch",
        version=version("clipwatch"),
        description="A searchable archive of Twitch clips. Errors are application/problem+json.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(clips.router, prefix=API_PREFIX)
    app.include_router(catalog.router, prefix=API_PREFIX)
    app.include_router(health.status_router, prefix=API_PREFIX)

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
