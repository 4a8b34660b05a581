"""The one table that turns errors into application/problem+json answers (RFC 9457)."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from clipwatch.errors import (
    BadRequest,
    ClipwatchError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
    UpstreamUnavailable,
)

log = structlog.get_logger(__name__)

PROBLEM = "application/problem+json"
STATUS_BY_ERROR: dict[type[ClipwatchError], tuple[int, str]] = {
    InvalidInput: (422, "Invalid input"),
    BadRequest: (400, "Bad request"),
    NotFound: (404, "Not found"),
    Conflict: (409, "Conflict"),
    Unauthenticated: (401, "Unauthorized"),
    Forbidden: (403, "Forbidden"),
    RateLimited: (429, "Too many requests"),
    UpstreamUnavailable: (503, "Upstream unavailable"),
}
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    405: "Method not allowed",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
}


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


def problem(status: int, detail: str, *, title: str | None = None, **extra: Any) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    for error_type, (status, title) in STATUS_BY_ERROR.items():
        if isinstance(exc, error_type):
            extra = {}
            if isinstance(exc, InvalidInput) and exc.field:
                extra["errors"] = [{"field": exc.field, "message": str(exc)}]
            response = problem(status, str(exc), title=title, **extra)
            if isinstance(exc, RateLimited):
                response.headers.update(exc.headers)
            elif isinstance(exc, Unauthenticated):
                response.headers["WWW-Authenticate"] = 'Bearer realm="clipwatch"'
            return response
    return _unexpected(_request, exc)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(
                str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")
            ),
            "message": str(err.get("msg", "invalid")),
        }
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"field": "", "message": "invalid request"}
    detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return problem(422, detail, errors=errors)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = problem(exc.status_code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path, error=type(exc).__name__)
    return problem(500, "an unexpected error happened; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClipwatchError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
