"""`GET /metrics`: this process's Prometheus metrics (docs/monitoring.md, Metrics).

Open to callers on the loopback interface (a Prometheus beside the service); any other
caller needs `Authorization: Bearer <CLIPWATCH_METRICS_TOKEN>`. Without a token set, other
callers get 404, as if there were no such page. A request a proxy forwarded (`Forwarded` or
`X-Forwarded-For`) is never taken for a loopback caller, even when the proxy itself is one.
Not in the OpenAPI document: it is Prometheus's text format, not part of the JSON API.
"""

from __future__ import annotations

import hmac
from ipaddress import ip_address

from fastapi import APIRouter, Request
from fastapi.responses import Response

from clipwatch.api.deps import State
from clipwatch.api.errors import problem
from clipwatch.monitoring.metrics import CONTENT_TYPE_LATEST, exposition

PATH = "/metrics"
router = APIRouter(include_in_schema=False)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_access(
    client_host: str | None, forwarded: bool, authorization: str | None, token: str
) -> int:
    """200 (allowed), 401 (a token is set and was not given) or 404 (no token is set and
    the caller is not local)."""
    if token and authorization:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return 200
    if is_loopback(client_host) and not forwarded:
        return 200
    return 401 if token else 404


@router.get(PATH)
async def metrics(request: Request, state: State) -> Response:
    settings = state.settings
    if not settings.metrics_enabled:
        return problem(404, "Metrics are turned off (CLIPWATCH_METRICS_ENABLED=false)")
    headers = request.headers
    forwarded = "forwarded" in headers or "x-forwarded-for" in headers
    client = request.client.host if request.client else None
    access = metrics_access(client, forwarded, headers.get("authorization"), settings.metrics_token)
    if access == 401:
        return problem(
            401,
            "Metrics need Authorization: Bearer <CLIPWATCH_METRICS_TOKEN> from this address",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if access == 404:
        return problem(404, "Not Found")
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
