"""The Jinja2 environment and the small formatting helpers the templates use."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

STATIC_DIR = Path(str(files("clipwatch.web") / "static"))
PAGE_SIZE = 24


def views(count: int | None) -> str:
    """1234 -> '1.2K', 2500000 -> '2.5M' (the card's short form; the clip page shows it all)."""
    if count is None or count < 0:
        return "0"
    for size, unit in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if count >= size:
            shown = f"{count / size:.1f}".removesuffix(".0")
            return f"{shown}{unit}"
    return str(count)


def duration(seconds: float | None) -> str:
    """29.9 -> '0:30'; 75 -> '1:15'. Whatever Twitch sent (NaN, infinite, negative) is shown,
    never raised: unknown lengths read '0:00'."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "0:00"
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit: '3 days ago', 'just now'."""
    if moment is None:
        return "unknown"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    for size, unit in (
        (365 * 86400, "year"),
        (30 * 86400, "month"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"  # pragma: no cover - the loop always returns


def embed_url(clip_id: str, base_url: str) -> str:
    """Twitch's player for one clip; `parent` must be the host the page is served from."""
    host = urlsplit(base_url).hostname or "localhost"
    return "https://clips.twitch.tv/embed?" + urlencode({"clip": clip_id, "parent": host})


def search_url(**params: Any) -> str:
    """A search page link with these filters (None and empty values left out)."""
    pairs = [(k, str(v)) for k, v in params.items() if v not in (None, "")]
    return "/?" + urlencode(pairs) if pairs else "/"


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("clipwatch.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(views=views, duration=duration, age=age)
    env.globals.update(embed_url=embed_url, search_url=search_url)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
