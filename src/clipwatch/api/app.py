"""create_app(): the FastAPI application, wired to one engine for its lifetime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import version
from typing import Any

import structlog
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from clipwatch.accounts.ratelimit import RateLimiter
from clipwatch.accounts.service import SessionPolicy
from clipwatch.api.auth import CSRF_HEADER, caller
from clipwatch.api.body_limit import BodyLimit
from clipwatch.api.cached import CachedReads
from clipwatch.api.deps import AppState, strict_query
from clipwatch.api.errors import install_error_handlers, problem_responses
from clipwatch.api.middleware import ResponseHeaders
from clipwatch.api.openapi import install_openapi
from clipwatch.api.page_session import install_login_redirect
from clipwatch.api.routers import (
    admin_page,
    alertmanager,
    auth,
    catalog,
    channel_page,
    clips,
    collections,
    collections_page,
    discord_link,
    eventsub,
    health,
    incidents,
    interactions,
    me,
    me_page,
    moderation,
    pages,
    routes,
    routes_page,
    stream,
    tags,
    users,
)
from clipwatch.api.routers import errors as error_routes
from clipwatch.api.routers import metrics as metrics_routes
from clipwatch.api.telemetry import RequestTelemetry
from clipwatch.cache.manager import CacheManager, cache_from_settings
from clipwatch.clips.stream import StreamHub
from clipwatch.config import Settings
from clipwatch.db.engine import (
    attach_cache,
    create_engine,
    create_reading_sessionmaker,
    create_sessionmaker,
)
from clipwatch.discord.sender import sender_from_settings
from clipwatch.monitoring.errors import ErrorTracker
from clipwatch.runtime import memory
from clipwatch.runtime.worker import WorkerStats
from clipwatch.twitch.client import INTERACTIVE_ATTEMPTS, client_from_settings
from clipwatch.waiting import bounded, cancel_and_wait

API_PREFIX = "/api/v1"
STOP_STEP_S = 5.0  # each step of the app's stop at most (then it is logged and left)
log = structlog.get_logger("clipwatch.api")


def _limited_responses() -> dict[int | str, dict[str, Any]]:
    return problem_responses(
        {
            401: "Invalid, expired or revoked credentials",
            403: "Missing scope, or a cookie-authenticated write without X-CSRF-Token",
            429: "Rate limited: see Retry-After and RateLimit-* headers",
        }
    )


# The routes of the routers below as FastAPI includes them, made by the first app of the
# process and shared by every later one. FastAPI (0.16x) builds an included router's routes
# (dependencies, parameter and response models) lazily, at the first request that reaches
# them: 0.2-0.4 s for ours, paid again by every app made, and the tests make ~1,500. Nothing
# in an inclusion here depends on the app or its settings: the prefixes are fixed and the
# dependencies module-level functions (the app's `strict_query` too). One thing is the first
# app's: the routes read `dependency_overrides` from it, which clipwatch never sets.
_shared_routes: list[BaseRoute] | None = None


def _include_routers(app: FastAPI) -> None:
    global _shared_routes
    if _shared_routes is not None:
        app.router.routes.extend(_shared_routes)
        return
    first = len(app.router.routes)
    app.include_router(health.router)
    # Every API and auth route authenticates and counts against the caller's rate limits.
    limited = [Depends(caller)]
    api_routers = (
        clips.router,
        catalog.router,
        health.status_router,
        me.router,
        collections.router,
        tags.router,
        discord_link.router,
        users.router,
        moderation.router,
        error_routes.router,
        routes.router,
        incidents.router,
        stream.router,
        eventsub.router,
    )
    for router in api_routers:
        app.include_router(
            router, prefix=API_PREFIX, dependencies=limited, responses=_limited_responses()
        )
    app.include_router(auth.router, dependencies=limited, responses=_limited_responses())
    # Discord's own calls: authenticated by their signature, not by our tokens or limits.
    app.include_router(interactions.router)
    app.include_router(metrics_routes.router)
    # Alertmanager's webhook: its own bearer token (CLIPWATCH_ALERTMANAGER_TOKEN), not our API
    # tokens, so outside `caller` too.
    app.include_router(alertmanager.router, prefix=API_PREFIX)
    # The web page (docs/web.md): HTML over the same search and cached reads, and its assets.
    app.include_router(pages.router)
    app.include_router(channel_page.router)
    app.include_router(me_page.router)
    app.include_router(routes_page.router)
    app.include_router(collections_page.router)
    app.include_router(admin_page.router)
    _shared_routes = app.router.routes[first:]


def create_app(
    settings: Settings,
    *,
    worker: WorkerStats | None = None,
    demo_sink: str | None = None,
    cache: CacheManager | None = None,
    access_log: bool = True,
) -> FastAPI:
    """The API. `serve` passes what runs beside it: the worker and demo mode (for the status)
    and the cache they share; without `cache` the app makes and starts its own.
    `access_log`: one log line per request (`serve --no-access-log` turns it off)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        own_cache = cache is None
        app_cache = cache_from_settings(settings) if cache is None else cache
        if own_cache:
            await app_cache.start()
        attach_cache(engine, app_cache)
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
            client_from_settings(settings, max_attempts=INTERACTIVE_ATTEMPTS),
            worker,
            demo_sink,
            app_cache,
            create_reading_sessionmaker(engine),
        )
        # Unhandled errors are grouped and counted here (api/errors.py; monitoring/errors.py).
        app.state.error_tracker = ErrorTracker(app.state.clipwatch.sessionmaker, "api")
        # Route tests post through the delivery's sender: its view of Discord's limits.
        app.state.discord_sender = sender_from_settings(settings)
        # The clip stream (GET /stream): woken by the cache's invalidation feed.
        hub = StreamHub(
            app.state.clipwatch.sessionmaker,
            render_clip=stream.render_clip,
            render_live=stream.render_live,
            queue_size=settings.sse_queue_size,
            max_clients=settings.sse_max_clients,
        )
        app.state.stream_hub = hub
        app_cache.add_listener(hub.notice)
        await hub.start()
        restore_signals = stream.end_streams_on_exit(hub)
        trimming = asyncio.create_task(memory.trim_forever())
        try:
            yield
        finally:
            await cancel_and_wait(trimming)
            restore_signals()
            app_cache.remove_listener(hub.notice)
            # Each step bounded and named when slow: a stop must end, and say what held it.
            twitch = app.state.clipwatch.twitch
            steps: list[tuple[str, Callable[[], Awaitable[Any]] | None]] = [
                ("the clip stream", hub.close),
                ("the Discord client", app.state.discord_sender.aclose),
                ("the Twitch client", twitch.aclose if twitch is not None else None),
                ("the cache", app_cache.close if own_cache else None),
                ("the rate limiter", app.state.clipwatch.limiter.aclose),
                ("the database pool", engine.dispose),
            ]
            for name, step in steps:
                if step is not None and not await bounded(step(), STOP_STEP_S):
                    log.warning("stop_step_slow", step=name, seconds=STOP_STEP_S)

    app = FastAPI(
        title="clipwatch",
        version=version("clipwatch"),
        description="A searchable archive of Twitch clips. Errors are application/problem+json.",
        lifespan=lifespan,
        # /docs is a page of ours (api/routers/pages.py: Swagger UI from local files); no /redoc.
        docs_url=None,
        redoc_url=None,
        # Every route: unknown query parameters and loosely spelled values are 422.
        dependencies=[Depends(strict_query)],
    )
    install_error_handlers(app)
    install_openapi(app)
    # Page routes answer errors as HTML pages with the API's words and status.
    pages.install_page_errors(app)
    _include_routers(app)
    install_login_redirect(app)
    pages.mount_static(app)
    # Innermost first: cached answers still get CORS and the security and rate-limit headers.
    app.add_middleware(CachedReads)
    # Outside the app and the cache, inside CORS and the headers: a 413 gets all of them.
    app.add_middleware(
        BodyLimit,
        default=settings.max_body_bytes,
        paths={interactions.PATH: settings.max_interaction_body_bytes},
    )
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", CSRF_HEADER, "X-Request-ID"],
            expose_headers=[
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "X-Request-ID",
            ],
        )
    # The search form's blank fields and days, tidied into the URL the page reads strictly.
    app.add_middleware(pages.SearchQuery)
    app.add_middleware(ResponseHeaders, https=settings.base_url.startswith("https://"))
    # Outermost: every answer (cached, refused, failed) gets its request id, access line and
    # metrics.
    app.add_middleware(
        RequestTelemetry,
        router=app.router,
        errors=app.exception_handlers,
        metrics=settings.metrics_enabled,
        access=access_log,
    )
    if settings.trusted_proxy_list:
        # Outside even the telemetry: logs, rate limits and metrics see the forwarded client.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)

    return app
