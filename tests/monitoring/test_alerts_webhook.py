"""The generic JSON webhook receiver: through the outbox, to an allowed host only, retried
on 5xx, sent once."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.models import Delivery
from clipwatch.discord.delivery import deliver_due
from clipwatch.discord.sender import WebhookSender
from clipwatch.monitoring.alerts.rules import RulesError, load_rules
from clipwatch.monitoring.alerts.signals import Sample
from clipwatch.simhttp import LoopbackServer
from tests.monitoring.alerts_helpers import KEY, Clock, ScriptedSignals, evaluator

Sessions = async_sessionmaker[AsyncSession]
RULES = """
grouping: {group_interval: 1m}
rules:
  - name: route_disabled
    signal: route_disabled
    threshold: 0
    summary: "route {route} is disabled: {reason}"
receivers:
  - {name: hook, type: webhook, url_from: ALERT_TEST_HOOK}
"""


class Receiver:
    """An HTTP endpoint that records JSON posts; answers `status` (200 unless changed)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 200

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.status == 200:
            self.posts.append(orjson.loads(body))
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def drain(sessionmaker: Sessions) -> None:
    sender = WebhookSender("http://127.0.0.1:9/api/v10")  # no Discord in this test
    try:
        for _ in range(5):
            if (await deliver_due(sessionmaker, sender, KEY)).messages == 0:
                return
    finally:
        await sender.aclose()


async def test_alerts_reach_a_json_webhook_through_the_outbox(sessionmaker: Sessions) -> None:
    receiver = Receiver()
    server = LoopbackServer(receiver)
    base = await server.start()
    try:
        urls = {"ALERT_TEST_HOOK": f"{base}/alerts?token=s3cret"}
        config = load_rules(text=RULES, lookup=urls.__getitem__, webhook_hosts=["127.0.0.1"])
        signals, clock = ScriptedSignals(), Clock()
        alerts = evaluator(sessionmaker, config, signals, clock)
        signals.set("route_disabled", Sample(1.0, {"route": "7"}, {"reason": "gone"}))
        receiver.status = 503
        [incident_id] = (await alerts.tick()).opened
        async with session_scope(sessionmaker) as session:
            [row] = (await session.scalars(select(Delivery))).all()
            assert (row.kind, row.route_id) == ("alert_webhook", None)
            assert "s3cret" not in orjson.dumps(row.payload).decode()  # sealed
        await drain(sessionmaker)
        assert receiver.posts == []
        async with session_scope(sessionmaker) as session:
            [row] = (await session.scalars(select(Delivery))).all()
            assert (row.status, row.attempts) == ("pending", 1)
            await session.execute(
                Delivery.__table__.update().values(next_attempt_at=row.created_at)
            )
        receiver.status = 200
        await drain(sessionmaker)
        [post] = receiver.posts
        assert (post["status"], post["group"], post["new"]) == (
            "firing",
            "route_disabled",
            [incident_id],
        )
        assert post["incidents"][0]["summary"] == "route 7 is disabled: gone"
        await drain(sessionmaker)
        assert len(receiver.posts) == 1
    finally:
        await server.stop()


def test_a_webhook_on_a_host_not_allowed_stops_start_up() -> None:
    urls = {"ALERT_TEST_HOOK": "http://169.254.169.254/latest"}
    with pytest.raises(RulesError, match=r"host must be one of 127\.0\.0\.1"):
        load_rules(text=RULES, lookup=urls.__getitem__, webhook_hosts=["127.0.0.1"])
