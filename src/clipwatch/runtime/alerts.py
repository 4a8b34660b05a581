"""The alert evaluator as a worker task: every process's worker runs one; the one that
holds the `alert_evaluator` lease evaluates (monitoring/alerts/evaluator.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.monitoring.alerts.evaluator import EvaluationReport, Evaluator, evaluate_forever
from clipwatch.monitoring.alerts.rules import AlertConfig
from clipwatch.monitoring.alerts.setup import config_from_settings
from clipwatch.monitoring.alerts.signals import SignalContext, SignalReader
from clipwatch.runtime.supervisor import TaskState

log = structlog.get_logger("clipwatch.alerts")


def evaluator_from_settings(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    owner: str,
    config: AlertConfig | None = None,
) -> Evaluator:
    context = SignalContext(
        live_sync_s=float(settings.live_sync_seconds),
        offline_sync_s=float(settings.offline_sync_seconds),
        redis_url=settings.redis_url,
        pool_capacity=settings.db_pool_size + settings.db_max_overflow
        if settings.is_postgres
        else None,
    )
    return Evaluator(
        sessionmaker,
        config or config_from_settings(settings),
        SignalReader(sessionmaker, context),
        owner=owner,
        key=settings.signing_key,
        lease=timedelta(seconds=settings.alert_lease_seconds),
    )


async def alerts_forever(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    stop: asyncio.Event,
    state: TaskState,
    *,
    owner: str,
) -> None:
    """Evaluate the alert rules until `stop` (while this process holds the lease)."""
    evaluator = evaluator_from_settings(settings, sessionmaker, owner)

    def on_pass(outcome: EvaluationReport | BaseException) -> None:
        if isinstance(outcome, BaseException):
            if state.failed(outcome):
                log.warning("alert_evaluation_failed", error=state.last_error)
            return
        detail: dict[str, object] = {"leader": outcome.leader}
        if outcome.leader:
            detail["open_incidents"] = sum(outcome.open_counts.values())
        recovered = state.succeeded(**detail)
        if recovered:
            log.info("alert_evaluation_recovered")

    state.working()
    await evaluate_forever(
        evaluator, stop, interval=settings.alert_evaluation_seconds, on_pass=on_pass
    )
