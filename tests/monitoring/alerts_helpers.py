"""Shared pieces of the alert tests: a clock the test moves, and signals it sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.db.engine import session_scope
from clipwatch.db.models import Incident
from clipwatch.monitoring.alerts.evaluator import Evaluator
from clipwatch.monitoring.alerts.rules import AlertConfig, load_rules
from clipwatch.monitoring.alerts.signals import Sample, Signals

KEY = b"alerts-test-key"
START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class ScriptedSignals:
    """Signals as the test sets them; a name not set is unreadable."""

    values: Signals = field(default_factory=dict)

    def set(self, name: str, *samples: Sample) -> None:
        self.values[name] = list(samples)

    async def __call__(self, now: datetime) -> Signals:
        return {k: list(v) for k, v in self.values.items()}


def config(yaml_text: str, **kwargs: Any) -> AlertConfig:
    return load_rules(text=yaml_text, **kwargs)


def evaluator(
    sessionmaker: async_sessionmaker[AsyncSession],
    cfg: AlertConfig,
    signals: ScriptedSignals,
    clock: Clock,
    owner: str = "test:1",
) -> Evaluator:
    return Evaluator(sessionmaker, cfg, signals, owner=owner, key=KEY, clock=clock)


async def all_incidents(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Incident]:
    async with session_scope(sessionmaker) as session:
        return list((await session.scalars(select(Incident).order_by(Incident.id))).all())
