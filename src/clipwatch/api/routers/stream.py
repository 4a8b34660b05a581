"""GET /stream: new and changed clips and channels going live, as Server-Sent Events.

The hub (clips/stream.py) decides what each client gets; this module validates the request
(the /clips filters, `feed=mine`, the resume point), and writes one client's frames out,
with heartbeats, until the client leaves, is dropped, or the server stops. docs/stream.md
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from clipwatch.api.auth import Caller
from clipwatch.api.clip_filters import ClipFilters, Feed, apply_preferences
from clipwatch.api.deps import Session, State
from clipwatch.api.errors import problem, problem_responses
from clipwatch.api.schemas import ChannelLiveRead, ClipRead
from clipwatch.clips.search import check_ranges
from clipwatch.clips.stream import (
    RETRY_MS,
    StreamFull,
    StreamHub,
    Subscriber,
    error_frame,
    frame,
)
from clipwatch.clips.stream_filter import resolve_filter
from clipwatch.db.models import Clip
from clipwatch.db.repositories.clip_stream import LiveChange
from clipwatch.errors import InvalidInput
from clipwatch.waiting import within

log = structlog.get_logger("clipwatch.stream")
router = APIRouter(tags=["stream"])

SEND_TIMEOUT_S = 30.0  # a write the client does not take within this ends its stream
LAST_EVENT_ID_MAX = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit takes "²" and "٣"


def render_clip(clip: Clip, game_name: str | None) -> bytes:
    """A `clip` event's data: the JSON of a GET /clips item, on one line."""
    return ClipRead.from_clip(clip, game_name).model_dump_json().encode()


def render_live(change: LiveChange) -> bytes:
    """A `channel.live` event's data: the channel, and its `live` object as GET /channels
    shows it (null: it went offline)."""
    row = change.live
    live = ChannelLiveRead.from_live(row).model_dump(mode="json") if row.live else None
    return orjson.dumps(
        {
            "channel": {
                "id": row.channel_id,
                "login": change.login,
                "display_name": change.display_name,
            },
            "live": live,
            "changed_at": row.changed_at,
            "ended_at": None if row.live else row.ended_at,
        }
    )


def end_streams_on_exit(hub: StreamHub) -> Callable[[], None]:
    """End every stream as soon as SIGINT/SIGTERM arrives: uvicorn waits for open responses
    before it stops, and a stream never ends by itself. The server's own handlers (installed
    before the app starts) still run after ours. Returns what puts them back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(sig: int, stack: FrameType | None) -> None:
        loop.call_soon_threadsafe(hub.end_all)
        before = previous.get(sig)
        if callable(before):
            before(sig, stack)
        elif before == signal.SIG_DFL:  # what the signal would have done without us
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, before in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, before)

    return restore


def _resume_point(header: str | None, query: int | None) -> int | None:
    if query is not None:
        return query
    if header is None or not header.strip():
        return None
    value = header.strip()
    if not _DIGITS.fullmatch(value) or int(value) > LAST_EVENT_ID_MAX:
        raise InvalidInput(
            "Last-Event-ID must be the id of a clip event (a whole number)",
            field="Last-Event-ID",
        )
    return int(value)


class EventStreamResponse(StreamingResponse):
    """text/event-stream written by `writer`; ends when the client disconnects."""

    media_type = "text/event-stream"

    def __init__(
        self, writer: Callable[[Send], Coroutine[Any, Any, None]], status_code: int = 200
    ) -> None:
        super().__init__(
            iter(()),
            status_code=status_code,
            media_type=self.media_type,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        writing = asyncio.create_task(self.writer(send))
        watching = asyncio.create_task(_disconnect(receive))
        done: set[asyncio.Task[None]] = set()
        try:
            done, _ = await asyncio.wait({writing, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writing, watching):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task
        if writing in done:  # the stream ended on our side: close the body properly
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


def _writer(
    hub: StreamHub, subscriber: Subscriber, resume: int | None, heartbeat_s: float
) -> Callable[[Send], Coroutine[Any, Any, None]]:
    async def body(send: Send, data: bytes) -> None:
        message = {"type": "http.response.body", "body": data, "more_body": True}
        await within(send(message), SEND_TIMEOUT_S)

    async def write(send: Send) -> None:
        try:
            await body(send, f"retry: {RETRY_MS}\n: connected\n\n".encode())
            if resume is not None and resume < subscriber.floor:
                replay = await hub.replay(subscriber, resume)
                for start in range(0, len(replay.frames), 100):
                    await body(send, b"".join(replay.frames[start : start + 100]))
                if replay.more:  # the client reconnects from its last id for the rest
                    detail = "more clips were missed than one connection replays"
                    await body(send, error_frame("replay_limit", detail, 0))
                    return
                if replay.truncated:  # too far behind for this filter: live from here
                    skipped = {"after": replay.last, "upto": subscriber.floor}
                    await body(send, frame("replay.truncated", orjson.dumps(skipped)))
            while True:
                frames = await subscriber.take(heartbeat_s)
                if frames:
                    await body(send, b"".join(frames))
                elif subscriber.final is None:
                    await body(send, b": heartbeat\n\n")
                if subscriber.final is not None:
                    await body(send, subscriber.final)
                    return
        except (OSError, TimeoutError):
            return  # gone, or not reading: the stream ends here
        finally:
            hub.unsubscribe(subscriber)

    return write


@router.get(
    "/stream",
    response_class=EventStreamResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `clip` (id: the clip's seq), `clip.updated`, "
            "`clip.deleted`, `channel.live`, `error` (then the stream ends)",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **problem_responses(
            {
                401: "feed=mine without credentials",
                503: "This process serves as many streams as it takes: see Retry-After",
            }
        ),
    },
    summary="A live stream of clips (Server-Sent Events), filtered like GET /clips",
    description=(
        "Takes the filters of GET /clips (`q` included) and `feed=mine`; `sort`, `limit` and "
        "`cursor` do not apply to a stream and answer 422. Only `clip` events carry an id: "
        "the clip's `seq`. Reconnecting with `Last-Event-ID` (or `last_event_id`) sends "
        "exactly the matching clips stored after it, in order, then the live ones; at most "
        "1,000 per connection (an `error` event `replay_limit` with `retry: 0` ends it, and "
        "the reconnect continues). Heartbeat comments keep idle connections open. "
        "See docs/stream.md."
    ),
)
async def stream_clips(
    request: Request,
    state: State,
    session: Session,
    principal: Caller,
    filters: ClipFilters,
    feed: Feed = None,
    last_event_id: Annotated[
        int | None,
        Query(
            ge=0,
            le=LAST_EVENT_ID_MAX,
            description="Resume after this clip event id (for clients that cannot send "
            "the Last-Event-ID header); wins over the header",
        ),
    ] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    resume = _resume_point(last_event_id_header, last_event_id)
    search = filters
    check_ranges(search)
    if feed == "mine":
        search = await apply_preferences(session, principal, search)
    stream_filter = await resolve_filter(session, search)
    hub: StreamHub = request.app.state.stream_hub
    try:
        subscriber = hub.subscribe(stream_filter, resume)
    except StreamFull as exc:
        return problem(
            503,
            str(exc),
            title="Too many streams",
            headers={"Retry-After": str(exc.retry_after)},
        )
    heartbeat = state.settings.sse_heartbeat_seconds
    return EventStreamResponse(_writer(hub, subscriber, resume, heartbeat))
