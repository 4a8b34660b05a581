"""A real server for stream tests (httpx's ASGI transport buffers whole answers, so a stream
needs a socket) and a small Server-Sent Events reader."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI

from clipwatch.api.app import create_app
from clipwatch.cache.manager import CacheManager
from clipwatch.clips.stream import StreamHub
from clipwatch.config import Settings
from tests.conftest import free_port

DEADLINE_S = 20.0


async def wait_for(
    condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S
) -> None:
    until = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < until, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)  # polling interval while waiting on the condition


@dataclass
class Served:
    base: str
    app: FastAPI

    @property
    def hub(self) -> StreamHub:
        hub: StreamHub = self.app.state.stream_hub
        return hub


@asynccontextmanager
async def serve_app(settings: Settings, cache: CacheManager | None = None) -> AsyncIterator[Served]:
    """The app on a spare port in this event loop (its lifespan opens its own engine)."""
    app = create_app(settings, cache=cache, access_log=False)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started or task.done(), "the server to start")
        assert not task.done(), "the server stopped at start"
        hub: StreamHub = app.state.stream_hub
        await wait_for(lambda: hub.ready, "the stream's first look at the database")
        yield Served(f"http://127.0.0.1:{port}", app)
    finally:
        if server.started:
            app.state.stream_hub.end_all("the test is over")
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass
class Event:
    event: str
    data: Any
    id: int | None


@dataclass
class Stream:
    """One SSE connection read in the background."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)
    ended: bool = False
    error: Exception | None = None
    body: bytes = b""
    task: asyncio.Task[None] | None = None

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.event == kind]

    def clip_ids(self) -> list[str]:
        return [e.data["id"] for e in self.of("clip")]

    def heartbeats(self) -> int:
        return sum(1 for c in self.comments if c.strip() == "heartbeat")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def _feed(self, block: list[str]) -> None:
        kind, data, event_id = "message", [], None
        for line in block:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                self.comments.append(value)
            elif name == "event":
                kind = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = int(value)
            elif name == "retry":
                self.retries.append(int(value))
        if data:
            self.events.append(Event(kind, orjson.loads("\n".join(data)), event_id))


async def open_stream(
    http: httpx.AsyncClient,
    path: str = "/api/v1/stream",
    *,
    params: Any = None,
    headers: dict[str, str] | None = None,
) -> Stream:
    """Connect and read in the background; returns once the answer's head is in (and, for
    a 200, the first comment: the client is subscribed)."""
    stream = Stream()

    async def read() -> None:
        try:
            await consume()
        except httpx.HTTPError as exc:
            stream.error = exc
        finally:
            stream.ended = True

    async def consume() -> None:
        async with http.stream("GET", path, params=params, headers=headers) as answer:
            stream.status = answer.status_code
            stream.headers = dict(answer.headers)
            if answer.status_code != 200:
                stream.body = await answer.aread()
                stream.ended = True
                return
            block: list[str] = []
            async for line in answer.aiter_lines():
                if line == "":
                    stream._feed(block)
                    block = []
                else:
                    block.append(line)
            stream._feed(block)

    stream.task = asyncio.create_task(read())
    await wait_for(lambda: stream.ended or bool(stream.comments), "the stream to open")
    return stream
