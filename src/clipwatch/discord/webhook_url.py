"""A pasted Discord webhook URL, reduced to the webhook's id and token.

Only the id and token are kept; deliveries go to `{CLIPWATCH_DISCORD_API_URL}/webhooks/{id}/
{token}`, so no route can make clipwatch call anywhere else (no SSRF by construction). The
URL is still checked strictly, so a mistake is a clear 422, and error messages never repeat
the URL (its token is a secret).

A `?thread_id=<snowflake>` query (Discord's "copy link" of a thread's webhook, or a URL
written by hand) is kept: the route posts into that thread. Any other query is refused
(a silently dropped parameter is how the thread got lost before), except `wait`, which
is ours to set (every post waits for the message) and so harmless to drop.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from clipwatch.errors import InvalidInput

MAX_URL_LENGTH = 300
# discord(app).com/api[/vN]/webhooks/<17-20 digit id>/<token of 60-100 characters>
_PATH_PATTERN = r"/api(?:/v[0-9]{1,2})?/webhooks/([0-9]{17,20})/([A-Za-z0-9._-]{60,100})/?"
_PATH = re.compile(f"^{_PATH_PATTERN}$")
_SNOWFLAKE = re.compile(r"^[0-9]{17,20}$")
_WAIT = ("true", "false", "1", "0", "True", "False")
# The same for the OpenAPI document, with the default CLIPWATCH_WEBHOOK_ALLOWED_HOSTS (the
# server's setting has the last word).
WEBHOOK_URL_PATTERN = (
    r"^https://(discord\.com|discordapp\.com|ptb\.discord\.com|canary\.discord\.com)"
    r"/api(/v[0-9]{1,2})?/webhooks/[0-9]{17,20}/[A-Za-z0-9._-]{60,100}/?"
    r"(\?((thread_id=[0-9]{17,20}|wait=(true|false|1|0|True|False))(&|$))+)?$"
)
EXAMPLE_WEBHOOK_URL = (
    "https://discord.com/api/webhooks/1234567890123456789/"
    "Xk3vQ9bZ7mN2pL5tR8wY1cF4hJ6gD0sA-eU_iO3nB7qK2xV9zM5rT8yW1lP4jH6f"
)


@dataclass(frozen=True)
class WebhookTarget:
    webhook_id: str
    token: str

    def __repr__(self) -> str:  # never print the token
        return f"WebhookTarget(webhook_id={self.webhook_id!r}, token='[redacted]')"


@dataclass(frozen=True)
class PastedWebhook:
    target: WebhookTarget
    thread_id: str | None  # from `?thread_id=`: post into this thread of the channel


def parse_webhook_url(url: str, allowed_hosts: Iterable[str]) -> WebhookTarget:
    return parse_pasted_webhook(url, allowed_hosts).target


def parse_pasted_webhook(url: str, allowed_hosts: Iterable[str]) -> PastedWebhook:
    def invalid(why: str) -> InvalidInput:
        return InvalidInput(f"not a Discord webhook URL: {why}", field="webhook_url")

    if len(url) > MAX_URL_LENGTH:
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
    if parts.fragment:
        raise invalid("it must not end with a #fragment")
    thread_id = None
    for item in parts.query.split("&") if parts.query else []:
        if not item:
            continue  # a stray "&" (as browsers leave them) says nothing
        name, _, value = item.partition("=")
        if name == "thread_id" and _SNOWFLAKE.match(value):
            thread_id = value  # named twice: the last, as in any query string
        elif not (name == "wait" and value in _WAIT):
            raise invalid("the only query it may carry is ?thread_id=<17-20 digits>")
    return PastedWebhook(WebhookTarget(match.group(1), match.group(2)), thread_id)
