"""create_app(): the FastAPI application, wired to one engine for its lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import version
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse

from clipwatch.accounts.ratelimit import RateLimiter
from clipwatch.accounts.service import SessionPolicy
from clipwatch.api.auth import CSRF_HEADER, caller
from clipwatch.api.deps import AppState
from clipwatch.api.errors import install_error_handlers, problem_responses
from clipwatch.api.middleware import ResponseHeaders
from clipwatch.api.routers import auth, catalog, clips, health, interactions, me, routes, users
from clipwatch.config import Settings
from clipwatch.db.engine import create_engine, create_sessionmaker
from clipwatch.twitch.client import client_from_settings

API_PREFIX = "/api/v1"


def _limited_responses() -> dict[int | str, dict[str, Any]]:
    return problem_responses(
        {
            401: "Invalid, expired or revoked credentials",
            403: "Missing scope, or a cookie-authenticated write without X-CSRF-Token",
            429: "Rate limited: see Retry-After and RateLimit-* headers",
        }
    )


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.clipwatch = AppState(
            settings,
            engine,
            create_sessionmaker(engine),
            RateLimiter(settings.redis_url, key_prefix=settings.redis_key_prefix),
            SessionPolicy(
                idle=timedelta(minutes=settings.session_idle_minutes),
                absolute=timedelta(days=settings.session_max_days),
                key=settings.signing_key,
            ),
            client_from_settings(settings),
        )
        try:
            yield
        finally:
            if app.state.clipwatch.twitch is not None:
                await app.state.clipwatch.twitch.aclose()
            await engine.dispose()

    app = FastAPI(
        title="clipwatch",
        version=version("clipwatch"),
        description="A searchable archive of Twitch clips. Errors are application/problem+json.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    # Every API and auth route authenticates and counts against the caller's rate limits.
    limited = [Depends(caller)]
    api_routers = (
        clips.router,
        catalog.router,
        health.status_router,
        me.router,
        users.router,
        routes.router,
    )
    for router in api_routers:
        app.include_router(
            router, prefix=API_PREFIX, dependencies=limited, responses=_limited_responses()
        )
    app.include_router(auth.router, dependencies=limited, responses=_limited_responses())
    # Discord's own calls: authenticated by their signature, not by our tokens or limits.
    app.include_router(interactions.router)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", CSRF_HEADER],
            expose_headers=["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"],
        )
    app.add_middleware(ResponseHeaders, https=settings.base_url.startswith("https://"))

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/docs")

    return app
