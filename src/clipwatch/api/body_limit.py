"""Bounded request bodies: a larger one is refused with 413 (problem+json) before it is read.

A pure ASGI layer in front of the app. A declared Content-Length over the limit is answered
at once, without calling `receive`: the server never reads that body (uvicorn stops reading
the socket once 64 KB wait unread). A body without one (chunked) is counted as the app
receives it; the chunk that passes the limit is the last one read, the 413 goes out, and the
app gets `BodyTooLarge` from `receive`. The 413 closes the connection, so the rest of the
body is not even read to be thrown away.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clipwatch.api.errors import problem


class BodyTooLarge(Exception):
    """Raised to the app from `receive` once the limit is passed (the 413 is sent already)."""


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None without one (or with one that is not a number,
    which the HTTP server refuses before the app sees it)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() else None
    return None


async def refuse(send: Send, limit: int) -> None:
    answer = problem(
        413,
        f"the request body is larger than the {limit:,} bytes this endpoint accepts",
        title="Content too large",
    )
    answer.headers["Connection"] = "close"
    await send({"type": "http.response.start", "status": 413, "headers": answer.raw_headers})
    await send({"type": "http.response.body", "body": answer.body})


class BodyLimit:
    """`default` bytes for every request; `paths` maps exact paths to their own limits."""

    def __init__(
        self, app: ASGIApp, *, default: int, paths: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.default = default
        self.paths = dict(paths or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope["path"], self.default)
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            await refuse(send, limit)
            return
        received = 0
        started = refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                # Counted even with a Content-Length: a body longer than declared is cut too.
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        refused = True
                        await refuse(send, limit)
                    raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 was the answer; what the app makes of BodyTooLarge is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        # Answered with 413 already, or (an app that streamed its answer while reading) the
        # answer is cut short and the server closes the connection.
        with suppress(BodyTooLarge):
            await self.app(scope, counted_receive, tracked_send)
