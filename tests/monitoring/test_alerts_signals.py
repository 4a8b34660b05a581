"""The signals, read from real rows on both databases and from a metrics registry."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts import service as accounts
from clipwatch.db.engine import session_scope
from clipwatch.db.models import (
    Channel,
    ChannelLive,
    ChannelSync,
    Delivery,
    NotificationRoute,
    WorkerTask,
)
from clipwatch.monitoring.alerts.signals import SignalContext, SignalReader
from tests.monitoring.alerts_helpers import START

Sessions = async_sessionmaker[AsyncSession]


def task(
    worker: str, name: str, beat: timedelta, state: str = "idle", **detail: object
) -> WorkerTask:
    return WorkerTask(
        worker=worker,
        task=name,
        state=state,
        started_at=START - timedelta(hours=1),
        heartbeat_at=START - beat,
        detail=detail,
    )


async def test_signals_from_the_database(sessionmaker: Sessions) -> None:
    async with session_scope(sessionmaker) as session:
        session.add_all(
            [
                task(
                    "a:1",
                    "sync",
                    timedelta(seconds=3),
                    twitch_auth_error="refused (401)",
                    twitch_budget_remaining=3,
                ),
                task("a:1", "deliveries", timedelta(seconds=3)),
                task("b:2", "sync", timedelta(seconds=95)),  # died
                task("c:3", "sync", timedelta(seconds=95), state="stopped"),  # stopped cleanly
                task("d:4", "sync", timedelta(hours=2)),  # gone for long: forgotten
                Channel(
                    id="1",
                    login="late",
                    display_name="Late",
                    tracked=True,
                    added_at=START - timedelta(days=3),
                ),
                Channel(
                    id="2",
                    login="fine",
                    display_name="Fine",
                    tracked=True,
                    added_at=START - timedelta(days=3),
                ),
                Channel(
                    id="3",
                    login="untracked",
                    display_name="U",
                    tracked=False,
                    added_at=START - timedelta(days=3),
                ),
                ChannelSync(
                    channel_id="1",
                    last_success_at=START - timedelta(minutes=20),
                    last_error="Twitch did not answer",
                ),
                ChannelSync(channel_id="2", last_success_at=START - timedelta(minutes=1)),
                # Live: its cadence is the live one (a minute), so 4 minutes is 4 cadences.
                Channel(
                    id="4",
                    login="streaming",
                    display_name="Streaming",
                    tracked=True,
                    added_at=START - timedelta(days=3),
                ),
                ChannelSync(channel_id="4", last_success_at=START - timedelta(minutes=4)),
                ChannelLive(
                    channel_id="4",
                    live=True,
                    source="poll",
                    changed_at=START - timedelta(minutes=30),
                    checked_at=START,
                ),
            ]
        )
        user = await accounts.create_user(session, "owner")
        route = NotificationRoute(
            user_id=user.id,
            name="gone",
            webhook_id="1",
            webhook_token_sealed="x",
            enabled=False,
            disabled_reason="the webhook was deleted",
        )
        paused = NotificationRoute(
            user_id=user.id, name="paused", webhook_id="2", webhook_token_sealed="x", enabled=False
        )
        session.add_all([route, paused])
        await session.flush()
        for n, (status, age) in enumerate(
            [("pending", 700), ("pending", 30), ("dead", 60), ("dead", 7200), ("sent", 900)]
        ):
            at = START - timedelta(seconds=age)
            session.add(
                Delivery(
                    route_id=route.id,
                    clip_id=f"c{n}",
                    status=status,
                    attempts=1,
                    next_attempt_at=at,
                    created_at=at,
                )
            )
    reader = SignalReader(sessionmaker, SignalContext(live_sync_s=60, offline_sync_s=300))
    found = await reader(START)

    stale = {
        (s.labels["worker"], s.labels["task"]): s.value for s in found["worker_task_stale_seconds"]
    }
    assert stale == {("a:1", "sync"): 3, ("a:1", "deliveries"): 3, ("b:2", "sync"): 95}
    [auth] = found["twitch_auth_failing"]
    assert (auth.value, auth.fields["error"]) == (1.0, "refused (401)")
    [budget] = found["twitch_budget_remaining"]
    assert budget.value == 3
    lag = {s.labels["channel"]: s for s in found["channel_sync_lag_cadences"]}
    assert set(lag) == {"late", "fine", "streaming"}
    assert lag["late"].value == 4.0  # 20 minutes of the 5-minute offline cadence
    assert lag["late"].fields == {
        "lag_minutes": 20,
        "live": False,
        "error": "Twitch did not answer",
    }
    assert lag["fine"].value == 0.2
    assert lag["streaming"].value == 4.0  # 4 minutes of the 1-minute live cadence
    assert lag["streaming"].fields["live"] is True
    [outbox] = found["outbox_oldest_pending_seconds"]
    assert (outbox.value, outbox.fields["pending"]) == (700, 2)
    assert [s.value for s in found["dead_letters_last_hour"]] == [1]
    [disabled] = found["route_disabled"]
    assert disabled.labels == {"route": str(route.id)}
    assert disabled.fields["reason"] == "the webhook was deleted"
    assert found["redis_down"] == []  # no Redis configured: nothing to say


async def test_a_clear_database_is_clear(sessionmaker: Sessions) -> None:
    found = await SignalReader(sessionmaker, SignalContext())(START)
    assert [s.value for s in found["twitch_auth_failing"]] == [0]
    assert [s.value for s in found["outbox_oldest_pending_seconds"]] == [0]
    assert found["worker_task_stale_seconds"] == []


async def test_redis_down_is_a_signal(sessionmaker: Sessions) -> None:
    from tests.conftest import free_port

    context = SignalContext(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    found = await SignalReader(sessionmaker, context)(START)
    assert [s.value for s in found["redis_down"]] == [1]


async def test_pool_and_api_errors_come_from_the_registry(sessionmaker: Sessions) -> None:
    registry = CollectorRegistry()
    pool = Gauge("clipwatch_db_pool_connections", "pool", ["state"], registry=registry)
    requests = Counter(
        "clipwatch_http_requests",
        "requests",
        ["method", "route", "status_class"],
        registry=registry,
    )
    pool.labels(state="in_use").set(18)
    pool.labels(state="idle").set(2)
    reader = SignalReader(sessionmaker, SignalContext(pool_capacity=20, registry=registry))
    first = await reader(START)
    assert [s.value for s in first["db_pool_saturation"]] == [0.9]
    assert "api_error_ratio" not in first  # a ratio needs two reads
    requests.labels("GET", "/api/v1/clips", "2xx").inc(90)
    requests.labels("GET", "/api/v1/clips", "5xx").inc(10)
    [ratio] = (await reader(START))["api_error_ratio"]
    assert (ratio.value, ratio.fields["percent"]) == (0.1, 10.0)
    requests.labels("GET", "/api/v1/clips", "5xx").inc(5)  # too few to say anything
    assert [s.value for s in (await reader(START))["api_error_ratio"]] == [0]
    # Without the metrics (another process, or none loaded): the signals are absent.
    bare = await SignalReader(
        sessionmaker, SignalContext(pool_capacity=20, registry=CollectorRegistry())
    )(START)
    assert "db_pool_saturation" not in bare
    assert "api_error_ratio" not in bare
