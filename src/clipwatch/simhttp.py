"""Tiny ASGI helpers shared by the simulators (only `api` may use FastAPI)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def answer(
    send: Send, status: int, payload: Any, headers: dict[str, str] | None = None
) -> None:
    await raw(send, status, orjson.dumps(payload), headers or {}, "application/json")


async def raw(
    send: Send,
    status: int,
    body: bytes,
    headers: dict[str, str],
    content_type: str = "application/json",
) -> None:
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"content-type", content_type.encode()))
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def http_body(scope: Scope, receive: Receive, send: Send) -> bytes | None:
    """Answer lifespan events; for an HTTP request, its whole body (None otherwise)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return None
    if scope["type"] != "http":
        return None
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body
