"""Threads and forums: where a route's message goes.

- `thread_id` (kept from the pasted URL's `?thread_id=` or set alone): every message goes
  into that thread of the webhook's channel (`?thread_id=`). A thread Discord says is gone,
  locked or forbidden is the route's destination gone: the route is disabled with Discord's
  reason, as for a deleted webhook.
- `forum_mode` on a forum channel's webhook, with `thread_name` (a template over the clip's
  variables, rendered by the custom templates' bounded engine, cut to 100 characters, the
  clip's title when it renders empty):
  - `post`: every clip opens a post of its own (one clip a message);
  - `day`: one post per UTC day of the clip's creation, opened by the first clip and replied
    into by the later ones; `stream`: one per stream the clip was made during (a clip of no
    known stream falls back to its day).
  The (route, key) row of `forum_thread` is unique: a worker first claims it (a row without
  a thread), opens the post, and records the thread. A worker that finds another's claim
  leaves its clips for a few seconds (a rate-limit wait, no attempt spent) and then replies
  into the recorded thread: two workers never open two posts for one key. A claim older
  than `CLAIM_STALE` (its worker died mid-post) is taken over. A day's or stream's thread
  that vanished (deleted in Discord) is forgotten and opened anew by the next clip, not a
  reason to disable the route: a forum route's destination is the forum, which is still
  there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.models import Clip, NotificationRoute
from clipwatch.db.repositories import forum_threads
from clipwatch.discord.messages import SAMPLES, TEXT_VARIABLE_MAX, ClipView
from clipwatch.discord.sender import Gone, Outcome, Rejected
from clipwatch.discord.template_budget import render_clock
from clipwatch.discord.templates import CONTROL, TemplateProblem, compile_template, render

THREAD_NAME_MAX = 100  # Discord's limit for a thread's name
CLAIM_STALE = timedelta(seconds=90)  # longer than one send may take (30 s waits + timeouts)
BUSY_WAIT_S = 3.0  # another worker is opening the post: look again after this
FORUM_CODES = (220001, 220002)  # a forum channel needs thread_name or thread_id
UNKNOWN_THREAD = 10003


def _raw_variables(clip: ClipView) -> dict[str, Any]:
    """The template variables, unescaped: a thread name is plain text, not markdown."""
    variables = clip.variables()
    for name, value in (
        ("title", clip.title),
        ("channel", clip.broadcaster_name),
        ("creator", clip.creator_name),
        ("game", clip.game_name),
    ):
        variables[name] = value[:TEXT_VARIABLE_MAX]
    return variables


def _tidy(text: str) -> str:
    text = " ".join(CONTROL.sub("", text).split())
    if len(text) <= THREAD_NAME_MAX:
        return text
    return text[: THREAD_NAME_MAX - 1].rstrip() + "…"


def thread_name_for(source: str | None, clip: ClipView, deadline: float | None = None) -> str:
    """The post's name for this clip: the template, or the clip's title if it renders empty
    or fails (a failed name never costs the clip its post), never empty."""
    name = ""
    if source:
        try:
            name = _tidy(render(compile_template(source), _raw_variables(clip), deadline=deadline))
        except TemplateProblem:
            name = ""
    return name or _tidy(clip.title) or f"Clip {clip.id}"[:THREAD_NAME_MAX]


def validate_thread_name(source: str) -> None:
    """At save: the template compiles and renders on every sample clip (else a 422)."""
    try:
        program = compile_template(source)
    except TemplateProblem as problem:
        raise TemplateProblem(f"thread_name: {problem.reason}", field="thread_name") from None
    deadline = render_clock() + 0.05
    for what, clip in SAMPLES:
        try:
            render(program, _raw_variables(clip), deadline=deadline)
        except TemplateProblem as problem:
            raise TemplateProblem(
                f"thread_name: {problem.reason} (on {what})", field="thread_name"
            ) from None


def day_key(created_at: datetime) -> str:
    moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    return f"day:{moment.astimezone(UTC).date().isoformat()}"


async def forum_keys(
    session: AsyncSession, route: NotificationRoute, clips: list[Clip]
) -> dict[str, str]:
    """Each clip's post key for a `day` or `stream` route (clip id -> key)."""
    keys: dict[str, str] = {}
    for clip in clips:
        key = day_key(clip.created_at)
        if route.forum_mode == "stream":
            stream = await forum_threads.stream_at(session, clip.broadcaster_id, clip.created_at)
            if stream is not None:
                key = f"stream:{stream.twitch_stream_id or stream.id}"
        keys[clip.id] = key[:100]
    return keys


@dataclass(frozen=True)
class Join:
    """Where a key's clips go: into `thread_id`, or (`opener`) this worker opens the post,
    or (`busy`) another worker is opening it right now."""

    thread_id: str | None = None
    opener: bool = False
    busy: bool = False


async def join_thread(
    sessionmaker: async_sessionmaker[AsyncSession], route_id: int, key: str
) -> Join:
    now = datetime.now(UTC)
    async with session_scope(sessionmaker) as session:
        row = await forum_threads.get_thread(session, route_id, key)
        if row is not None and row.thread_id:
            return Join(thread_id=row.thread_id)
        if row is None and await forum_threads.claim_thread(session, route_id, key, now):
            return Join(opener=True)
    async with session_scope(sessionmaker) as session:
        row = await forum_threads.get_thread(session, route_id, key)
        if row is not None and row.thread_id:  # the other worker finished meanwhile
            return Join(thread_id=row.thread_id)
        if row is None:  # the claim was given up meanwhile: the next pass claims it
            return Join(busy=True)
        taken = await forum_threads.take_over_claim(session, route_id, key, now - CLAIM_STALE, now)
        return Join(opener=True) if taken else Join(busy=True)


async def opened(
    sessionmaker: async_sessionmaker[AsyncSession], route_id: int, key: str, thread_id: str
) -> None:
    async with session_scope(sessionmaker) as session:
        await forum_threads.set_thread(session, route_id, key, thread_id)


async def forget(
    sessionmaker: async_sessionmaker[AsyncSession], route_id: int, key: str, thread_id: str
) -> None:
    """A vanished thread, or (`thread_id` "") a claim whose post failed: the next clip of the
    key opens a new post."""
    async with session_scope(sessionmaker) as session:
        await forum_threads.forget_thread(session, route_id, key, thread_id)


def thread_vanished(outcome: Outcome) -> bool:
    return isinstance(outcome, Gone) and outcome.code == UNKNOWN_THREAD


def explain_forum_refusal(outcome: Outcome, route: NotificationRoute) -> Outcome:
    """Discord's 220001/220002 (a forum channel needs a thread) said in the route's terms."""
    if isinstance(outcome, Rejected) and outcome.code in FORUM_CODES:
        mode = route.forum_mode or "not set"
        return Rejected(
            f"{outcome.reason}: the webhook posts into a forum channel, which needs forum_mode "
            f"(post, day or stream) and thread_name; this route's forum_mode is {mode}",
            outcome.code,
        )
    return outcome
