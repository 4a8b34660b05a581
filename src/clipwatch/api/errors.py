"""The one table that turns errors into application/problem+json answers (RFC 9457)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from clipwatch.errors import (
    BadRequest,
    ClipwatchError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    RateLimited,
    Unauthenticated,
    UpstreamUnavailable,
)
from clipwatch.monitoring.errors import ErrorTracker

log = structlog.get_logger(__name__)

PROBLEM = "application/problem+json"
STATUS_BY_ERROR: dict[type[ClipwatchError], tuple[int, str]] = {
    InvalidInput: (422, "Invalid input"),
    BadRequest: (400, "Bad request"),
    NotFound: (404, "Not found"),
    Conflict: (409, "Conflict"),
    PreconditionFailed: (412, "Precondition failed"),
    Unauthenticated: (401, "Unauthorized"),
    Forbidden: (403, "Forbidden"),
    RateLimited: (429, "Too many requests"),
    UpstreamUnavailable: (503, "Upstream unavailable"),
}
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    413: "Content too large",
    405: "Method not allowed",
    412: "Precondition failed",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}
# The database is unreachable (stopped, restarting, its connections cut): 503, ask again then.
DATABASE_RETRY_AFTER_S = 5
DATABASE_BUSY_RETRY_AFTER_S = 1  # SQLite busy with other writers (database_busy)
# SQLSTATE classes of a database going away: 08 connection exception, 57P01-57P03 shutdown
# and "cannot connect now" (starting up or shutting down).
DATABASE_GONE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def problem_responses(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for problem+json answers with these statuses."""
    from clipwatch.api.schemas import Problem

    # Fresh dicts every time: FastAPI adds to them in place when it builds the schema.
    return {
        code: {
            "model": Problem,
            "description": description,
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code, description in codes.items()
    }


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    for error_type, (status, title) in STATUS_BY_ERROR.items():
        if isinstance(exc, error_type):
            extra: dict[str, Any] = {}
            if isinstance(exc, InvalidInput) and exc.field:
                extra["errors"] = [{"field": exc.field, "message": str(exc)}]
            response = problem(status, str(exc), title=title, **extra)
            if isinstance(exc, RateLimited):
                response.headers.update(exc.headers)
            elif isinstance(exc, UpstreamUnavailable) and exc.retry_after:
                response.headers["Retry-After"] = str(exc.retry_after)
            elif isinstance(exc, Unauthenticated):
                response.headers["WWW-Authenticate"] = 'Bearer realm="clipwatch"'
            return response
    return await _unexpected(_request, exc)


# Pydantic's error types in words a person reads; {names} come from the error's context.
MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a field this takes",
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number written with digits only, like 42",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "greater_than_equal": "must be {ge} or more",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be {le} or less",
    "less_than": "must be less than {lt}",
    "literal_error": "must be {expected}",
    "enum": "must be {expected}",
    "datetime_type": "must be a date and time with a time zone, like 2025-01-31T18:00:00Z",
    "datetime_parsing": "must be a date and time with a time zone, like 2025-01-31T18:00:00Z",
    "datetime_from_date_parsing": "must be a date and time with a time zone, like "
    "2025-01-31T18:00:00Z",
    "union_tag_invalid": "is not one of the accepted kinds",
    "unknown_query_parameter": "is not a parameter of this endpoint (it takes: {known})",
}
# What a field's pattern asks for, said in words (a regular expression helps no one).
SHAPES = {
    "language": "must be a language code such as en or pt-BR, or other",
    "languages": "must be a language code such as en or pt-BR, or other",
    "webhook_url": "must be a Discord webhook URL: https://discord.com/api/webhooks/<id>/<token>",
    "cursor": "must be the next_cursor of an earlier page, unchanged",
    "clip_id": "must be a Twitch clip id: letters, digits, - and _",
    "logins": "must be a Twitch login: 1 to 25 letters, digits or _",
    "name": "may hold only letters, digits, '.', '_' and '-' (1 to 64 of them)",
}
CONTROL_CHARACTERS = "must not contain control characters (line breaks, tabs, NUL)"


def _field_name(location: Sequence[Any]) -> str:
    names = [str(part) for part in location if part not in ("query", "path", "body", "header")]
    return ".".join(names)


def _plain_message(error: dict[str, Any]) -> str:
    """One pydantic error as a sentence about the field, never with a regular expression."""
    kind = str(error.get("type", ""))
    context = error.get("ctx") or {}
    named = [part for part in error.get("loc", ()) if isinstance(part, str)]
    if kind == "string_pattern_mismatch":
        pattern = str(context.get("pattern", ""))
        if "\\x00-\\x1f" in pattern:
            return CONTROL_CHARACTERS
        return SHAPES.get(named[-1] if named else "", "is not in a form this field accepts")
    if kind == "json_invalid":
        where = [part for part in error.get("loc", ()) if isinstance(part, int)]
        return f"is not valid JSON (at character {where[0]})" if where else "is not valid JSON"
    if kind == "missing" and tuple(error.get("loc", ())) == ("body",):
        return "a JSON body is required"
    if kind == "value_error":
        return str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if kind == "string_too_short" and context.get("min_length") == 1:
        return "must not be empty"
    template = MESSAGES.get(kind)
    if template is None:
        return str(error.get("msg", "is not valid"))
    try:
        return template.format(**context)
    except (KeyError, IndexError):
        return template


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": "body" if err.get("type") == "json_invalid" else _field_name(err["loc"]),
            "message": _plain_message(err),
        }
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"field": "", "message": "invalid request"}
    detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return problem(422, detail, errors=errors)


ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _documented_methods(app: Any) -> list[tuple[re.Pattern[str], set[str]]]:
    """Each documented path as a pattern, with its methods: the OpenAPI document is the truth
    `Allow` must tell (Starlette names only the methods of the first route that matched)."""
    cached: list[tuple[re.Pattern[str], set[str]]] | None = getattr(
        app.state, "documented_methods", None
    )
    if cached is None:
        cached = [
            (
                re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"),
                {method.upper() for method in item},
            )
            for path, item in app.openapi().get("paths", {}).items()
        ]
        app.state.documented_methods = cached
    return cached


def allowed_methods(request: Request, fallback: str = "") -> str:
    """The methods this path takes, OPTIONS included, for an `Allow` header."""
    methods = {"OPTIONS", *(m.strip() for m in fallback.split(",") if m.strip())}
    for pattern, documented in _documented_methods(request.app):
        if pattern.match(request.url.path):
            methods |= documented
    return ", ".join(sorted(methods, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER)))


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        allow = allowed_methods(request, (exc.headers or {}).get("Allow", ""))
        if request.method == "OPTIONS":  # what may be done here: no route declares OPTIONS
            return Response(status_code=204, headers={"Allow": allow})
        detail = f"{request.method} is not allowed here; this path takes {allow}"
        return problem(405, detail, headers={"Allow": allow})
    response = problem(exc.status_code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def _gone_meanwhile(_request: Request, _exc: Exception) -> JSONResponse:
    # An UPDATE or DELETE that matched no row: another request removed it after this one
    # read it (found by schemathesis's two workers changing and deleting one route at once).
    return problem(404, "it was removed while this request ran")


def database_unavailable(exc: BaseException) -> bool:
    """The error says the database could not be reached, not that the request was wrong:
    a refused or reset connection, a connection timeout, a connection the pool found dead,
    the server shutting down or starting up, no pooled connection free in time."""
    if isinstance(exc, ConnectionError | TimeoutError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        code = str(getattr(exc.orig, "sqlstate", None) or "")
        return exc.connection_invalidated or code.startswith(DATABASE_GONE_SQLSTATES)
    return False


def database_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked": other writers held it past the busy timeout, or a
    transaction that read first could not start writing over a newer commit. Nothing was
    written; the same request succeeds a moment later."""
    if not isinstance(exc, DBAPIError):
        return False
    text = str(exc.orig or "")
    return "database is locked" in text or "database is busy" in text


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if database_busy(exc):
        log.warning("database_busy", path=request.url.path)
        response = problem(503, "the database is busy with other writes; try again in a moment")
        response.headers["Retry-After"] = str(DATABASE_BUSY_RETRY_AFTER_S)
        return response
    if database_unavailable(exc):
        log.warning("database_unavailable", path=request.url.path, error=type(exc).__name__)
        response = problem(503, "the database is not answering; try again in a few seconds")
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
    # Grouped and counted (and sent to Sentry when set): monitoring/errors.py. Never raises.
    tracker: ErrorTracker | None = getattr(request.app.state, "error_tracker", None)
    occurrence = None
    if tracker is not None:
        request_id = getattr(request.state, "request_id", None)
        occurrence = await tracker.record(exc, trace_id=request_id)
    log.exception(
        "unhandled_error",
        path=request.url.path,
        error=type(exc).__name__,
        error_group=occurrence.fingerprint if occurrence else None,
        exc_info=exc,
    )
    return problem(500, "an unexpected error happened; it has been logged")


# nginx's "client closed request": what the access log and the request metrics record.
CLIENT_CLOSED = 499


async def _client_gone(request: Request, _exc: Exception) -> Response:
    """The client went away before its request's body arrived (a live preview the browser
    replaced with a newer one, a closed tab): nobody to answer, and no fault of the server's,
    so no unhandled error and no error group, but an info line."""
    log.info("client_disconnected", path=request.url.path)
    return Response(status_code=CLIENT_CLOSED)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(ClipwatchError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StaleDataError, _gone_meanwhile)
    app.add_exception_handler(Exception, _unexpected)
