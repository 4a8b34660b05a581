"""A route's identity (Discord's per-message `username` and `avatar_url` overrides), checked
when the route is saved so a refused name is a 422 on its field, not a dead delivery.

Discord refuses webhook names containing "clyde" or "discord" (any case) and over 80
characters (reference §1.2); control characters would only make the name unreadable. The
avatar is fetched by Discord, not by us, but an arbitrary URL would let a route owner make
every reader's client load a tracker: https only, on an allow-listed image host
(`CLIPWATCH_AVATAR_ALLOWED_HOSTS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from clipwatch.errors import InvalidInput

USERNAME_MAX = 80
AVATAR_URL_MAX = 500
_FORBIDDEN_WORDS = ("clyde", "discord")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def check_username(name: str) -> str:
    """The name as it will be sent (trimmed), or InvalidInput on `username`."""
    trimmed = name.strip()
    if not 1 <= len(trimmed) <= USERNAME_MAX:
        raise InvalidInput(f"username: 1 to {USERNAME_MAX} characters", field="username")
    if _CONTROL.search(trimmed):
        raise InvalidInput("username: no control or invisible characters", field="username")
    lowered = trimmed.casefold()
    for word in _FORBIDDEN_WORDS:
        if word in lowered:
            raise InvalidInput(
                f'username: Discord refuses names containing "{word}"', field="username"
            )
    return trimmed


def check_avatar_url(url: str, allowed_hosts: Iterable[str]) -> str:
    """The avatar URL (https, an allowed host, no user info or port), or InvalidInput."""
    allowed = sorted({h.strip().lower() for h in allowed_hosts if h.strip()})

    def invalid(why: str) -> InvalidInput:
        return InvalidInput(f"avatar_url: {why}", field="avatar_url")

    if len(url) > AVATAR_URL_MAX or _CONTROL.search(url) or " " in url:
        raise invalid(f"at most {AVATAR_URL_MAX} characters, no spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise invalid("malformed") from None
    if parts.scheme != "https":
        raise invalid("it must start with https://")
    if parts.username or parts.password or port not in (None, 443):
        raise invalid("it must not carry a user name, password or port")
    host = (parts.hostname or "").lower()
    if host not in allowed:
        raise invalid(f"the image must be on one of {', '.join(allowed) or '(no host allowed)'}")
    if not parts.path or parts.path == "/":
        raise invalid("it must name an image")
    return url
