"""Issue 15's route options on the route form (/routes/new, /routes/{id}/edit): where it
posts (a thread, a forum), who it pings, the name and avatar it posts under, digests,
trending posts and what happens to a message when its clip is deleted on Twitch.

As the rest of the form: the text as typed, turned into the JSON body the API takes
(`RouteCreate`/`RouteUpdate` read it, so their errors come back under these fields). On an
edit every option is sent: an emptied field clears its option (PATCH null).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from clipwatch.api.route_schemas import RouteRead

KINDS = (("clips", "New clips, as they come"), ("digest", "A digest of the top clips"))
PERIODS = (("day", "Every day"), ("week", "Every week"), ("month", "Every month"))
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FORUM_MODES = (
    ("", "Not a forum"),
    ("post", "A new post for each message"),
    ("day", "One post a day, later clips reply in it"),
    ("stream", "One post a stream, later clips reply in it"),
)
ON_DELETED = (
    ("keep", "Leave the message as it is"),
    ("edit", "Edit it to say the clip was removed"),
    ("delete", "Delete the message"),
)
LABELS = {
    "kind": "What it posts",
    "digest_period": "How often",
    "digest_weekday": "Day of the week",
    "digest_time": "At",
    "digest_time_zone": "Time zone",
    "digest_top": "How many clips",
    "thread_id": "Thread id",
    "forum_mode": "Forum channel",
    "thread_name": "Forum post name",
    "role_ids": "Roles to ping",
    "ping_here": "Ping @here",
    "username": "Post as (name)",
    "avatar_url": "Avatar picture URL",
    "trending_views_per_hour": "Trending: views an hour",
    "on_deleted": "When a clip is deleted on Twitch",
    "milestones": "Update the views at",
}
_SEPARATORS = re.compile(r"[,\s]+")
_WHOLE = re.compile(r"[0-9]{1,13}")


@dataclass(frozen=True)
class OptionsForm:
    kind: str = "clips"
    digest_period: str = "week"
    digest_weekday: str = "0"
    digest_time: str = "18:00"
    digest_time_zone: str = "UTC"
    digest_top: str = "10"
    thread_id: str = ""
    forum_mode: str = ""
    thread_name: str = ""
    role_ids: str = ""
    ping_here: bool = False
    username: str = ""
    avatar_url: str = ""
    trending_views_per_hour: str = ""
    on_deleted: str = "keep"
    milestones: str = ""


def typed_options(fields: dict[str, list[str]]) -> OptionsForm:
    """The options as sent (a field sent twice keeps its last value)."""
    defaults = OptionsForm()
    values: dict[str, Any] = {}
    for name in LABELS:
        if name == "ping_here":
            values[name] = name in fields
        elif fields.get(name):
            values[name] = fields[name][-1].replace("\r\n", "\n")
        else:
            values[name] = getattr(defaults, name)
    return OptionsForm(**values)


def shown_options(route: RouteRead) -> OptionsForm:
    digest = route.digest
    return OptionsForm(
        kind=route.kind,
        digest_period=digest.period if digest else "week",
        digest_weekday=str(digest.weekday) if digest else "0",
        digest_time=digest.time if digest else "18:00",
        digest_time_zone=digest.time_zone if digest else "UTC",
        digest_top=str(digest.top) if digest else "10",
        thread_id=route.thread_id or "",
        forum_mode=route.forum_mode or "",
        thread_name=route.thread_name or "",
        role_ids=", ".join(route.role_ids),
        ping_here=route.ping_here,
        username=route.username or "",
        avatar_url=route.avatar_url or "",
        trending_views_per_hour=(
            str(route.trending_views_per_hour) if route.trending_views_per_hour else ""
        ),
        on_deleted=route.on_deleted,
        milestones=", ".join(str(m) for m in route.milestones),
    )


def _number(text: str) -> Any:
    """A whole number for the body; other text is left as it is, for the model to refuse."""
    text = text.strip()
    return int(text) if _WHOLE.fullmatch(text) else text


def _or_none(text: str) -> str | None:
    return text.strip() or None


def options_body(form: OptionsForm, *, here_allowed: bool) -> dict[str, Any]:
    """The options' part of the API body. `ping_here` is sent only where an admin allowed
    it on the route (the form shows the box only there)."""
    body: dict[str, Any] = {
        "kind": form.kind,
        "thread_id": _or_none(form.thread_id),
        "forum_mode": _or_none(form.forum_mode),
        "thread_name": _or_none(form.thread_name),
        "role_ids": [r for r in _SEPARATORS.split(form.role_ids) if r] or None,
        "username": _or_none(form.username),
        "avatar_url": _or_none(form.avatar_url),
        "trending_views_per_hour": (
            _number(form.trending_views_per_hour) if form.trending_views_per_hour.strip() else None
        ),
        "on_deleted": form.on_deleted,
        "milestones": [_number(m) for m in _SEPARATORS.split(form.milestones) if m] or None,
        "digest": None,
    }
    if form.kind == "digest":
        body["digest"] = {
            "period": form.digest_period,
            "weekday": _number(form.digest_weekday),
            "time": form.digest_time.strip(),
            "time_zone": form.digest_time_zone.strip(),
            "top": _number(form.digest_top),
        }
    if here_allowed:
        body["ping_here"] = form.ping_here
    return body


def option_field(names: list[str]) -> str | None:
    """The form field of a model error's location, when it is one of these options."""
    if names[0] == "digest":
        return f"digest_{names[1]}" if len(names) > 1 else "digest_period"
    return names[0] if names[0] in LABELS else None
