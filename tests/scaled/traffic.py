"""API traffic against the serve processes of a `Cluster`: searches with varied words, clip
pages (HTML and JSON), channel listings, /healthz, and Server-Sent Events clients on
/api/v1/stream. Every answer is recorded (status, Retry-After, time) for the assertions of
tests/scaled/test_scaled.py and the figures of bench/load.py.

It runs in a thread of its own with its own event loop, so the faults (blocking calls) run
in the caller's thread meanwhile."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

# Words the simulated titles are made of (twitch/simulator.py, CLIP_WORDS and its world's
# vocabulary), and a few that match nothing.
WORDS = (
    "pog", "clutch", "insane", "fail", "win", "funny", "rage", "ace", "boss", "speedrun",
    "chat", "what", "no", "yes", "gg", "wow", "epic", "crazy", "nothing", "zzzqqq",
)  # fmt: skip
SORTS = ("relevance", "newest", "views")
REQUEST_TIMEOUT_S = 15.0
# An idle connection is dropped after 1 s, before uvicorn closes it (5 s): a request sent on
# a connection the server is closing at that instant fails in the client, whatever the service.
KEEPALIVE_S = 1.0


@dataclass(frozen=True)
class Answer:
    endpoint: str
    serve: str
    started: float  # time.time()
    ended: float
    status: int | None  # None: no answer (the error says why)
    error: str | None
    retry_after: bool

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Traffic:
    """`clients` request loops at `rate` requests a second in all (0: as fast as they go),
    and `sse_clients` stream readers, spread over the serves in rotation."""

    rotation: Any  # a callable returning the base URLs in service now, and their names
    clients: int = 3
    rate: float = 20.0
    sse_clients: int = 2
    seed: int = 1
    only: str | None = None  # one endpoint kind only (bench: "healthz" or None for the mix)
    answers: list[Answer] = field(default_factory=list)
    sse_events: int = 0
    sse_connects: int = 0
    clip_ids: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=REQUEST_TIMEOUT_S + 10)
            assert not self._thread.is_alive(), "the traffic thread did not stop"

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    async def _main(self) -> None:
        limits = httpx.Limits(keepalive_expiry=KEEPALIVE_S, max_connections=100)
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as http:
            tasks = [asyncio.create_task(self._client(http, i)) for i in range(self.clients)]
            tasks += [asyncio.create_task(self._sse(i)) for i in range(self.sse_clients)]
            await asyncio.to_thread(self._stop.wait)  # set by another thread: stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _pick(self, rng: random.Random) -> tuple[str, str]:
        if self.only == "healthz":
            return "healthz", "/healthz"
        roll = rng.random()
        ids = self.clip_ids
        if roll < 0.4 or not ids:
            word = rng.choice(WORDS)
            if rng.random() < 0.3:
                word = f"{word} {rng.choice(WORDS)}"
            return "search", f"/api/v1/clips?q={word}&sort={rng.choice(SORTS)}&limit=20"
        if roll < 0.6:
            return "clip_api", f"/api/v1/clips/{rng.choice(ids)}"
        if roll < 0.8:
            return "clip_page", f"/clips/{rng.choice(ids)}"
        if roll < 0.9:
            channel = f"chan{rng.randrange(20):02d}"
            return "channel_clips", f"/api/v1/clips?broadcaster={channel}&sort=newest&limit=20"
        return "healthz", "/healthz"

    async def _client(self, http: httpx.AsyncClient, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        interval = self.clients / self.rate if self.rate > 0 else 0.0
        next_at = time.monotonic()
        while not self._stop.is_set():
            serves = self.rotation()
            if not serves:
                await asyncio.sleep(0.05)  # polling interval: no serve in rotation this instant
                continue
            name, base = rng.choice(serves)
            endpoint, path = self._pick(rng)
            started = time.time()
            status: int | None = None
            error: str | None = None
            retry_after = False
            try:
                answer = await http.get(base + path)
                status = answer.status_code
                retry_after = "retry-after" in answer.headers
                if endpoint in ("search", "channel_clips") and status == 200:
                    self._learn(answer.json())
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            self._record(Answer(endpoint, name, started, time.time(), status, error, retry_after))
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    # Pacing to the target rate, not a wait on a condition.
                    await asyncio.sleep(delay)
                else:
                    next_at = time.monotonic()  # behind: do not burst to catch up

    def _learn(self, page: dict[str, Any]) -> None:
        for clip in page.get("data") or []:
            if len(self.clip_ids) < 2000 and isinstance(clip, dict) and "id" in clip:
                self.clip_ids.append(str(clip["id"]))

    async def _sse(self, number: int) -> None:
        """Reads /api/v1/stream; reconnects (to any serve in rotation) when it ends. A stream
        ended by its serve's restart is normal; a refused stream is recorded like a request."""
        rng = random.Random(self.seed * 2000 + number)
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=60.0)
        async with httpx.AsyncClient(timeout=timeout) as http:
            while not self._stop.is_set():
                serves = self.rotation()
                if not serves:
                    await asyncio.sleep(0.05)  # polling interval: no serve in rotation
                    continue
                name, base = rng.choice(serves)
                started = time.time()
                try:
                    async with http.stream("GET", f"{base}/api/v1/stream") as answer:
                        self._record(
                            Answer(
                                "stream",
                                name,
                                started,
                                time.time(),
                                answer.status_code,
                                None,
                                "retry-after" in answer.headers,
                            )
                        )
                        if answer.status_code != 200:
                            await asyncio.sleep(0.5)  # as a client told Retry-After would
                            continue
                        self.sse_connects += 1
                        async for line in answer.aiter_lines():
                            if line.startswith("data:"):
                                self.sse_events += 1
                except httpx.HTTPError as exc:
                    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                        self._record(
                            Answer(
                                "stream",
                                name,
                                started,
                                time.time(),
                                None,
                                type(exc).__name__,
                                False,
                            )
                        )
                    # a stream cut mid-way (its serve restarting): reconnect


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
