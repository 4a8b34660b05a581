"""Each request's id, access-log line and HTTP metrics: one pure ASGI layer, outermost.

- Request id: the client's `X-Request-ID` when sane (≤ 128 characters of A-Z a-z 0-9 . _ -),
  else a new one; bound to every log line of the request (structlog contextvars), in
  `scope["state"]["request_id"]`, and sent back in the `X-Request-ID` header.
- Access log: one line per request (`clipwatch.access`, event `request`) through the same
  structlog pipeline as every other line (so redacted the same way): method, route template,
  path with its query (secrets redacted), status, duration in ms, client address.
- Metrics: requests and latency by method, route template and status class. The template
  (`/api/v1/clips/{clip_id}`) is found by matching the path against the app's routes as the
  router does (answers given before routing, by the cached fast path, too), remembered per
  path; a path no route matches counts as `unmatched`. Never the raw path.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import structlog
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Router, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clipwatch.monitoring.context import request_id_from
from clipwatch.monitoring.metrics import HTTP, UNMATCHED_ROUTE

ACCESS_LOGGER = "clipwatch.access"
REQUEST_ID_HEADER = "X-Request-ID"
PATH_CHARS = 1000  # longer paths are cut in the access log
access_log = structlog.get_logger(ACCESS_LOGGER)
_access_std = logging.getLogger(ACCESS_LOGGER)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _route_table(
    routes: Sequence[BaseRoute], prefix: str
) -> Iterator[tuple[re.Pattern[str], str, frozenset[str] | None]]:
    """(regex, template, methods) of each route in routing order. A router FastAPI included
    (its `include_context`) is walked with its prefix: its routes' own paths under it, with
    their regexes compiled here. FastAPI's `effective_route_contexts()` says the same but
    builds every route's dependencies again: 0.2-0.4 s an app, paid by every app a test
    made (tests/api/test_telemetry.py checks both agree)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        context = getattr(route, "include_context", None)
        if included is not None and context is not None:
            yield from _route_table(included.routes, prefix + context.prefix)
            continue
        methods = getattr(route, "methods", None)
        frozen = frozenset(methods) if methods else None
        if not prefix:
            regex = getattr(route, "path_regex", None)
            template = getattr(route, "path_format", None)
            if regex is not None and template:
                yield regex, template, frozen
            continue
        path = getattr(route, "path", None)
        if not isinstance(path, str) or isinstance(route, Mount):
            continue  # no mount is included under a prefix here
        regex, template, _ = compile_path(prefix + path)
        yield regex, template, frozen


class RouteTemplates:
    """The route template a path and method resolve to, as the app would route them: the
    first route matching path and method, else the first matching the path alone (a 405),
    else `unmatched`. Routers included with a prefix (FastAPI's included routers) are
    flattened with their full paths. Remembered per path and method (a bounded cache)."""

    def __init__(self, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self._routes = routes
        self._table: list[tuple[re.Pattern[str], str, frozenset[str] | None]] = []
        self._built_from = -1
        self.template = lru_cache(maxsize=4096)(self._resolve)

    def _flatten(self) -> list[tuple[re.Pattern[str], str, frozenset[str] | None]]:
        return list(_route_table(self._routes(), ""))

    def prepare(self) -> None:
        """Build the table now (a few ms): done before the first request's answer."""
        routes = self._routes()
        if len(routes) != self._built_from:
            self._table, self._built_from = self._flatten(), len(routes)

    def _resolve(self, path: str, method: str) -> str:
        self.prepare()
        partial = None
        for regex, template, methods in self._table:
            if regex.match(path):
                if methods is None or method in methods:
                    return template
                partial = partial or template
        return partial or UNMATCHED_ROUTE


class RequestTelemetry:
    """`errors`: the app's exception handlers. An exception no inner handler took is answered
    here with the app's handler for it, inside the request's log context: its log line
    carries the request id and the 500 the `X-Request-ID` header (Starlette would answer it
    outside every middleware)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        router: Router,
        errors: Mapping[Any, Callable[..., Any]] | None = None,
        metrics: bool = True,
        access: bool = True,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access = access
        self.errors = errors if errors is not None else {}
        self.templates = RouteTemplates(lambda: router.routes)
        # Starlette makes the middleware at the lifespan's start (uvicorn), else at the first
        # request: either way before an answer, where building the table costs no one else.
        self.templates.prepare()

    def route_template(self, scope: Scope) -> str:
        return str(self.templates.template(scope["path"], scope.get("method", "GET")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(_header(scope, b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                handler = self._handler_for(exc)
                if status or handler is None:  # the answer has begun: nothing left to say
                    raise
                response = handler(Request(scope, receive), exc)
                if inspect.isawaitable(response):
                    response = await response
                await response(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                status = status or 500  # no answer at all (a failure past every handler)
                template = None
                if self.metrics:
                    template = self.route_template(scope)
                    HTTP.observe(scope["method"], template, status, seconds)
                if self.access and _access_std.isEnabledFor(logging.INFO):
                    self._log(scope, template or self.route_template(scope), status, seconds)

    def _handler_for(self, exc: Exception) -> Callable[..., Any] | None:
        for kind in type(exc).__mro__:
            if kind in self.errors:
                return self.errors[kind]
        return None

    def _log(self, scope: Scope, template: str, status: int, seconds: float) -> None:
        path: str = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
        query: bytes = scope.get("query_string", b"")
        if query:
            path = f"{path}?{query.decode('latin-1')}"
        client: Any = scope.get("client")
        access_log.info(
            "request",
            method=scope["method"],
            route=template,
            path=path[:PATH_CHARS],
            status=status,
            duration_ms=round(seconds * 1000, 2),
            client_ip=client[0] if client else None,
        )
