"""The OpenAPI document, amended so that it says what the app really answers.

FastAPI documents each route from its own declarations; what every route shares is added
here once, so no router can forget it: every error is application/problem+json (FastAPI's
own 422 shape is never sent), every operation can answer 422 (unknown query parameters,
`deps.strict_query`), operations with a body can answer 400 (not parseable) and 413 (too
large), and operations that take a `cursor` answer 400 for one that is not (or no longer) valid.
docs/api.md
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from clipwatch.api.errors import PROBLEM

PROBLEM_CONTENT = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
BODY_METHODS = ("post", "put", "patch")
SHARED = {
    "422": "Invalid input: unknown query parameters, or values the schema refuses; `errors` "
    "names each field and says why",
}
WITH_BODY = {
    "400": "The body could not be parsed",
    "413": "The body is larger than this endpoint takes",
}
WITH_CURSOR = {"400": "Invalid or expired cursor: start again without it"}
UNUSED = ("HTTPValidationError", "ValidationError")


def _amend_operation(method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    wanted = dict(SHARED)
    if "requestBody" in operation or method in BODY_METHODS:
        wanted.update(WITH_BODY)
    names = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "query"}
    if "cursor" in names:
        wanted["400"] = WITH_CURSOR["400"]
    for status, description in wanted.items():
        entry = responses.setdefault(status, {"description": description})
        if "HTTPValidationError" in str(entry.get("content")):
            entry["description"] = description
    for status, entry in responses.items():
        content = entry.get("content")
        is_error = status.startswith("4") or "Problem" in str(content)
        if is_error and (content is None or "Problem" in str(content) or status == "422"):
            entry["content"] = PROBLEM_CONTENT


def amend(document: dict[str, Any]) -> dict[str, Any]:
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if isinstance(operation, dict) and "responses" in operation:
                _amend_operation(method, operation)
    schemas = document.get("components", {}).get("schemas", {})
    for name in UNUSED:
        schemas.pop(name, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the amended document at /openapi.json (built once, on first request)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = amend(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
