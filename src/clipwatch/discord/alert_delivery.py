"""Alert messages in the outbox: rows of kind `alert` (a Discord webhook) and
`alert_webhook` (a JSON POST to an allowed host), written by the alert evaluator
(monitoring/alerts/notify.py) and sent by the delivery pass beside clip deliveries.

A Discord alert goes through the same sender as clips (one shared view of Discord's rate
limits) and meets the same outcomes: sent, retried on the schedule, dead when rejected or
gone. Each row stands for one message and is sent on its own; its idempotency key (unique)
kept the evaluator from writing it twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import orjson

from clipwatch.accounts.secrets import unseal
from clipwatch.db.models import Delivery
from clipwatch.discord.sender import Gone, Outcome, Rejected, RetryLater, Sent, WebhookSender
from clipwatch.discord.webhook_url import WebhookTarget
from clipwatch.monitoring.logging import describe_error
from clipwatch.outbound import http_client

ALERT_KINDS = ("alert", "alert_webhook")
WEBHOOK_TIMEOUT_S = 10.0

Finish = Callable[[list[Delivery], Outcome], Awaitable[None]]


async def deliver_alerts(
    rows: Sequence[Delivery],
    sender: WebhookSender,
    key: bytes,
    finish: Finish,
    *,
    http: httpx.AsyncClient | None = None,
) -> int:
    """Send each alert row and hand its outcome to `finish`; how many messages were tried."""
    own = None
    tried = 0
    try:
        for row in rows:
            payload: dict[str, Any] = dict(row.payload or {})
            try:
                if row.kind == "alert":
                    target = WebhookTarget(
                        str(payload["webhook_id"]), unseal(key, str(payload["token_sealed"]))
                    )
                    outcome = await sender.send(target, dict(payload["message"]))
                elif row.kind == "alert_webhook":
                    if http is None:
                        http = own = http_client(timeout=WEBHOOK_TIMEOUT_S, follow_redirects=False)
                    url = unseal(key, str(payload["url_sealed"]))
                    outcome = await post_json(http, url, payload["body"])
                else:
                    outcome = Rejected(f"unknown outbox row kind {row.kind!r}")
            except (KeyError, TypeError, ValueError) as exc:
                outcome = Rejected(f"unreadable alert row: {describe_error(exc)}")
            tried += 1
            await finish([row], outcome)
    finally:
        if own is not None:
            await own.aclose()
    return tried


async def post_json(http: httpx.AsyncClient, url: str, body: Any) -> Outcome:
    """One POST; the outcome as the outbox understands it. The URL is never repeated in a
    reason (it may hold a token)."""
    try:
        answer = await http.post(
            url, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
        )
    except httpx.HTTPError as exc:
        return RetryLater(f"the alert webhook did not answer ({type(exc).__name__})")
    status = answer.status_code
    if 200 <= status < 300:
        return Sent(message_id="")
    if status == 429:
        after = _seconds(answer.headers.get("retry-after"))
        return RetryLater("the alert webhook is rate limiting", after, rate_limited=True)
    if status >= 500 or status == 408:
        return RetryLater(f"the alert webhook answered {status}")
    if status in (404, 410):
        return Gone(f"the alert webhook answered {status}")
    return Rejected(f"the alert webhook refused the message ({status})")


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, min(float(value or 1.0), 3600.0))
    except ValueError:
        return 1.0
