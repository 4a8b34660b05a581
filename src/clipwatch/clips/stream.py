"""The clip stream's hub: one per process, fanning out what the database learned to the
Server-Sent Events clients connected here (api/routers/stream.py writes them out).

It wakes when the cache's generations move (cache/manager.py `add_listener`: this process's
commits at once, every other process's through Redis pub/sub), and once a second while it
has clients (so a missed notice costs a second, not the event). Each wake-up reads the
database once for everyone: the clips above its watermark (`seq`), clips of the bumped
channels changed since the last look, and live-state changes; then each client gets what
its filter matches. New clips are released strictly in `seq` order and only when no lower
`seq` can still commit (db/repositories/clip_stream.py), so a client's last event id is a
point it can resume from: `replay` reads exactly the clips after it. docs/stream.md
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.cache.manager import ANY_CHANGE
from clipwatch.clips.stream_filter import StreamFilter
from clipwatch.db.engine import session_scope
from clipwatch.db.models import Clip
from clipwatch.db.repositories import catalog, clip_stream
from clipwatch.db.repositories.clip_stream import LiveChange, Snapshot
from clipwatch.db.repositories.moderation import hidden_seqs
from clipwatch.monitoring.metrics import SSE_CLIENTS, SSE_DROPPED, SSE_EVENTS
from clipwatch.waiting import cancel_and_wait, wait_event

log = structlog.get_logger("clipwatch.stream")

POLL_S = 1.0  # with clients: a look at the database at least this often
SETTLE_POLL_S = 0.02  # while clips wait for older transactions to end
HOLD_MAX_S = 10.0  # a transaction running longer than this no longer holds clips back
BATCH = 1000  # clips read per wake-up at most (the next batch follows at once)
LOOKBACK = timedelta(seconds=5)  # changes are read this far back (late commits, clocks)
REPLAY_LIMIT = 1000  # clips one connection replays; the client reconnects for more
REPLAY_SCAN = 100_000  # rows one replay may read to find them
RETRY_MS = 3000  # the `retry:` hint
SLOW_RETRY_MS = 10_000  # the hint a dropped (slow) client gets

RenderClip = Callable[[Clip, str | None], bytes]
RenderLive = Callable[[LiveChange], bytes]


def frame(event: str, data: bytes, event_id: int | None = None) -> bytes:
    """One SSE event; `data` is a single line of JSON."""
    head = f"event: {event}\n" + ("" if event_id is None else f"id: {event_id}\n")
    return head.encode() + b"data: " + data + b"\n\n"


def error_frame(reason: str, detail: str, retry_ms: int) -> bytes:
    body = orjson.dumps({"reason": reason, "detail": detail})
    return f"retry: {retry_ms}\n".encode() + frame("error", body)


class StreamFull(Exception):
    """This process serves `max_clients` streams already (or is not following yet)."""

    def __init__(self, message: str, *, retry_after: int = 10) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Subscriber:
    """One client: its filter, a bounded queue of frames, and how it ended (if it did)."""

    def __init__(self, stream_filter: StreamFilter, floor: int, size: int) -> None:
        self.filter = stream_filter
        self.floor = floor  # clips at or below this seq are the replay's to send
        self.size = size
        self.frames: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.final: bytes | None = None  # set: the stream ends after this frame

    @property
    def ended(self) -> bool:
        return self.final is not None

    def offer(self, data: bytes) -> bool:
        """Queue a frame; a full queue ends the client (it is too slow), never waits."""
        if self.final is not None:
            return False
        if len(self.frames) >= self.size:
            detail = "the client did not keep up; reconnect with Last-Event-ID"
            self.end(error_frame("slow", detail, SLOW_RETRY_MS))
            SSE_DROPPED.labels("slow").inc()
            return False
        self.frames.append(data)
        self.ready.set()
        return True

    def end(self, final: bytes) -> None:
        """What is queued is dropped: the client resumes from its last id."""
        if self.final is None:
            self.frames.clear()
            self.final = final
            self.ready.set()

    async def take(self, wait_s: float) -> list[bytes]:
        """The frames queued (waiting up to `wait_s`; none: time for a heartbeat)."""
        if not self.frames and self.final is None:
            await wait_event(self.ready, wait_s)
        self.ready.clear()
        taken = list(self.frames)
        self.frames.clear()
        return taken


@dataclass
class _Held:
    """Clips up to `upto` read while these transactions were running: released once they end."""

    upto: int
    running: frozenset[int]
    since: float


@dataclass
class _Hints:
    channels: set[str] = field(default_factory=set)
    everything: bool = False  # the feed reconnected: any channel may have changed


@dataclass(frozen=True)
class Replay:
    frames: list[bytes]
    last: int  # the highest seq read
    more: bool  # more clips were missed than one replay sends: the client reconnects
    truncated: bool = False  # the rows to read for them were too many: the rest is skipped


class StreamHub:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        render_clip: RenderClip,
        render_live: RenderLive | None = None,
        queue_size: int,
        max_clients: int,
        poll_s: float = POLL_S,
        replay_limit: int = REPLAY_LIMIT,
        replay_scan: int = REPLAY_SCAN,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.render_clip = render_clip
        self.render_live = render_live or _live_json
        self.queue_size = queue_size
        # Half a queue a read: between reads (the hub awaits the database) every client that
        # keeps up has written its queue out, so a bulk import drops only slow clients.
        self.batch = max(1, min(BATCH, queue_size // 2))
        self.max_clients = max_clients
        self.poll_s = poll_s
        self.replay_limit = replay_limit
        self.replay_scan = replay_scan
        self.subscribers: set[Subscriber] = set()
        self.released = 0  # every clip up to this seq was handed out (or was there at start)
        self.ready = False  # the first look at the database is done
        self.wakeups = 0
        self._held: list[_Held] = []
        self._hints = _Hints()
        self._wake = asyncio.Event()
        self._changes_mark = datetime.now(UTC)
        self._live_mark = self._changes_mark
        self._sent_changes: dict[tuple[int, datetime], None] = {}
        self._sent_live: dict[tuple[str, datetime, bool], None] = {}
        self._task: asyncio.Task[None] | None = None
        self._held_too_long = False

    # --- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start following (the first look at the database happens in the background: the
        app starts even while the database is away; streams are refused until then)."""
        self._task = asyncio.create_task(self._run(), name="clip-stream")

    async def _begin(self) -> bool:
        """From the newest clip committed now: what came before is for replays."""
        deadline = time.monotonic() + HOLD_MAX_S
        async with session_scope(self.sessionmaker) as session:
            snapshot = await clip_stream.begin_consistent_read(session)
            newest = await clip_stream.newest_seq(session)
        while snapshot is not None and snapshot.running and time.monotonic() < deadline:
            await asyncio.sleep(SETTLE_POLL_S)  # older writers may still commit below it
            async with session_scope(self.sessionmaker) as session:
                now = await clip_stream.begin_consistent_read(session)
            assert now is not None
            if all(now.ended(xid) for xid in snapshot.running):
                break
        self.released = newest
        self._changes_mark = self._live_mark = datetime.now(UTC)
        self.ready = True
        return False

    async def close(self, reason: str = "the server is stopping") -> None:
        """End every stream (with a retry hint) and stop."""
        for subscriber in list(self.subscribers):
            subscriber.end(error_frame("shutdown", reason, RETRY_MS))
        self.subscribers.clear()
        SSE_CLIENTS.set(0)
        if self._task is not None:
            task, self._task = self._task, None
            await cancel_and_wait(task)

    def end_all(self, reason: str = "the server is stopping") -> None:
        """Synchronous: from a signal handler, so streams end before the server waits on them."""
        for subscriber in list(self.subscribers):
            subscriber.end(error_frame("shutdown", reason, RETRY_MS))

    # --- clients ------------------------------------------------------------------------------

    def subscribe(self, stream_filter: StreamFilter, resume: int | None = None) -> Subscriber:
        """A client from now on; with `resume` (its last event id) one that already has
        every clip up to it: an id above this hub's watermark comes from a process that is
        a little ahead, and the clips up to it are not sent again."""
        if not self.ready:
            raise StreamFull(
                "the stream is starting (its first look at the database)", retry_after=1
            )
        if len(self.subscribers) >= self.max_clients:
            SSE_DROPPED.labels("limit").inc()
            raise StreamFull(f"this process serves {self.max_clients} streams already")
        floor = max(self.released, resume or 0)
        subscriber = Subscriber(stream_filter, floor, self.queue_size)
        self.subscribers.add(subscriber)
        SSE_CLIENTS.set(len(self.subscribers))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        SSE_CLIENTS.set(len(self.subscribers))

    async def replay(self, subscriber: Subscriber, last_event_id: int) -> Replay:
        """The clips after `last_event_id` up to where live events begin for this client,
        that match its filter, in seq order: at most `replay_limit` of them."""
        frames: list[bytes] = []
        after, scanned = last_event_id, 0
        while after < subscriber.floor and scanned < self.replay_scan:
            async with session_scope(self.sessionmaker) as session:
                clips = await clip_stream.clips_after(
                    session,
                    after,
                    limit=min(BATCH, self.replay_scan - scanned),
                    upto=subscriber.floor,
                )
                names = await _game_names(session, clips)
            if not clips:
                after = subscriber.floor
                break
            scanned += len(clips)
            for clip in clips:
                if len(frames) >= self.replay_limit:
                    return Replay(frames, after, more=True)
                after = clip.seq
                name = names.get(clip.game_id or "")
                if subscriber.filter.matches(clip, name):
                    frames.append(frame("clip", self.render_clip(clip, name), clip.seq))
        return Replay(frames, after, more=False, truncated=after < subscriber.floor)

    # --- notices ------------------------------------------------------------------------------

    def notice(self, changed: Collection[str]) -> None:
        """The cache's listener: generations that moved (no I/O here)."""
        hints = self._hints
        for dep in changed:
            if dep.startswith("ch:"):
                hints.channels.add(dep[3:])
            elif dep == ANY_CHANGE:
                hints.everything = True
            elif dep not in ("clips", "live"):
                continue
            self._wake.set()

    # --- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        failing = False
        while True:
            # Held clips are looked at again soon, for the clients waiting on them.
            timeout = SETTLE_POLL_S if self._held and self.subscribers else self.poll_s
            if self.ready:
                await wait_event(self._wake, timeout)
            self._wake.clear()
            try:
                more = await (self.wake_up() if self.ready else self._begin())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: the next wake-up tries again
                if not failing:
                    log.warning("stream_read_failed", error=f"{type(exc).__name__}: {exc}")
                failing = True
                await asyncio.sleep(self.poll_s)
                continue
            if failing:
                log.info("stream_read_recovered")
            failing = False
            if more:
                self._wake.set()

    async def wake_up(self) -> bool:
        """One read for everyone; True when more clips are waiting than one read takes.
        Without clients only the watermark moves (no rows are loaded)."""
        self.wakeups += 1
        hints, self._hints = self._hints, _Hints()
        started = datetime.now(UTC)
        listening = bool(self.subscribers)
        clips: list[Clip] = []
        changed: list[Clip] = []
        live: list[LiveChange] = []
        names: dict[str, str | None] = {}
        async with session_scope(self.sessionmaker) as session:
            snapshot = await clip_stream.begin_consistent_read(session)
            if listening:
                clips = await clip_stream.clips_after(session, self.released, limit=self.batch)
                top = clips[-1].seq if clips else self.released
            else:
                top = max(self.released, await clip_stream.newest_seq(session))
            upto = self._releasable(snapshot, top)
            if listening and (hints.channels or hints.everything):
                channels = None if hints.everything else sorted(hints.channels)
                changed = await clip_stream.clips_changed(
                    session, channels, since=self._changes_mark - LOOKBACK, upto=self.released
                )
            if listening:  # one row per tracked channel: looked at on every wake-up
                live = await clip_stream.live_changes(session, since=self._live_mark - LOOKBACK)
            new = [clip for clip in clips if clip.seq <= upto]
            if new or changed:
                names = await _game_names(session, [*new, *changed])
            hidden = await hidden_seqs(session, [c.seq for c in changed]) if changed else set()
        if hints.channels or hints.everything or not listening:
            self._changes_mark = started
        self._live_mark = started
        self._fan_out_new(new, names)
        self._fan_out_changed(changed, names, hidden)
        self._fan_out_live(live)
        self.released = max(self.released, upto)
        return len(clips) == self.batch and upto == top

    def _releasable(self, snapshot: Snapshot | None, top: int) -> int:
        """The highest seq up to `top` that no running transaction can still commit below."""
        if snapshot is None:  # SQLite: one writer at a time, seqs commit in order
            return top
        now = time.monotonic()
        upto = self.released
        while self._held and (
            all(snapshot.ended(xid) for xid in self._held[0].running)
            or now - self._held[0].since > HOLD_MAX_S
        ):
            held = self._held.pop(0)
            if not all(snapshot.ended(xid) for xid in held.running) and not self._held_too_long:
                log.warning("stream_released_past_running_transaction", seq=held.upto)
                self._held_too_long = True
            upto = max(upto, held.upto)
        if top > max(upto, self._held[-1].upto if self._held else 0):
            if snapshot.running or self._held:
                self._held.append(_Held(top, snapshot.running, now))
            else:
                upto = top
        return upto

    def _fan_out_new(self, clips: list[Clip], names: dict[str, str | None]) -> None:
        for clip in clips:
            name = names.get(clip.game_id or "")
            data: bytes | None = None
            for subscriber in list(self.subscribers):
                if clip.seq <= subscriber.floor or not subscriber.filter.matches(clip, name):
                    continue
                if data is None:
                    data = frame("clip", self.render_clip(clip, name), clip.seq)
                self._deliver(subscriber, data, "clip")

    def _fan_out_changed(
        self, clips: list[Clip], names: dict[str, str | None], hidden: set[int]
    ) -> None:
        horizon = self._changes_mark - 2 * LOOKBACK
        for key in [k for k in self._sent_changes if k[1] < horizon]:
            del self._sent_changes[key]
        for clip in clips:
            key = (clip.seq, clip.updated_at)
            if key in self._sent_changes:
                continue
            self._sent_changes[key] = None
            # A clip a moderator hid is gone for the clients: only its id, no word of it.
            gone = clip.seq in hidden
            deleted = gone or clip.deleted_at is not None
            event = "clip.deleted" if deleted else "clip.updated"
            name = names.get(clip.game_id or "")
            data: bytes | None = None
            for subscriber in list(self.subscribers):
                wanted = subscriber.filter
                if deleted:  # told to whoever would see the clip were it not deleted
                    wanted = replace(wanted, include_deleted=True)
                if not wanted.matches(clip, name):
                    continue
                if data is None:
                    body = orjson.dumps({"id": clip.id, "hidden": True}) if gone else None
                    data = frame(event, body or self.render_clip(clip, name))
                self._deliver(subscriber, data, event)

    def _fan_out_live(self, changes: list[LiveChange]) -> None:
        horizon = self._live_mark - 2 * LOOKBACK
        for key in [k for k in self._sent_live if k[1] < horizon]:
            del self._sent_live[key]
        for change in changes:
            row = change.live
            key = (row.channel_id, row.changed_at, row.live)
            if key in self._sent_live:
                continue
            self._sent_live[key] = None
            data = frame("channel.live", self.render_live(change))
            for subscriber in list(self.subscribers):
                if subscriber.filter.wants_channel(row.channel_id):
                    self._deliver(subscriber, data, "channel.live")

    def _deliver(self, subscriber: Subscriber, data: bytes, event: str) -> None:
        if subscriber.offer(data):
            SSE_EVENTS.labels(event).inc()
        elif subscriber.ended:
            self.unsubscribe(subscriber)


def _live_json(change: LiveChange) -> bytes:
    """A channel.live event's data when no renderer is given (the API gives one)."""
    row = change.live
    return orjson.dumps(
        {
            "channel": {"id": row.channel_id, "login": change.login},
            "live": row.live,
            "changed_at": row.changed_at,
        }
    )


async def _game_names(session: AsyncSession, clips: Iterable[Clip]) -> dict[str, str | None]:
    return await catalog.game_names(session, {c.game_id for c in clips if c.game_id})
