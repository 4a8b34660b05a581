"""Tiny ASGI helpers shared by the simulators (only `api` may use FastAPI)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def answer(
    send: Send, status: int, payload: Any, headers: dict[str, str] | None = None
) -> None:
    try:
        body = orjson.dumps(payload)
    except orjson.JSONEncodeError:
        # Text a test planted on purpose (a lone surrogate): JSON can carry it escaped, as a
        # server in another language might send it, though orjson refuses to.
        body = json.dumps(payload).encode()
    await raw(send, status, body, headers or {}, "application/json")


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


class LoopbackServer:
    """An ASGI app (a simulator) served on 127.0.0.1 in the running event loop.

    Port 0 (the default) takes a free port from the OS, so two servers never race for one.
    """

    def __init__(self, app: Any, port: int = 0) -> None:
        import uvicorn

        self._server = uvicorn.Server(
            # log_config=None: uvicorn's own logging setup would take its loggers out of
            # clipwatch's pipeline (JSON, redaction) for the rest of the process (demo mode).
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                log_config=None,
                access_log=False,
                lifespan="off",
                # WebSockets (the EventSub simulator's /ws) through the `websockets` library,
                # which answers pings itself; named so a missing library fails loudly.
                ws="websockets-sansio",
            )
        )
        self._task: asyncio.Task[None] | None = None
        self.base = ""

    async def start(self, deadline_s: float = 10.0) -> str:
        self._task = asyncio.create_task(self._server.serve())
        loop = asyncio.get_running_loop()
        until = loop.time() + deadline_s
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the server stopped while starting")
            if loop.time() > until:
                raise RuntimeError(f"the server did not start within {deadline_s} s")
            await asyncio.sleep(0.01)  # polling interval while uvicorn binds
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        return self.base

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await self._task
            self._task = None
