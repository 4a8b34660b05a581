"""The clip synchronizer: incremental, backfill, refresh, deletions (reference §3.3).

Twitch's Get Clips sorts by views and yields about 1,000 clips per query however many match,
so completeness comes from time windows small enough that no query reaches the cap:

- A window is read page by page (100 a page). Once it has produced `CAP_GUARD` clips it
  may be cut, so reading stops and the window is split; a cursor that comes back
  unchanged (a known Twitch glitch) counts as cut too. Where windows end is planned by
  twitch/windows.py from estimates of how many clips they hold (the last windows' density,
  the views of a window's first pages, where a cut window's clips were), so a backfill asks
  for few more pages than its clips fill; never wider than `windows.MAX_WINDOW`.
- Backfill walks from the channel's creation to when the backfill began. Each finished
  window is stored together with the progress mark in one transaction, so a killed
  backfill resumes at the first unfinished window and never re-reads a finished one.
- Incremental reads from the last pass minus `OVERLAP` (clips appear late and are
  back-dated) to now.
- Refresh looks the channel's stored clips up by id, 100 per call: views and titles follow;
  a clip missing from that answer is only a suspect: it is marked deleted after lookups of
  it alone answered empty twice, minutes apart (twitch/deletions.py), and any answer that
  lists it again restores it.
  The last day's clips are refreshed every pass, older ones less and less
  often (`REFRESH_BANDS`).
- Leases in `channel_sync` keep two workers off one channel.
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.clips.importer import KnownReferences
from clipwatch.db.engine import session_scope
from clipwatch.db.models import ChannelSync
from clipwatch.db.repositories import absence, catalog, sync_state
from clipwatch.discord import outbox, trending
from clipwatch.errors import NotFound
from clipwatch.twitch import channel_health, deletions, intake
from clipwatch.twitch.client import HelixClient
from clipwatch.twitch.helix import HelixGame, HelixUser, explain_invalid, parse_instant
from clipwatch.twitch.windows import CAP_GUARD, MIN_WINDOW, WindowPlanner

log = structlog.get_logger(__name__)

FIRST_INCREMENTAL = timedelta(days=7)  # a channel with no backfill mark: its last week
OVERLAP = timedelta(hours=2)
LEASE = timedelta(minutes=2)  # renewed with every stored window
TWITCH_EPOCH = datetime(2011, 6, 1, tzinfo=UTC)
Sessionmaker = async_sessionmaker[AsyncSession]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_local_owner(owner: str | None) -> bool:
    """A lease held by a process of this host that no longer exists (killed, crashed)."""
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class LeaseLost(Exception):
    """Another worker took the channel (this one was too slow to renew its lease)."""


@dataclass
class SyncReport:
    windows: int = 0
    splits: int = 0
    clips_seen: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    restored: int = 0  # clips marked deleted that Twitch listed again
    unreadable: int = 0  # clips Twitch sent that could not be read (quarantined)
    quarantined: int = 0  # unreadable clips and clips the database refused
    failed_channels: dict[str, str] = field(default_factory=dict)  # channel id -> error
    backing_off: list[str] = field(default_factory=list)  # failed before; their retry is due later
    skipped_channels: list[str] = field(default_factory=list)
    # (channel id, phase, started, ended) of every step this worker did under its lease
    steps: list[tuple[str, str, datetime, datetime]] = field(default_factory=list)


class WindowCut(Exception):
    """The window may hold more than one query returns."""

    def __init__(self, created: list[datetime], estimate: float | None = None) -> None:
        super().__init__("window cut")
        self.created = created  # when the clips read before the cut were made
        self.estimate = estimate  # how many clips the window holds, when known


def _views(clip: dict[str, Any]) -> int | None:
    views = clip.get("view_count")
    return views if isinstance(views, int) and not isinstance(views, bool) else None


def _all_views(clips: list[Any]) -> list[int]:
    return [v for c in clips if isinstance(c, dict) and (v := _views(c)) is not None]


def _created(clips: dict[str, dict[str, Any]]) -> list[datetime]:
    created = []
    for clip in clips.values():
        try:
            created.append(parse_instant(clip.get("created_at")))
        except (TypeError, ValueError):
            continue  # an odd clip says nothing of where the others are
    return created


async def read_window(
    client: HelixClient,
    broadcaster_id: str,
    start: datetime,
    end: datetime,
    planner: WindowPlanner | None = None,
) -> list[dict[str, Any]]:
    """Every clip of the window as Twitch sent it, or WindowCut. Elements without a string
    id are kept too (after the others): they are quarantined, not lost unseen. With a
    `planner`, a window its first pages show to be over the cap is cut at once."""
    clips: dict[str, dict[str, Any]] = {}
    odd: list[Any] = []
    after: str | None = None
    seen: set[str] = set()
    views: list[int] = []
    while True:
        page, cursor = await client.get_clips_page(
            broadcaster_id, started_at=start, ended_at=end, after=after
        )
        for clip in page:
            if isinstance(clip, dict) and isinstance(clip.get("id"), str):
                clips[clip["id"]] = clip
                view = _views(clip)
                if view is not None:
                    views.append(view)
            else:
                odd.append(clip)
        if len(clips) + len(odd) >= CAP_GUARD:
            estimate = planner.estimate(views) if planner is not None else None
            raise WindowCut(_created(clips), estimate)
        if not cursor:
            return [*clips.values(), *odd]
        if cursor == after or cursor in seen:
            # A stuck cursor: smaller windows need fewer pages.
            raise WindowCut(_created(clips))
        if planner is not None and (estimate := planner.too_full(views)) is not None:
            raise WindowCut(_created(clips), estimate)
        seen.add(cursor)
        after = cursor


async def _store(
    session: AsyncSession,
    clips: list[dict[str, Any]],
    report: SyncReport,
    known: KnownReferences,
    *,
    channel_id: str | None = None,
) -> None:
    """Store the clips Twitch sent; the ones that cannot be stored go to quarantine."""
    await _store_read(session, intake.read_clips(clips), report, known, channel_id=channel_id)


async def _store_read(
    session: AsyncSession,
    read: intake.ClipsRead,
    report: SyncReport,
    known: KnownReferences,
    *,
    channel_id: str | None = None,
) -> None:
    report.clips_seen += len(read.rows)
    report.unreadable += len(read.unreadable)
    # Trending alerts compare the young clips' stored counts with the new ones.
    baseline = await trending.read_baseline(session, read.rows)
    stored = await intake.store_clips(
        session, read, channel_id=channel_id, known=known, notify=True
    )
    await trending.queue_trending(session, baseline, read.rows)
    report.inserted += stored.inserted
    report.updated += stored.updated
    report.quarantined += stored.quarantined
    if read.rows:
        await deletions.note_listed(session, list(read.rows), report, datetime.now(UTC))


Progress = Callable[[str, datetime, datetime, SyncReport], None]


async def walk_windows(
    client: HelixClient,
    sessionmaker: Sessionmaker,
    channel_id: str,
    start: datetime,
    end: datetime,
    report: SyncReport,
    *,
    mark: Callable[[AsyncSession, datetime], Any] | None = None,
    progress: Progress | None = None,
    owner: str | None = None,
) -> None:
    """Store every clip created in [start, end), window by window (renewing the lease).

    Games of fresh clips (the ones announced on Discord) that are new to the archive are
    named in the window's own transaction, so the post already carries the game's name; the
    rest are named at the end of the pass, a request per 100 games."""
    known = KnownReferences()
    named: set[str] = set()
    planner = WindowPlanner()
    cursor = start
    while cursor < end:
        window_end = planner.window_end(cursor, end)
        try:
            clips = await read_window(client, channel_id, cursor, window_end, planner)
        except WindowCut as cut:
            report.splits += 1
            if window_end - cursor <= MIN_WINDOW:
                raise RuntimeError(f"more than a query's worth of clips in {MIN_WINDOW}") from None
            planner.cut(cursor, window_end, cut.created, cut.estimate)
            continue
        read = intake.read_clips(clips)
        games = await _new_games(client, sessionmaker, list(read.rows.values()), named)
        async with session_scope(sessionmaker) as session:
            if owner is not None and not await sync_state.claim(
                session, channel_id, owner, datetime.now(UTC), LEASE
            ):
                raise LeaseLost(channel_id)
            await _store_read(session, read, report, known, channel_id=channel_id)
            if games:
                await catalog.name_games(session, games)
            if mark is not None:
                await mark(session, window_end)
        report.windows += 1
        planner.finished(cursor, window_end, _all_views(clips))
        cursor = window_end
        if progress is not None:
            progress(channel_id, cursor, end, report)


async def backfill_channel(
    client: HelixClient,
    sessionmaker: Sessionmaker,
    channel_id: str,
    report: SyncReport,
    *,
    progress: Progress | None = None,
    owner: str | None = None,
) -> None:
    async with session_scope(sessionmaker) as session:
        state = await sync_state.get_state(session, channel_id)
        if state.backfill_completed_at is not None:
            return
        channel = await catalog.get_channel(session, channel_id)
        if channel is None:
            raise NotFound(f"no channel {channel_id}")
        if state.backfill_until is None:
            state.backfill_until = datetime.now(UTC).replace(microsecond=0)
            created = channel.account_created_at or TWITCH_EPOCH
            state.backfill_done_until = max(created, TWITCH_EPOCH)
        start, end = state.backfill_done_until, state.backfill_until
        assert start is not None
    log.info(
        "backfill_started", channel_id=channel_id, start=start.isoformat(), end=end.isoformat()
    )

    async def mark(session: AsyncSession, done_until: datetime) -> None:
        state = await sync_state.get_state(session, channel_id)
        state.backfill_done_until = done_until

    if progress is not None:  # where the channel starts: nothing of it stored yet
        progress(channel_id, start, end, report)
    await walk_windows(
        client,
        sessionmaker,
        channel_id,
        start,
        end,
        report,
        mark=mark,
        progress=progress,
        owner=owner,
    )
    async with session_scope(sessionmaker) as session:
        state = await sync_state.get_state(session, channel_id)
        state.backfill_completed_at = datetime.now(UTC)
        if state.last_incremental_at is None:
            state.last_incremental_at = state.backfill_until


async def incremental_channel(
    client: HelixClient,
    sessionmaker: Sessionmaker,
    channel_id: str,
    report: SyncReport,
    *,
    owner: str | None = None,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    async with session_scope(sessionmaker) as session:
        state = await sync_state.get_state(session, channel_id)
        since = state.last_incremental_at or state.backfill_until or now - FIRST_INCREMENTAL
    await walk_windows(
        client,
        sessionmaker,
        channel_id,
        since - OVERLAP,
        now + timedelta(seconds=1),
        report,
        owner=owner,
    )
    async with session_scope(sessionmaker) as session:
        state = await sync_state.get_state(session, channel_id)
        state.last_incremental_at = now


@dataclass(frozen=True)
class Band:
    """Clips of an age between `younger_than` and `older_than` are refreshed `every` so often:
    young clips gain views fast and are deleted most often; old ones hardly change."""

    name: str
    older_than: timedelta
    younger_than: timedelta | None
    every: timedelta


REFRESH_BANDS = (
    Band("day", timedelta(0), timedelta(days=1), timedelta(0)),  # every pass
    Band("week", timedelta(days=1), timedelta(days=7), timedelta(hours=6)),
    Band("month", timedelta(days=7), timedelta(days=30), timedelta(days=1)),
    Band("older", timedelta(days=30), None, timedelta(days=7)),
)


def due_bands(now: datetime, marks: dict[str, str]) -> list[Band]:
    """The age bands whose refresh is due, youngest first."""
    due = []
    for band in REFRESH_BANDS:
        last = marks.get(band.name)
        if last is None or now - datetime.fromisoformat(last) >= band.every:
            due.append(band)
    return due


async def refresh_due(
    client: HelixClient, sessionmaker: Sessionmaker, channel_id: str, report: SyncReport
) -> list[str]:
    """Refresh the channel's age bands that are due; their names."""
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        marks = dict((await sync_state.get_state(session, channel_id)).refresh_marks or {})
    done = []
    for band in due_bands(now, marks):
        await refresh_channel(
            client,
            sessionmaker,
            channel_id,
            report,
            created_after=None if band.younger_than is None else now - band.younger_than,
            created_before=now - band.older_than if band.older_than else None,
        )
        marks[band.name] = now.isoformat()
        async with session_scope(sessionmaker) as session:
            state = await sync_state.get_state(session, channel_id)
            state.refresh_marks = dict(marks)
        done.append(band.name)
    return done


async def refresh_channel(
    client: HelixClient,
    sessionmaker: Sessionmaker,
    channel_id: str,
    report: SyncReport,
    *,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> None:
    """Re-read stored clips by id: new views and titles, clips marked deleted back when
    listed; a live clip the answer leaves out becomes a suspect, never a deletion (that
    takes `deletions.confirm_deletions`)."""
    async with session_scope(sessionmaker) as session:
        stored = await absence.stored_clip_ids(
            session, channel_id, created_after=created_after, created_before=created_before
        )
    ids = [clip_id for clip_id, _ in stored]
    deleted = {clip_id for clip_id, marked in stored if marked}
    known = KnownReferences()
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        answer = deletions.read_batch_lookup(
            chunk, await client.get("/clips", [("id", i) for i in chunk])
        )
        if answer is None:
            log.warning("twitch_lookup_unreadable", channel_id=channel_id, asked=len(chunk))
            continue
        async with session_scope(sessionmaker) as session:
            await _store(session, answer.listed, report, known)
            missing = [i for i in answer.missing if i not in deleted]
            await deletions.note_missing(session, channel_id, missing, datetime.now(UTC))
    async with session_scope(sessionmaker) as session:
        state = await sync_state.get_state(session, channel_id)
        state.last_refresh_at = datetime.now(UTC)


def _game_rows(games: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    rows = []
    for payload in games:
        try:
            game = HelixGame.model_validate(payload)
        except ValidationError as exc:
            log.warning("twitch_game_unreadable", error=explain_invalid(exc))
            continue
        rows.append((game.id, game.name, game.box_art_url))
    return rows


async def _new_games(
    client: HelixClient,
    sessionmaker: Sessionmaker,
    rows: list[dict[str, Any]],
    named: set[str],
) -> list[tuple[str, str, str]]:
    """The games of fresh clips (`rows` read by HelixClip) without a name yet, described by
    Twitch (`named` remembers the ones seen named, across the windows of one walk)."""
    fresh_after = datetime.now(UTC) - outbox.FRESH
    ids = {r["game_id"] for r in rows if r["game_id"] and r["created_at"] >= fresh_after} - named
    if not ids:
        return []
    async with session_scope(sessionmaker) as session:
        named |= await sync_state.named_games(session, ids)
    missing = sorted(ids - named)
    if not missing:
        return []
    games = _game_rows(await client.get_games(missing))
    named.update(missing)  # asked once per walk, whether Twitch knew them or not
    return games


async def name_games(client: HelixClient, sessionmaker: Sessionmaker) -> int:
    """Give names to the games clips mention (Get Clips carries only their ids)."""
    async with session_scope(sessionmaker) as session:
        ids = await sync_state.games_without_names(session)
    if not ids:
        return 0
    games = await client.get_games(ids)
    async with session_scope(sessionmaker) as session:
        await catalog.name_games(session, _game_rows(games))
    return len(games)


async def add_channels(
    client: HelixClient, sessionmaker: Sessionmaker, logins: list[str]
) -> tuple[list[str], list[str]]:
    """Track channels by login: (added logins, unknown logins)."""
    wanted = [login.strip().lower() for login in logins if login.strip()]
    users = await client.get_users(wanted)
    async with session_scope(sessionmaker) as session:
        added = await track_users(session, users)
    return added, [login for login in wanted if login not in added]


async def track_users(session: AsyncSession, users: list[dict[str, Any]]) -> list[str]:
    """Store Get Users records as tracked channels; their logins."""
    added = []
    for payload in users:
        try:
            user = HelixUser.model_validate(payload)
        except ValidationError as exc:
            log.warning("twitch_user_unreadable", error=explain_invalid(exc))
            continue
        await catalog.track_channel(
            session,
            channel_id=user.id,
            login=user.login,
            display_name=user.display_name or user.login,
            profile_image_url=user.profile_image_url or None,
            account_created_at=user.created_at,
        )
        await sync_state.get_state(session, user.id)
        added.append(user.login)
    return added


async def _claim(sessionmaker: Sessionmaker, channel_id: str, owner: str) -> bool:
    async with session_scope(sessionmaker) as session:
        state = await sync_state.get_state(session, channel_id)
        if state.lease_owner != owner and _dead_local_owner(state.lease_owner):
            log.warning("sync_lease_taken_over", channel_id=channel_id, dead=state.lease_owner)
            await sync_state.release(session, channel_id, state.lease_owner or "")
        return await sync_state.claim(session, channel_id, owner, datetime.now(UTC), LEASE)


async def _release(sessionmaker: Sessionmaker, channel_id: str, owner: str) -> None:
    async with session_scope(sessionmaker) as session:
        await sync_state.release(session, channel_id, owner)


async def sync_all(
    client: HelixClient,
    sessionmaker: Sessionmaker,
    *,
    backfill: bool = False,
    only: str | None = None,
    owner: str | None = None,
    progress: Progress | None = None,
    deletion_wait: timedelta = deletions.CONFIRM_WAIT,  # CLIPWATCH_DELETION_CONFIRM_MINUTES
    ignore_backoff: bool = False,
    channels: Sequence[str] | None = None,
    still_due: StillDue | None = None,
    on_done: OnDone | None = None,
) -> SyncReport:
    """One pass over the tracked channels, in the order a short budget is best spent: new
    clips and the last day's refresh for every channel first, then (when asked) backfill.

    Each channel is claimed for its step and released after it, so several workers share
    the channels between them; a channel another worker holds is skipped this pass.
    A channel's failure costs that channel only (channel_health): it is recorded, the
    channel waits out its backoff (unless `ignore_backoff`: an operator's own pass), and
    the other channels go on.

    `channels` limits the pass to those tracked channels, in that order (the adaptive
    cadence's due set, twitch/cadence.py); `still_due` and `on_done` are handed to each
    `sync_step`.
    """
    owner = owner or worker_name()
    report = SyncReport()
    async with session_scope(sessionmaker) as session:
        tracked = [
            c.id
            for c in await sync_state.tracked_channels(session)
            if only in (None, c.id, c.login)
        ]
    if only is not None and not tracked:
        raise NotFound(f"{only} is not a tracked channel")
    if channels is not None:
        known = set(tracked)
        tracked = [c for c in dict.fromkeys(channels) if c in known]
    skipped: set[str] = set()
    due = tracked
    if not ignore_backoff:
        due = await channel_health.due_channels(sessionmaker, tracked, datetime.now(UTC))
        report.backing_off = [c for c in tracked if c not in due]
    phases = ["recent", "backfill"] if backfill else ["recent"]
    for phase in phases:
        for channel_id in due:
            if channel_id in report.failed_channels:
                continue  # its backfill waits for its backoff too
            outcome = await sync_step(
                client,
                sessionmaker,
                channel_id,
                phase,
                report,
                owner=owner,
                progress=progress,
                deletion_wait=deletion_wait,
                still_due=still_due,
                on_done=on_done,
            )
            if outcome in (StepOutcome.BUSY, StepOutcome.LOST):
                skipped.add(channel_id)
    try:
        await name_games(client, sessionmaker)
    except Exception as exc:  # the names follow next pass; the clips are stored
        log.warning("games_naming_failed", error=channel_health.describe_failure(exc))
    report.skipped_channels = sorted(skipped)
    return report


class StepPaused(Exception):
    """Raised by a step's `progress` callback to stop a backfill after a window it stored
    (its share of the budget is spent): the next step resumes at the next window."""


class StepOutcome(enum.Enum):
    DONE = "done"
    FAILED = "failed"  # recorded on the channel (channel_health): it backs off
    BUSY = "busy"  # another worker holds the channel's lease
    NOT_DUE = "not_due"  # `still_due` said no once the lease was held
    LOST = "lost"  # another worker took the lease over during the step
    PAUSED = "paused"  # a backfill stopped by StepPaused after a stored window


# Asked under the channel's lease before its step: another worker may have done it since
# the caller decided it was due.
StillDue = Callable[[ChannelSync, str], bool]  # (state, phase)
# Told after the step, in the transaction that releases the lease: (session, state, phase,
# outcome). What it changes on `state` is committed before any other worker can claim.
OnDone = Callable[[AsyncSession, ChannelSync, str, StepOutcome], Awaitable[None]]


async def sync_step(
    client: HelixClient,
    sessionmaker: Sessionmaker,
    channel_id: str,
    phase: str,
    report: SyncReport,
    *,
    owner: str,
    progress: Progress | None = None,
    deletion_wait: timedelta = deletions.CONFIRM_WAIT,
    still_due: StillDue | None = None,
    on_done: OnDone | None = None,
) -> StepOutcome:
    """One channel's step under its lease: "recent" (incremental, due refresh bands,
    deletion confirmations) or "backfill". Its failure is the channel's (recorded, backoff)."""
    if not await _claim(sessionmaker, channel_id, owner):
        return StepOutcome.BUSY
    if still_due is not None:
        async with session_scope(sessionmaker) as session:
            state = await sync_state.get_state(session, channel_id)
            due = still_due(state, phase)
        if not due:
            await _release(sessionmaker, channel_id, owner)
            return StepOutcome.NOT_DUE
    started = datetime.now(UTC)
    readable, unreadable = report.clips_seen, report.unreadable
    outcome = StepOutcome.DONE
    try:
        if phase == "recent":
            await incremental_channel(client, sessionmaker, channel_id, report, owner=owner)
            await refresh_due(client, sessionmaker, channel_id, report)
            await deletions.confirm_deletions(
                client, sessionmaker, channel_id, report, wait=deletion_wait
            )
        else:
            await backfill_channel(
                client, sessionmaker, channel_id, report, progress=progress, owner=owner
            )
        if report.unreadable > unreadable and report.clips_seen == readable:
            raise channel_health.UnreadableChannel(
                f"every clip Twitch returned was unreadable "
                f"({report.unreadable - unreadable} quarantined)"
            )
    except StepPaused:
        outcome = StepOutcome.PAUSED
    except LeaseLost:
        # Another worker took the channel over: its step, not a failure of ours.
        log.warning("sync_lease_lost", channel_id=channel_id, phase=phase, owner=owner)
        outcome = StepOutcome.LOST
    except Exception as exc:  # one channel's failure, whatever it is, costs that channel
        report.failed_channels[channel_id] = channel_health.describe_failure(exc)
        outcome = StepOutcome.FAILED
        log.warning(
            "sync_channel_failed",
            channel_id=channel_id,
            phase=phase,
            error=report.failed_channels[channel_id],
        )
        log.debug("sync_channel_failed_trace", channel_id=channel_id, exc_info=True)
    finally:
        ended = datetime.now(UTC)
        await _finish(sessionmaker, channel_id, owner, phase, outcome, on_done)
    if outcome is StepOutcome.LOST:
        return outcome
    await channel_health.record_outcome(
        sessionmaker, channel_id, report.failed_channels.get(channel_id)
    )
    report.steps.append((channel_id, phase, started, ended))
    log.info(
        "sync_channel_done",
        channel_id=channel_id,
        phase=phase,
        owner=owner,
        outcome=outcome.value,
        started=started.isoformat(),
        ended=ended.isoformat(),
    )
    return outcome


async def _finish(
    sessionmaker: Sessionmaker,
    channel_id: str,
    owner: str,
    phase: str,
    outcome: StepOutcome,
    on_done: OnDone | None,
) -> None:
    """Release the lease, with `on_done`'s changes in the same transaction (only while
    this worker still holds the lease: a worker that lost it leaves the state alone)."""
    async with session_scope(sessionmaker) as session:
        if on_done is not None and outcome is not StepOutcome.LOST:
            state = await sync_state.get_state(session, channel_id)
            if state.lease_owner == owner:
                await on_done(session, state, phase, outcome)
        await sync_state.release(session, channel_id, owner)
