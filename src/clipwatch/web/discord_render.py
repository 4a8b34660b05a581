"""A Discord webhook message payload as HTML, roughly as Discord's client shows it.

Used by the route preview and the demo sink page. Liberal in what it reads: a payload is
whatever JSON someone stored, so a part with a missing key or the wrong type is left out
(and named in `problems`), never raised on. Discord rejects a message over its limits
(reference/discord-api.md §1.2, §2); the preview cuts each text to its limit with "…", as our
message builder does before sending, and says what it cut. Everything from the payload is
escaped; the only markup is ours: **bold**, *italic*/_italic_, __underline__, ~~strike~~,
`code`, [text](url) links and bare links, http(s) only. No style attributes (the page's CSP
is `style-src 'self'`): the embed's colour bar is a one-rect SVG with a fill= attribute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

CONTENT_MAX = 2000
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
AUTHOR_MAX = 256
USERNAME_MAX = 80
EMBEDS_MAX = 10
FIELDS_MAX = 25
MESSAGE_EMBED_CHARS = 6000
INLINE_PER_ROW = 3
NO_COLOR = "#4e5058"  # Discord's bar when an embed has no colour
_MARKDOWN_DEPTH = 6
_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TOKEN = re.compile(
    r"\\(?P<escaped>[\\*_~|>`\[\]()#-])"
    r"|`(?P<code>[^`\n]+)`"
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|__(?P<under>.+?)__"
    r"|~~(?P<strike>.+?)~~"
    r"|\*(?P<em>[^*\s](?:.*?[^*\s])?)\*"
    r"|\b_(?P<em2>[^_\s](?:.*?[^_\s])?)_\b"
    r"|\[(?P<label>[^\[\]\n]+)\]\((?P<href>https?://[^\s()<>\"']+)\)"
    r"|(?P<bare>https?://[^\s<>\"'`]+)",
    re.IGNORECASE | re.DOTALL,
)
_TAGS = {"bold": "strong", "under": "u", "strike": "s", "em": "em", "em2": "em"}


@dataclass
class Rendered:
    html: Markup
    problems: list[str] = field(default_factory=list)


def _link(href: str, label: Markup) -> Markup:
    return Markup('<a href="{}" rel="noopener noreferrer nofollow" target="_blank">{}</a>').format(
        href, label
    )


def markdown(text: str, depth: int = 0, *, links: bool = True) -> Markup:
    """Discord's basic markdown as HTML; anything else shown as text. `links=False` for a
    title, which is itself a link when the embed has a url."""
    if depth >= _MARKDOWN_DEPTH:
        return escape(text)
    out: list[str] = []
    at = 0
    for match in _TOKEN.finditer(text):
        out.append(escape(text[at : match.start()]))
        at = match.end()
        kind = match.lastgroup
        if kind == "escaped":
            out.append(escape(match["escaped"]))
        elif kind == "code":
            out.append(Markup("<code>{}</code>").format(match["code"]))
        elif kind in _TAGS:
            tag = _TAGS[kind]
            inner = markdown(match[kind], depth + 1, links=links)
            out.append(Markup(f"<{tag}>{inner}</{tag}>"))
        elif not links:
            out.append(escape(match[0]))
        elif kind == "href":
            out.append(_link(match["href"], markdown(match["label"], depth + 1, links=False)))
        elif kind == "bare":
            out.append(_link(match["bare"], escape(match["bare"])))
    out.append(escape(text[at:]))
    return Markup("".join(out).replace("\n", "<br>"))


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class _Reader:
    """Reads one payload, noting each part it had to leave out or cut."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.embed_chars = 0

    def text(self, value: Any, limit: int, where: str, *, count: bool = False) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.problems.append(f"{where}: not a string, left out")
            return ""
        stripped = value.strip()
        if len(stripped) > limit:
            self.problems.append(f"{where}: {len(stripped):,} characters, over {limit:,}; cut")
        shown = _cut(value, limit)
        if count:
            room = MESSAGE_EMBED_CHARS - self.embed_chars
            if len(shown) > room:
                self.problems.append(
                    f"{where}: over the message's {MESSAGE_EMBED_CHARS:,} embed characters; cut"
                )
                shown = _cut(shown, room) if room > 0 else ""
            self.embed_chars += len(shown)
        return shown

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problems.append(f"{where}: not an object, left out")
            return {}
        return value

    def url(self, value: Any, where: str) -> str | None:
        if value is None:
            return None
        if isinstance(value, str) and _URL.fullmatch(value.strip()):
            return value.strip()
        self.problems.append(f"{where}: not an http(s) URL, left out")
        return None


def _color(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFFFF:
        return f"#{value:06x}"
    return NO_COLOR


def _timestamp(value: Any) -> Markup:
    if not isinstance(value, str):
        return Markup("")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return Markup("")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return Markup("")
    return Markup('<time datetime="{}">{}</time>').format(
        utc.isoformat(), utc.strftime("%Y-%m-%d %H:%M UTC")
    )


def _fields(reader: _Reader, value: Any, where: str) -> Markup:
    if value is None:
        return Markup("")
    if not isinstance(value, list):
        reader.problems.append(f"{where}: not a list, left out")
        return Markup("")
    if len(value) > FIELDS_MAX:
        reader.problems.append(
            f"{where}: {len(value)} fields, over {FIELDS_MAX}; the rest left out"
        )
    rows: list[list[Markup]] = []
    row_inline = False
    for index, item in enumerate(value[:FIELDS_MAX]):
        spot = f"{where}[{index}]"
        if not isinstance(item, dict):
            reader.problems.append(f"{spot}: not an object, left out")
            continue
        name = reader.text(item.get("name"), FIELD_NAME_MAX, f"{spot}.name", count=True)
        text = reader.text(item.get("value"), FIELD_VALUE_MAX, f"{spot}.value", count=True)
        if not name and not text:
            reader.problems.append(f"{spot}: no name and no value, left out")
            continue
        inline = item.get("inline") is True
        cell = Markup(
            '<div class="dc-field{}"><div class="dc-field-name">{}</div>'
            '<div class="dc-field-value">{}</div></div>'
        ).format(" dc-inline" if inline else "", markdown(name), markdown(text))
        # Inline fields share a row, up to three; a field that is not inline takes a row.
        if inline and row_inline and rows and len(rows[-1]) < INLINE_PER_ROW:
            rows[-1].append(cell)
        else:
            rows.append([cell])
        row_inline = inline
    return Markup("").join(
        Markup('<div class="dc-field-row">{}</div>').format(Markup("").join(r)) for r in rows
    )


def _embed(reader: _Reader, embed: dict[str, Any], where: str) -> Markup:
    parts: list[Markup] = []
    author = reader.obj(embed.get("author"), f"{where}.author")
    author_name = reader.text(author.get("name"), AUTHOR_MAX, f"{where}.author.name", count=True)
    if author_name:
        icon = reader.url(author.get("icon_url"), f"{where}.author.icon_url")
        link = reader.url(author.get("url"), f"{where}.author.url")
        name = _link(link, escape(author_name)) if link else escape(author_name)
        img = (
            Markup('<img class="dc-author-icon" src="{}" alt="" width="24" height="24">').format(
                icon
            )
            if icon
            else Markup("")
        )
        parts.append(Markup('<div class="dc-author">{}{}</div>').format(img, name))
    title = reader.text(embed.get("title"), TITLE_MAX, f"{where}.title", count=True)
    url = reader.url(embed.get("url"), f"{where}.url")
    if title:
        shown = _link(url, markdown(title, links=False)) if url else markdown(title, links=False)
        parts.append(Markup('<div class="dc-title">{}</div>').format(shown))
    description = reader.text(
        embed.get("description"), DESCRIPTION_MAX, f"{where}.description", count=True
    )
    if description:
        parts.append(Markup('<div class="dc-description">{}</div>').format(markdown(description)))
    parts.append(_fields(reader, embed.get("fields"), f"{where}.fields"))
    image = reader.url(
        reader.obj(embed.get("image"), f"{where}.image").get("url"), f"{where}.image"
    )
    if image:
        parts.append(Markup('<img class="dc-image" src="{}" alt="" loading="lazy">').format(image))
    footer = reader.obj(embed.get("footer"), f"{where}.footer")
    footer_text = reader.text(footer.get("text"), FOOTER_MAX, f"{where}.footer.text", count=True)
    moment = _timestamp(embed.get("timestamp"))
    if footer_text or moment:
        icon = (
            reader.url(footer.get("icon_url"), f"{where}.footer.icon_url") if footer_text else None
        )
        bits = [
            Markup('<img class="dc-footer-icon" src="{}" alt="" width="20" height="20">').format(
                icon
            )
            if icon
            else Markup(""),
            escape(footer_text),
            Markup(" • ") if footer_text and moment else Markup(""),
            moment,
        ]
        parts.append(Markup('<div class="dc-footer">{}</div>').format(Markup("").join(bits)))
    thumb = reader.url(
        reader.obj(embed.get("thumbnail"), f"{where}.thumbnail").get("url"), f"{where}.thumbnail"
    )
    aside = (
        Markup('<img class="dc-thumbnail" src="{}" alt="" width="80" height="80">').format(thumb)
        if thumb
        else Markup("")
    )
    bar = Markup(
        '<svg class="dc-embed-bar" width="4" height="100%" aria-hidden="true" focusable="false">'
        '<rect width="4" height="100%" fill="{}"/></svg>'
    ).format(_color(embed.get("color")))
    return Markup(
        '<div class="dc-embed">{}<div class="dc-embed-body"><div class="dc-embed-main">{}</div>'
        "{}</div></div>"
    ).format(bar, Markup("").join(parts), aside)


def render_message(payload: Any, *, default_username: str = "clipwatch") -> Rendered:
    """The message as HTML (safe to put in a page as is) and what had to be left out or cut."""
    reader = _Reader()
    if not isinstance(payload, dict):
        reader.problems.append("the message is not a JSON object")
        payload = {}
    username = reader.text(payload.get("username"), USERNAME_MAX, "username") or default_username
    parts: list[Markup] = [
        Markup(
            '<div class="dc-head"><span class="dc-username">{}</span>'
            '<span class="dc-badge">APP</span></div>'
        ).format(username)
    ]
    content = reader.text(payload.get("content"), CONTENT_MAX, "content")
    if content:
        parts.append(Markup('<div class="dc-content">{}</div>').format(markdown(content)))
    embeds = payload.get("embeds")
    if embeds is not None and not isinstance(embeds, list):
        reader.problems.append("embeds: not a list, left out")
        embeds = []
    embeds = embeds or []
    if len(embeds) > EMBEDS_MAX:
        reader.problems.append(f"embeds: {len(embeds)}, over {EMBEDS_MAX}; the rest left out")
    seen_urls: set[str] = set()
    for index, embed in enumerate(embeds[:EMBEDS_MAX]):
        where = f"embeds[{index}]"
        if not isinstance(embed, dict):
            reader.problems.append(f"{where}: not an object, left out")
            continue
        url = embed.get("url")
        if isinstance(url, str) and url:
            # Discord shows only the first of several embeds with one url.
            if url in seen_urls:
                reader.problems.append(f"{where}: same url as an earlier embed; Discord hides it")
                continue
            seen_urls.add(url)
        parts.append(_embed(reader, embed, where))
    if not content and len(parts) == 1:
        reader.problems.append("nothing to show: no content and no embeds")
    html = Markup('<div class="dc-message">{}</div>').format(Markup("").join(parts))
    return Rendered(html=html, problems=reader.problems)
