"""A pasted Discord webhook URL, reduced to the webhook's id and token.

Only the id and token are kept; deliveries go to `{CLIPWATCH_DISCORD_API_URL}/webhooks/{id}/
{token}`, so no route can make clipwatch call anywhere else (no SSRF by construction). The
URL is still checked strictly, so a mistake is a clear 422, and error messages never repeat
the URL (its token is a secret).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from clipwatch.errors import InvalidInput

# discord(app).com/api[/vN]/webhooks/<17-20 digit id>/<token of 60+ characters>
_PATH = re.compile(r"^/api(?:/v\d{1,2})?/webhooks/(\d{17,20})/([A-Za-z0-9._-]{60,100})/?$")


@dataclass(frozen=True)
class WebhookTarget:
    webhook_id: str
    token: str

    def __repr__(self) -> str:  # never print the token
        return f"WebhookTarget(webhook_id={self.webhook_id!r}, token='[redacted]')"


def parse_webhook_url(url: str, allowed_hosts: Iterable[str]) -> WebhookTarget:
    def invalid(why: str) -> InvalidInput:
        return InvalidInput(f"not a Discord webhook URL: {why}", field="webhook_url")

    if len(url) > 300:
        raise invalid("too long")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise invalid("malformed") from None
    if parts.scheme != "https":
        raise invalid("it must start with https://")
    if parts.username or parts.password:
        raise invalid("it must not carry a user name or password")
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        kind = "a private address" if address.is_private or address.is_loopback else "an address"
        raise invalid(f"it names {kind}, not a Discord host")
    allowed = {h.strip().lower() for h in allowed_hosts if h.strip()}
    if host not in allowed:
        raise invalid(f"the host must be one of {', '.join(sorted(allowed))}")
    if port not in (None, 443):
        raise invalid("it must not name a port")
    match = _PATH.match(parts.path)
    if match is None:
        raise invalid("the path must be /api/webhooks/<id>/<token>")
    return WebhookTarget(match.group(1), match.group(2))
