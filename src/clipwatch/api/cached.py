"""Cached answers: ready-to-send bytes with an ETag, and the fast path that serves them.

Handlers of cacheable GETs call `cached_answer`: it returns the cached bytes (or a 304 for a
matching If-None-Match) and computes them once per key when missing. The answer depends only
on the path and the query string, never on who asks: handlers whose answer is personal
(`feed=mine`) pass `cacheable=False`.

`CachedReads` is a pure ASGI layer in front of FastAPI. For an anonymous GET whose answer this
process holds, it counts the request against the caller's rate limit and answers at once,
without routing, validation or a database session; everything else goes through the app.
docs/cache.md
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import parse_qsl, urlencode

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from clipwatch.api.auth import SESSION_COOKIE
from clipwatch.api.deps import AppState
from clipwatch.cache.local import Entry

CACHE_CONTROL = "no-cache"  # clients may keep answers, and revalidate them with the ETag
CACHEABLE_PREFIXES = ("/api/v1/clips", "/api/v1/channels", "/api/v1/games")
_COOKIE_MARK = SESSION_COOKIE.encode() + b"="

Compute = Callable[[], Awaitable[tuple[BaseModel, Iterable[str]]]]


def _json(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


def cache_key(path: str, query_string: bytes) -> str:
    """The path and the query, parameters sorted (their order never changes an answer)."""
    if not query_string:
        return path
    pairs = sorted(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    return f"{path}?{urlencode(pairs)}"


def _not_modified(entry: Entry, if_none_match: str | None) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return entry.etag in tags or "*" in tags


def _answer(entry: Entry, if_none_match: str | None, hit: bool) -> Response:
    headers = {
        "ETag": entry.etag,
        "Cache-Control": CACHE_CONTROL,
        "X-Cache": "hit" if hit else "miss",
    }
    if _not_modified(entry, if_none_match):
        return Response(status_code=304, headers=headers)
    return Response(entry.body, media_type="application/json", headers=headers)


async def cached_answer(
    request: Request, state: AppState, compute: Compute, *, cacheable: bool = True
) -> Response:
    """The answer for this request's path and query, from the cache or computed once."""
    if_none_match = request.headers.get("if-none-match")
    if not cacheable:
        model, _deps = await compute()
        return Response(
            _json(model), media_type="application/json", headers={"Cache-Control": "private"}
        )
    key = cache_key(request.url.path, request.scope.get("query_string", b""))
    computed = False

    async def compute_bytes() -> tuple[bytes, Iterable[str]]:
        nonlocal computed
        computed = True
        model, deps = await compute()
        return _json(model), deps

    entry = await state.cache.get_or_compute(key, compute_bytes)
    return _answer(entry, if_none_match, hit=not computed)


class CachedReads:
    """Anonymous cacheable GETs answered from this process's tier, before FastAPI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(CACHEABLE_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        if_none_match: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization" or (name == b"cookie" and _COOKIE_MARK in value):
                await self.app(scope, receive, send)  # credentials: checked by the app
                return
            if name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        state: AppState = scope["app"].state.clipwatch
        entry = state.cache.peek(cache_key(scope["path"], scope.get("query_string", b"")))
        if entry is None:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        decision = await state.limiter.hit(
            state.settings.rate_limit_anonymous, "ip", client[0] if client else "unknown"
        )
        scope.setdefault("state", {})["rate_limit"] = decision
        if not decision.allowed:
            await self.app(scope, receive, send)  # the app answers the 429 (uncounted twice)
            return
        await _answer(entry, if_none_match, hit=True)(scope, receive, send)
