"""The message builder: clips as Discord embeds within Discord's limits, pinging nobody.

Rules (reference/discord-api.md §1-2, §6):
- Every message carries `allowed_mentions: {"parse": []}`; Twitch text is markdown-escaped
  and `@everyone`/`@here` get a zero-width space, so `@everyone **hi**` renders literally.
- Each field is cut to its limit at a word boundary with "…"; a message holds at most 10
  embeds and 6,000 characters of embed text (title, description, field names and values,
  footer, author), counted after trimming.
- Templates: three built in (`card`, `compact`, `link`) and custom ones, which are Jinja2
  templates rendered in a sandbox over a fixed set of clip variables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

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
TWITCH_PURPLE = 0x9146FF
NO_PINGS: dict[str, list[str]] = {"parse": []}
_MARKDOWN = re.compile(r"([\\*_~|>`\[\]()#-])")
_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)


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
            "title": escape(self.title),
            "channel": escape(self.broadcaster_name),
            "creator": escape(self.creator_name),
            "game": escape(self.game_name),
            "views": self.view_count,
            "duration": round(self.duration),
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


_jinja = SandboxedEnvironment(autoescape=False, undefined=Undefined)


def _render(source: str, clip: ClipView) -> str:
    try:
        return _jinja.from_string(source).render(clip.variables())
    except TemplateError as exc:
        raise InvalidInput(
            f"template: {exc.message or type(exc).__name__}", field="template"
        ) from None


def _embed_custom(template: CustomTemplate, clip: ClipView) -> dict[str, Any]:
    return {
        "title": cut(_render(template.title, clip), TITLE_MAX),
        "url": clip.url,
        "description": cut(_render(template.description, clip), DESCRIPTION_MAX),
        "color": TWITCH_PURPLE,
        "image": {"url": clip.thumbnail_url},
    }


Template = str | CustomTemplate


def embed_for(template: Template, clip: ClipView) -> dict[str, Any]:
    if isinstance(template, CustomTemplate):
        return _embed_custom(template, clip)
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


def build_messages(template: Template, clips: Sequence[ClipView]) -> list[dict[str, Any]]:
    """Execute-webhook payloads for these clips, packed as few as Discord's limits allow."""
    if template == LINK_TEMPLATE:
        return [{"content": cut(c.url, CONTENT_MAX), "allowed_mentions": NO_PINGS} for c in clips]
    messages: list[dict[str, Any]] = []
    embeds: list[dict[str, Any]] = []
    chars = 0
    for clip in clips:
        embed = embed_for(template, clip)
        size = embed_chars(embed)
        if embeds and (len(embeds) == EMBEDS_PER_MESSAGE or chars + size > MESSAGE_EMBED_CHARS):
            messages.append({"embeds": embeds, "allowed_mentions": NO_PINGS})
            embeds, chars = [], 0
        embeds.append(embed)
        chars += size
    if embeds:
        messages.append({"embeds": embeds, "allowed_mentions": NO_PINGS})
    return messages


def validate_template(template: Template) -> None:
    """Render the sample clip and check the result against Discord's limits (when saved)."""
    for message in build_messages(template, [SAMPLE] * EMBEDS_PER_MESSAGE):
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
