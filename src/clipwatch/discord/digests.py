"""Digest routes: the top clips of the period that just ended, posted on a schedule.

A digest route (`kind: digest`) has a schedule: `period` day|week|month, `time` "HH:MM" in
`time_zone`, `weekday` for weekly ones (Monday 0), `top` N. Its slot is that local time on
every day, on the weekday, or on the 1st of the month; the digest posted at a slot covers the
local calendar period that just ended: the day before, the 7 days before (Monday's slot:
Monday to Sunday), the month before.

Local times that a clock change skips or repeats (zoneinfo, PEP 495):
- skipped (02:30 on a spring-forward night): read with the offset before the change, so
  the slot comes the gap's length later on the wall clock (02:30 -> 03:30 in Berlin);
- repeated (02:30 on a fall-back night): the first of the two.
Period bounds (local midnights) follow the same rules.

Each period has a stable key (`day:2026-11-26`, `week:2026-W48` — the ISO week of the
period's last day —, `month:2026-11`); the outbox row's clip_id `digest:<key>` and the unique
(route, clip_id) make each period's digest one row whatever runs twice. The worker task
(runtime/digests.py) queues the latest slot that has passed since the route was created:
after a downtime that spans several slots, only the latest period is posted (once). The
message is built when it is sent, from the period's top clips then.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import Clip
from clipwatch.db.repositories import notifications
from clipwatch.discord.messages import (
    CONTENT_MAX,
    DESCRIPTION_MAX,
    EMBEDS_PER_MESSAGE,
    MESSAGE_EMBED_CHARS,
    NO_PINGS,
    TITLE_MAX,
    TWITCH_PURPLE,
    ClipView,
    Template,
    TemplateFailures,
    cut,
    embed_chars,
    escape,
    iter_messages,
)
from clipwatch.discord.routing import ClipFacts, RouteFilters, route_matches
from clipwatch.monitoring.metrics import ROUTE_POSTS

PERIODS = ("day", "week", "month")
TOP_MAX = 25
CANDIDATE_PAGE = 500  # clips read per query while looking for the top N that pass the filters
CANDIDATE_PAGES = 20  # at most 10,000 candidates per digest
LIST_TITLE_MAX = 60  # a clip's title in the list form
URL_MAX = 200  # a longer link is left out of the list (Twitch's are ~80 characters)


@dataclass(frozen=True)
class Schedule:
    period: str
    weekday: int
    at: time
    zone: ZoneInfo
    top: int


@dataclass(frozen=True)
class Period:
    """One digest: the local period [start, end) and the slot that posts it (all UTC)."""

    kind: str
    key: str
    start: datetime
    end: datetime
    slot_at: datetime
    label: str

    @property
    def clip_id(self) -> str:
        return f"digest:{self.key}"


def schedule_of(stored: Any) -> Schedule:
    """A route's stored schedule (route.digest); ValueError names what is wrong."""
    if not isinstance(stored, dict):
        raise ValueError("the digest schedule is missing")
    period = stored.get("period", "week")
    if period not in PERIODS:
        raise ValueError(f"unknown digest period {period!r}")
    weekday = stored.get("weekday", 0)
    if not isinstance(weekday, int) or isinstance(weekday, bool) or not 0 <= weekday <= 6:
        raise ValueError(f"digest weekday {weekday!r} is not 0-6")
    try:
        hours, minutes = str(stored.get("time", "18:00")).split(":")
        at = time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"digest time {stored.get('time')!r} is not HH:MM") from None
    try:
        zone = ZoneInfo(str(stored.get("time_zone", "UTC")))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {stored.get('time_zone')!r}") from None
    top = stored.get("top", 10)
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= TOP_MAX:
        raise ValueError(f"digest top {top!r} is not 1-{TOP_MAX}")
    return Schedule(period, weekday, at, zone, top)


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time: fold 0, so a skipped time is read with the
    offset before the change and a repeated one is its first occurrence."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def period_of_slot(schedule: Schedule, slot_day: date) -> Period:
    """The digest posted at the slot of `slot_day` (a weekly schedule's weekday, a monthly
    schedule's 1st): the local period that ended at that day's midnight."""
    zone = schedule.zone
    midnight = time(0, 0)
    if schedule.period == "day":
        first = slot_day - timedelta(days=1)
        key = f"day:{first.isoformat()}"
        label = f"{first:%A} {first.day} {first:%b %Y}"
    elif schedule.period == "week":
        first = slot_day - timedelta(days=7)
        last = slot_day - timedelta(days=1)
        year, week, _ = last.isocalendar()
        key = f"week:{year}-W{week:02d}"
        label = f"the week of {first.day} {first:%b} to {last.day} {last:%b %Y}"
    else:
        first = _month_start(slot_day, 1)
        key = f"month:{first:%Y-%m}"
        label = f"{calendar.month_name[first.month]} {first.year}"
    return Period(
        kind=schedule.period,
        key=key,
        start=local_instant(first, midnight, zone),
        end=local_instant(slot_day, midnight, zone),
        slot_at=local_instant(slot_day, schedule.at, zone),
        label=label,
    )


def _slot_days(schedule: Schedule, today: date) -> Iterator[date]:
    """Slot days from one period after `today` backwards (newest first)."""
    if schedule.period == "day":
        for back in range(-1, 3):
            yield today - timedelta(days=back)
    elif schedule.period == "week":
        this = today - timedelta(days=(today.weekday() - schedule.weekday) % 7)
        for back in range(-1, 3):
            yield this - timedelta(days=7 * back)
    else:
        for back in range(-1, 3):
            yield _month_start(today, back)


def latest_period(schedule: Schedule, now: datetime) -> Period:
    """The period whose slot is the latest at or before `now`."""
    today = now.astimezone(schedule.zone).date()
    for day in _slot_days(schedule, today):
        period = period_of_slot(schedule, day)
        if period.slot_at <= now:
            return period
    raise AssertionError("a slot within the last three periods")  # pragma: no cover


def next_slot(schedule: Schedule, now: datetime) -> datetime:
    """The first slot after `now` (shown to people: when the next digest goes out)."""
    today = now.astimezone(schedule.zone).date()
    slots = (period_of_slot(schedule, day).slot_at for day in _slot_days(schedule, today))
    return min(at for at in slots if at > now)


# --- queueing (the worker task, runtime/digests.py) ------------------------------------------


@dataclass
class QueueReport:
    queued: int = 0
    broken: list[tuple[int, str]] = field(default_factory=list)  # (route id, why)


async def queue_due_digests(session: AsyncSession, now: datetime) -> QueueReport:
    """Queue the latest past slot's digest of every enabled digest route (once per period:
    the outbox's unique key); slots before the route existed are not posted."""
    report = QueueReport()
    rows = []
    for route in await notifications.digest_routes(session):
        try:
            schedule = schedule_of(route.digest)
        except ValueError as exc:  # shown on the route (once, not every 30 s)
            text = f"digest schedule: {exc}"
            report.broken.append((route.id, text))
            if route.last_error != text:
                await notifications.record_route_error(session, route.id, text, now)
            continue
        period = latest_period(schedule, now)
        if route.created_at is not None and period.slot_at < _aware(route.created_at):
            continue
        rows.append(
            {
                "route_id": route.id,
                "clip_id": period.clip_id,
                "kind": "digest",
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "payload": {
                    "period": period.kind,
                    "key": period.key,
                    "start": period.start.isoformat(),
                    "end": period.end.isoformat(),
                    "label": period.label,
                    "top": schedule.top,
                },
            }
        )
    report.queued = await notifications.add_deliveries_counted(session, rows)
    if report.queued:
        ROUTE_POSTS.labels("digest", "queued").inc(report.queued)
    return report


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- the message (built when sent) -----------------------------------------------------------


def facts_of_clip(clip: Clip) -> ClipFacts:
    return ClipFacts(
        broadcaster_id=clip.broadcaster_id,
        broadcaster_login=(clip.broadcaster_name or "").lower() or None,
        game_id=clip.game_id,
        language=clip.language or "",
        view_count=int(clip.view_count or 0),
        title=clip.title or "",
        creator_id=clip.creator_id or "",
        creator_name=clip.creator_name or "",
        is_featured=bool(clip.is_featured),
    )


async def top_clips(
    session: AsyncSession,
    filters: RouteFilters,
    start: datetime,
    end: datetime,
    top: int,
) -> list[Clip]:
    """The `top` most viewed clips created in [start, end) that pass the route's filters
    (channels, games, languages and minimum views narrowed in SQL, the rest here)."""
    chosen: list[Clip] = []
    after: tuple[int, int] | None = None
    for _ in range(CANDIDATE_PAGES):
        page = await notifications.top_clips_between(
            session,
            start,
            end,
            channels=sorted(filters.channels),
            games=sorted(filters.games),
            languages=sorted(filters.languages),
            min_views=filters.min_views,
            after=after,
            limit=CANDIDATE_PAGE,
        )
        chosen += [c for c in page if route_matches(filters, facts_of_clip(c))]
        if len(chosen) >= top or len(page) < CANDIDATE_PAGE:
            break
        after = (page[-1].view_count, page[-1].seq)
    return chosen[:top]


def digest_message(
    template: Template,
    label: str,
    clips: Sequence[ClipView],
    *,
    template_failures: TemplateFailures | None = None,
) -> dict[str, Any] | None:
    """One message (None: no clips): the route's template, one embed a clip, when the clips
    fit one message (at most 10, 6,000 characters); otherwise a numbered list. One message,
    so a digest is one outbox row with one Discord message id: never half posted."""
    if not clips:
        return None
    heading = cut(f"Top {len(clips)} clip{'s' * (len(clips) != 1)} of {label}", TITLE_MAX)
    if template == "link":  # bare links, so Discord unfurls them (the list when they do not fit)
        lines = [f"**{heading}**"] + [f"{i}. {c.url}" for i, c in enumerate(clips, 1)]
        content = "\n".join(lines)
        if len(content) <= CONTENT_MAX:
            return {"content": content, "allowed_mentions": NO_PINGS}
    if len(clips) <= EMBEDS_PER_MESSAGE:
        messages = iter_messages(template, clips, template_failures=template_failures)
        message, count = next(messages)
        if count == len(clips):
            return {**message, "content": f"**{heading}**"}
    return list_message(heading, clips)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def list_message(heading: str, clips: Sequence[ClipView]) -> dict[str, Any]:
    """The clips as numbered lines (title linked, channel, views), over as many embeds as
    the 4,096-character descriptions need; titles are cut shorter (and, at the last,
    links dropped) until the whole fits Discord's 6,000 characters."""
    for title_max, linked in ((LIST_TITLE_MAX, True), (30, True), (12, True), (12, False)):
        message = _list(heading, clips, title_max, linked)
        if sum(embed_chars(e) for e in message["embeds"]) <= MESSAGE_EMBED_CHARS:
            break
    return message


def _list(heading: str, clips: Sequence[ClipView], title_max: int, linked: bool) -> dict[str, Any]:
    embeds: list[dict[str, Any]] = []
    lines: list[str] = []
    for i, clip in enumerate(clips, 1):
        # One line a clip: Twitch's text may hold line breaks.
        title = cut(escape(_one_line(clip.title[: title_max * 2])), title_max) or clip.id
        channel = cut(escape(_one_line(clip.broadcaster_name[:60])), 30)
        shown = f"[{title}]({clip.url})" if linked and len(clip.url) <= URL_MAX else title
        line = f"**{i}.** {shown} · {channel} · {clip.view_count:,} views"
        if lines and len("\n".join([*lines, line])) > DESCRIPTION_MAX:
            embeds.append({"description": "\n".join(lines), "color": TWITCH_PURPLE})
            lines = []
        lines.append(line)
    embeds.append({"description": "\n".join(lines), "color": TWITCH_PURPLE})
    embeds[0]["title"] = heading
    embeds[-1]["footer"] = {"text": "clipwatch"}
    return {"embeds": embeds, "allowed_mentions": NO_PINGS}
