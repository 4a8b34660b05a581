"""The OpenAPI document, amended so that it says what the app really answers.

FastAPI documents each route from its own declarations; what every route shares is added
here once, so no router can forget it: every error is application/problem+json (FastAPI's
own 422 shape is never sent), every operation can answer 422 (unknown query parameters,
`deps.strict_query`), operations with a body can answer 400 (not parseable) and 413 (too
large), operations that take a `cursor` answer 400 for one that is not (or no longer) valid,
and operations that read credentials say so (`security`: required, or optional).
docs/api.md
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant

from clipwatch.api.auth import caller
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
BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API token. A browser's session cookie (from /auth) works as well, "
    "with X-CSRF-Token on writes",
}


def _calls(dependant: Dependant) -> list[Any]:
    pending, calls = [dependant], []
    while pending:
        current = pending.pop()
        calls.append(current.call)
        pending.extend(current.dependencies)
    return calls


def credential_rules(app: FastAPI) -> dict[tuple[str, str], bool]:
    """(path, method) of each operation that reads credentials: True where they are required
    (a Reader, Writer or Admin parameter), False where they are optional (`caller` alone)."""
    rules: dict[tuple[str, str], bool] = {}
    for context in routing.iter_route_contexts(app.routes):
        if not isinstance(context.original_route, routing.APIRoute):
            continue
        calls = _calls(context.dependant)
        if caller not in calls:
            continue
        # api/auth._require makes the Reader/Writer/Admin dependencies.
        required = any(getattr(c, "__qualname__", "").startswith("_require.") for c in calls)
        for method in context.original_route.methods or ():
            rules[(str(context.path_format), method.lower())] = required
    return rules


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


def amend(
    document: dict[str, Any], credentials: dict[tuple[str, str], bool] | None = None
) -> dict[str, Any]:
    for path, path_item in document.get("paths", {}).items():
        for method, operation in path_item.items():
            if isinstance(operation, dict) and "responses" in operation:
                _amend_operation(method, operation)
                required = (credentials or {}).get((path, method))
                if required is not None:
                    bearer: dict[str, list[str]] = {"bearer": []}
                    operation["security"] = [bearer] if required else [{}, bearer]
    components = document.setdefault("components", {})
    if credentials:
        components.setdefault("securitySchemes", {})["bearer"] = BEARER
    schemas = components.get("schemas", {})
    for name in UNUSED:
        schemas.pop(name, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the amended document at /openapi.json (built once, on first request)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = amend(generate(), credential_rules(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
