"""The message builder: clips as Discord embeds within Discord's limits, pinging nobody.

Rules (reference/discord-api.md §1-2, §6):
- Every message carries `allowed_mentions: {"parse": []}`; Twitch text is markdown-escaped
  and `@everyone`/`@here` get a zero-width space, so `@everyone **hi**` renders literally.
- Each field is cut to its limit at a word boundary with "…"; a message holds at most 10
  embeds and 6,000 characters of embed text (title, description, field names and values,
  footer, author), counted after trimming.
- Templates: three built in (`card`, `compact`, `link`) and custom ones, written in a small
  Jinja dialect over a fixed set of clip variables and rendered under a budget
  (`templates.py`). A custom template that fails on one clip can fall back to `card` for it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from clipwatch.discord.template_budget import render_clock
from clipwatch.discord.templates import CONTROL, TemplateProblem, compile_template, render
from clipwatch.errors import InvalidInput

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
AUTHOR_MAX = 256
CONTENT_MAX = 2000
EMBEDS_PER_MESSAGE = 10
MESSAGE_EMBED_CHARS = 6000
TEXT_VARIABLE_MAX = 1024  # what a template sees of a clip's text (Twitch titles are ~100)
VALIDATE_SECONDS = 0.05  # every sample's render together, when a template is saved
MESSAGE_RENDER_SECONDS = 0.05  # the renders of one message's clips together
TWITCH_PURPLE = 0x9146FF
NO_PINGS: dict[str, list[str]] = {"parse": []}
_MARKDOWN = re.compile(r"([\\*_~|>`\[\]()#-])")
_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)
_LOGIN = re.compile(r"[A-Za-z0-9_]{1,25}")


@dataclass(frozen=True)
class ClipView:
    """The clip variables templates may use (and nothing else)."""

    id: str
    url: str
    title: str
    broadcaster_name: str
    creator_name: str
    game_name: str
    view_count: int
    duration: float
    created_at: datetime
    thumbnail_url: str
    language: str

    def variables(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "title": _text(self.title),
            "channel": _text(self.broadcaster_name),
            "creator": _text(self.creator_name),
            "game": _text(self.game_name),
            "views": self.view_count,
            # round() of NaN or infinity raises, and would break even the card.
            "duration": round(self.duration) if math.isfinite(self.duration) else 0,
            "created_at": self.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            "language": self.language,
        }


SAMPLE = ClipView(
    id="AwkwardHelplessSalamanderSwiftRage",
    url="https://clips.twitch.tv/AwkwardHelplessSalamanderSwiftRage",
    title="@everyone **the** _clip_ of the year " + "x" * 200,
    broadcaster_name="ChewieMelodies",
    creator_name="BlackNova03",
    game_name="Just Chatting",
    view_count=123_456,
    duration=59.9,
    created_at=datetime(2026, 1, 1, 12, 0),
    thumbnail_url="https://clips-media-assets2.twitch.tv/preview-480x272.jpg",
    language="en",
)


@dataclass(frozen=True)
class StreamNoticeView:
    """What a stream notice shows, read when it is sent (`clips`: stored by then)."""

    kind: str  # live | stream_end
    channel_name: str
    channel_login: str | None
    title: str
    game_name: str
    started_at: datetime
    ended_at: datetime | None
    peak_viewers: int | None
    clips: int = 0


def _length(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def stream_notice_message(notice: StreamNoticeView) -> dict[str, Any]:
    """ "<channel> is live" or "<channel>: stream ended: N clips", as one embed."""
    channel = cut(escape(notice.channel_name[:AUTHOR_MAX]), 100) or "a channel"
    fields: list[dict[str, Any]] = []
    if notice.game_name:
        game = cut(escape(notice.game_name[: FIELD_VALUE_MAX + 1]), FIELD_VALUE_MAX)
        fields.append({"name": "Game", "value": game, "inline": True})
    if notice.kind == "live":
        headline = f"{channel} is live"
        moment = notice.started_at
    else:
        headline = f"{channel}: stream ended: {notice.clips:,} clip{'s' * (notice.clips != 1)}"
        moment = notice.ended_at or notice.started_at
        if notice.ended_at is not None:
            span = (notice.ended_at - notice.started_at).total_seconds()
            fields.append({"name": "Length", "value": _length(span), "inline": True})
        if notice.peak_viewers:
            fields.append(
                {"name": "Peak viewers", "value": _views(notice.peak_viewers), "inline": True}
            )
    embed: dict[str, Any] = {
        "title": cut(headline, TITLE_MAX),
        "color": TWITCH_PURPLE,
        "fields": fields,
        "timestamp": moment.isoformat(),
        "footer": {"text": "clipwatch"},
    }
    if notice.channel_login and _LOGIN.fullmatch(notice.channel_login):
        embed["url"] = f"https://www.twitch.tv/{notice.channel_login}"
    if notice.title.strip():
        embed["description"] = cut(escape(notice.title[: DESCRIPTION_MAX + 1]), DESCRIPTION_MAX)
    return {"embeds": [embed], "allowed_mentions": NO_PINGS}


def _text(text: str) -> str:
    """Escaped and cut: a 100 KB title costs no more than a short one from here on."""
    return cut(escape(text[: TEXT_VARIABLE_MAX + 1]), TEXT_VARIABLE_MAX)


def escape(text: str) -> str:
    """Markdown shown literally; @everyone/@here broken with a zero-width space."""
    return _MENTION.sub("@\u200b\\1", _MARKDOWN.sub(r"\\\1", text))


def cut(text: str, limit: int) -> str:
    """At most `limit` characters after trimming, ending at a word boundary with "…"."""
    text = text.strip()
    if len(text) <= limit:
        return text
    room = text[: limit - 1]
    space = room.rfind(" ")
    if space >= limit // 2:
        room = room[:space]
    # Never end on a lone escaping backslash.
    while room.endswith("\\") and not room.endswith("\\\\"):
        room = room[:-1]
    return room.rstrip() + "…"


def _views(count: int) -> str:
    return f"{count:,}"


def _embed_card(clip: ClipView) -> dict[str, Any]:
    v = clip.variables()
    return {
        "title": cut(v["title"], TITLE_MAX),
        "url": clip.url,
        "description": cut(" · ".join(filter(None, (v["channel"], v["game"]))), DESCRIPTION_MAX),
        "color": TWITCH_PURPLE,
        "image": {"url": clip.thumbnail_url},
        "fields": [
            {"name": "Views", "value": _views(clip.view_count), "inline": True},
            {"name": "Length", "value": f"{v['duration']} s", "inline": True},
            {"name": "Clipped by", "value": cut(v["creator"], FIELD_VALUE_MAX), "inline": True},
        ],
        "timestamp": clip.created_at.isoformat(),
        "footer": {"text": "clipwatch"},
    }


def _embed_compact(clip: ClipView) -> dict[str, Any]:
    v = clip.variables()
    return {
        "title": cut(v["title"], TITLE_MAX),
        "url": clip.url,
        "description": cut(f"{v['channel']} · {_views(clip.view_count)} views", DESCRIPTION_MAX),
        "color": TWITCH_PURPLE,
        "thumbnail": {"url": clip.thumbnail_url},
    }


BUILTIN = {"card": _embed_card, "compact": _embed_compact}
LINK_TEMPLATE = "link"  # the bare clip URL as content: Discord unfurls it into its player


@dataclass(frozen=True)
class CustomTemplate:
    """A user's template: Jinja2 for the embed title and description (sandboxed)."""

    title: str
    description: str


def _render(source: str, part: str, clip: ClipView, deadline: float | None) -> str:
    try:
        text = render(compile_template(source), clip.variables(), deadline=deadline)
    except TemplateProblem as problem:
        raise TemplateProblem(f"{part}: {problem.reason}", field=f"template.{part}") from None
    return CONTROL.sub("", text)  # a '\x00' in a string literal, say


def _embed_custom(
    template: CustomTemplate, clip: ClipView, deadline: float | None = None
) -> dict[str, Any]:
    return {
        "title": cut(_render(template.title, "title", clip, deadline), TITLE_MAX),
        "url": clip.url,
        "description": cut(
            _render(template.description, "description", clip, deadline), DESCRIPTION_MAX
        ),
        "color": TWITCH_PURPLE,
        "image": {"url": clip.thumbnail_url},
    }


Template = str | CustomTemplate


def embed_for(template: Template, clip: ClipView, deadline: float | None = None) -> dict[str, Any]:
    if isinstance(template, CustomTemplate):
        return _embed_custom(template, clip, deadline)
    if template not in BUILTIN:
        raise InvalidInput(f"unknown template {template!r}", field="template")
    return BUILTIN[template](clip)


def embed_chars(embed: dict[str, Any]) -> int:
    """The characters Discord counts toward a message's 6,000."""
    total = len(str(embed.get("title", "")).strip()) + len(
        str(embed.get("description", "")).strip()
    )
    for item in embed.get("fields", []):
        total += len(str(item["name"]).strip()) + len(str(item["value"]).strip())
    total += len(str((embed.get("footer") or {}).get("text", "")).strip())
    total += len(str((embed.get("author") or {}).get("name", "")).strip())
    return total


TemplateFailures = list[tuple[ClipView, TemplateProblem]]


def template_failure_text(failures: TemplateFailures) -> str:
    """What a route records when its template failed on clips (the last one named)."""
    clip, problem = failures[-1]
    return f"{problem} (clip {clip.id}; sent with the card template instead)"


def build_messages(
    template: Template,
    clips: Sequence[ClipView],
    *,
    template_failures: TemplateFailures | None = None,
) -> list[dict[str, Any]]:
    """Execute-webhook payloads for these clips, packed as few as Discord's limits allow."""
    return [m for m, _ in iter_messages(template, clips, template_failures=template_failures)]


def iter_messages(
    template: Template,
    clips: Iterable[ClipView],
    *,
    batching: bool = True,
    template_failures: TemplateFailures | None = None,
) -> Iterator[tuple[dict[str, Any], int]]:
    """Messages one at a time, each with the number of clips it holds (in order), each built
    only when asked for: a worker renders a message's clips just before sending it.

    A custom template that fails on a clip raises TemplateProblem, or, given a
    `template_failures` list, is added there and that clip gets the `card` embed instead.
    """
    if template == LINK_TEMPLATE:
        for clip in clips:
            yield {"content": cut(clip.url, CONTENT_MAX), "allowed_mentions": NO_PINGS}, 1
        return
    embeds: list[dict[str, Any]] = []
    chars = 0
    deadline = render_clock() + MESSAGE_RENDER_SECONDS
    for clip in clips:
        if not embeds:  # a message's clips share one time budget: it holds the event loop
            deadline = render_clock() + MESSAGE_RENDER_SECONDS
        try:
            embed = embed_for(template, clip, deadline)
        except TemplateProblem as problem:
            if template_failures is None or not isinstance(template, CustomTemplate):
                raise
            template_failures.append((clip, problem))
            embed = _embed_card(clip)
        size = embed_chars(embed)
        if embeds and (len(embeds) == EMBEDS_PER_MESSAGE or chars + size > MESSAGE_EMBED_CHARS):
            yield {"embeds": embeds, "allowed_mentions": NO_PINGS}, len(embeds)
            embeds, chars = [], 0
            # The caller sent that message meanwhile: the next one's renders get their own
            # budget (they were measured from before the send, and ran out of time).
            deadline = render_clock() + MESSAGE_RENDER_SECONDS
        embeds.append(embed)
        chars += size
        if not batching:
            yield {"embeds": embeds, "allowed_mentions": NO_PINGS}, 1
            embeds, chars = [], 0
    if embeds:
        yield {"embeds": embeds, "allowed_mentions": NO_PINGS}, len(embeds)


SAMPLES: tuple[tuple[str, ClipView], ...] = (
    ("the sample clip", SAMPLE),
    ("a clip with an empty title", replace(SAMPLE, title="")),
    (
        "a clip with a 4 KB title of markdown and @everyone",
        replace(SAMPLE, title=("@everyone **big** _clip_ [x](y) `z` #1 ~~ " * 100)[:4096]),
    ),
    ("a clip without a game", replace(SAMPLE, game_name="")),
    ("a clip with 0 views and 0 s", replace(SAMPLE, view_count=0, duration=0.0)),
    ("a clip with 2**53 views", replace(SAMPLE, view_count=2**53, duration=60.0)),
    ("a clip of 0.4 s", replace(SAMPLE, view_count=1, duration=0.4)),
    ("a clip of an unreadable length", replace(SAMPLE, duration=float("nan"))),
    (
        "a clip with unicode names",
        replace(
            SAMPLE,
            title="ταχύτητα 🚀 — 日本語のクリップ \u200b",
            broadcaster_name="\uff23hewie\uff2delodies",  # fullwidth letters
            creator_name="Zoë",
            game_name="Pokémon™",
            language="ja",
        ),
    ),
    (
        "a clip with empty names",
        replace(SAMPLE, broadcaster_name="", creator_name="", language="", title="x"),
    ),
)


def validate_template(template: Template) -> None:
    """Check a template when it is saved: a custom one must render every sample clip within
    its budget; the messages must be within Discord's limits. InvalidInput names the problem."""
    if isinstance(template, CustomTemplate):
        for part, source in (("title", template.title), ("description", template.description)):
            try:
                compile_template(source)
            except TemplateProblem as problem:
                raise TemplateProblem(
                    f"{part}: {problem.reason}", field=f"template.{part}"
                ) from None
        deadline = render_clock() + VALIDATE_SECONDS
        messages = []
        for name, clip in SAMPLES:
            try:
                embed = _embed_custom(template, clip, deadline)
            except TemplateProblem as problem:
                raise TemplateProblem(
                    f"{problem.reason} (on {name})", field=problem.field
                ) from None
            messages.append({"embeds": [embed], "allowed_mentions": NO_PINGS})
    else:
        messages = build_messages(template, [SAMPLE] * EMBEDS_PER_MESSAGE)
    for message in messages:
        problems = message_problems(message)
        if problems:
            raise InvalidInput(f"template: {problems[0]}", field="template")


def message_problems(message: dict[str, Any]) -> list[str]:
    """What Discord would reject in an execute-webhook payload (empty: nothing)."""
    problems: list[str] = []
    embeds: Iterable[dict[str, Any]] = message.get("embeds") or []
    embeds = list(embeds)
    if not message.get("content") and not embeds:
        problems.append("empty message")
    if len(message.get("content") or "") > CONTENT_MAX:
        problems.append(f"content over {CONTENT_MAX} characters")
    if len(embeds) > EMBEDS_PER_MESSAGE:
        problems.append(f"more than {EMBEDS_PER_MESSAGE} embeds")
    if sum(embed_chars(e) for e in embeds) > MESSAGE_EMBED_CHARS:
        problems.append(f"embeds over {MESSAGE_EMBED_CHARS} characters in all")
    for embed in embeds:
        for key, limit in (("title", TITLE_MAX), ("description", DESCRIPTION_MAX)):
            if len(str(embed.get(key, "")).strip()) > limit:
                problems.append(f"embed {key} over {limit} characters")
        fields = embed.get("fields", [])
        if len(fields) > 25:
            problems.append("more than 25 fields")
        for item in fields:
            if len(str(item["name"]).strip()) > FIELD_NAME_MAX:
                problems.append(f"field name over {FIELD_NAME_MAX} characters")
            if len(str(item["value"]).strip()) > FIELD_VALUE_MAX:
                problems.append(f"field value over {FIELD_VALUE_MAX} characters")
    if message.get("allowed_mentions") != NO_PINGS:
        problems.append("allowed_mentions must be {'parse': []}")
    return problems


# --- a route's voice: who it pings and the name it posts under (issue 15) ----------------------


@dataclass(frozen=True)
class Voice:
    """What a route adds to every message it sends, whatever built the message: the roles it
    pings (and @here, when asked for and allowed by an admin), its name and avatar."""

    role_ids: tuple[str, ...] = ()
    here: bool = False
    username: str | None = None
    avatar_url: str | None = None


QUIET = Voice()
_SNOWFLAKE = re.compile(r"[0-9]{17,20}")


def voice_of(route: Any) -> Voice:
    """A NotificationRoute's voice (stored values re-checked: only snowflakes ping)."""
    roles = tuple(
        dict.fromkeys(r for r in (getattr(route, "role_ids", None) or []) if _is_snowflake(r))
    )
    return Voice(
        role_ids=roles[:100],
        here=bool(getattr(route, "ping_here", False) and getattr(route, "here_allowed", False)),
        username=getattr(route, "username", None) or None,
        avatar_url=getattr(route, "avatar_url", None) or None,
    )


def _is_snowflake(value: Any) -> bool:
    return isinstance(value, str) and _SNOWFLAKE.fullmatch(value) is not None


def allowed_mentions_for(voice: Voice) -> dict[str, list[str]]:
    """Exactly the route's roles (and everyone for @here); nobody at all otherwise. Whatever
    the message's text says, Discord pings no one else (reference §6)."""
    mentions: dict[str, list[str]] = {"parse": ["everyone"] if voice.here else []}
    if voice.role_ids:
        mentions["roles"] = list(voice.role_ids)
    return mentions


def address(message: dict[str, Any], voice: Voice) -> dict[str, Any]:
    """`message` as the route sends it: its pings first in the content, `allowed_mentions`
    of the route (replacing whatever the message held), its username and avatar."""
    pings = " ".join([f"<@&{r}>" for r in voice.role_ids] + (["@here"] if voice.here else []))
    out = {**message, "allowed_mentions": allowed_mentions_for(voice)}
    if pings:
        content = str(message.get("content") or "")
        room = CONTENT_MAX - len(pings) - 1
        out["content"] = f"{pings}\n{cut(content, room)}" if content.strip() else pings
    if voice.username:
        out["username"] = voice.username
    if voice.avatar_url:
        out["avatar_url"] = voice.avatar_url
    return out
