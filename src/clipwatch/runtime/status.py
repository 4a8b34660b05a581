"""What the workers of every process last reported, as `/api/v1/status` and `clipwatch
status` show it (both read `worker_task`, so a worker in another process is seen too)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.models import WorkerTask
from clipwatch.db.repositories import error_groups, workers
from clipwatch.runtime.supervisor import ALIVE_S, TaskState, now

# Workers that stopped reporting are still shown for this long (then only in the database).
SHOWN_FOR = timedelta(hours=1)
# What status shows of a task: what the worker reported but its heartbeat (shown per worker).
TASK_FIELDS = ("task", *(name for name in workers.REPORTED if name != "heartbeat_at"))


@dataclass
class WorkerReport:
    worker: str
    alive: bool
    heartbeat_at: datetime
    tasks: list[dict[str, Any]]


def task_fields(task: WorkerTask | TaskState) -> dict[str, Any]:
    values = {name: getattr(task, name, None) for name in TASK_FIELDS}
    values["task"] = getattr(task, "task", None) or getattr(task, "name", "")
    values["detail"] = dict(values["detail"] or {})
    return values


async def worker_reports(session: AsyncSession) -> list[WorkerReport]:
    moment = now()
    by_worker: dict[str, list[WorkerTask]] = {}
    for row in await workers.worker_tasks(session, moment - SHOWN_FOR):
        by_worker.setdefault(row.worker, []).append(row)
    reports = []
    for worker, rows in by_worker.items():
        heartbeat = max(r.heartbeat_at for r in rows)
        stopped = all(r.state == "stopped" for r in rows)
        alive = not stopped and (moment - heartbeat).total_seconds() <= ALIVE_S
        reports.append(WorkerReport(worker, alive, heartbeat, [task_fields(r) for r in rows]))
    return sorted(reports, key=lambda r: (not r.alive, r.worker))


SHOWN_CHANNELS = 10


def sync_problems(summary: dict[str, Any]) -> list[str]:
    """Failing channels (the first few by name) and quarantined clips."""
    problems = []
    failing = summary.get("failing_channels") or []
    for channel in failing[:SHOWN_CHANNELS]:
        name = channel.get("login") or channel.get("channel_id")
        retry = channel.get("next_try_at")
        problems.append(
            f"channel {name}: sync failing ({channel.get('consecutive_failures')} in a row"
            + (f", next try {retry:%H:%M:%S} UTC" if retry else "")
            + f"): {channel.get('last_error')}"
        )
    more = int(summary.get("failing") or 0) - len(failing[:SHOWN_CHANNELS])
    if more > 0:
        problems.append(f"{more} more channels failing (clipwatch channels list)")
    quarantined = int(summary.get("quarantined") or 0)
    if quarantined:
        problems.append(
            f"{quarantined} clips from Twitch could not be stored (clipwatch sync --quarantine)"
        )
    return problems


ROUTE_ERRORS_SHOWN_FOR = timedelta(days=1)


def route_problems(routes: list[dict[str, Any]]) -> list[str]:
    """Routes disabled because their webhook is gone, and routes whose template failed on a
    clip in the last day (that clip went out as a card)."""
    problems = []
    for route in routes[:SHOWN_CHANNELS]:
        label = f"route {route['id']} ({route['name']})"
        if not route["enabled"] and route["disabled_reason"]:
            problems.append(f"{label} disabled: {route['disabled_reason']}")
        elif route["last_error"]:
            at = route["last_error_at"]
            problems.append(
                f"{label}: {route['last_error']}" + (f" (last at {at:%H:%M:%S} UTC)" if at else "")
            )
    if len(routes) > SHOWN_CHANNELS:
        problems.append(
            f"{len(routes) - SHOWN_CHANNELS} more routes with problems (clipwatch routes list)"
        )
    return problems


def worker_problems(reports: list[WorkerReport]) -> list[str]:
    """One line per thing an operator should look at."""
    problems = []
    for report in reports:
        if not report.alive and any(t["state"] != "stopped" for t in report.tasks):
            problems.append(
                f"worker {report.worker} stopped reporting at {report.heartbeat_at:%H:%M:%S} UTC"
            )
            continue
        if not report.alive:
            continue
        for task in report.tasks:
            detail = task.get("detail") or {}
            paused = detail.get("discord_paused")
            if paused:
                problems.append(f"worker {report.worker}: {paused}")
            # Sends Discord took whose record outwaited the database (discord/delivery.py).
            lost = detail.get("records_lost")
            if lost:
                problems.append(
                    f"worker {report.worker}: {lost} sent deliveries could not be recorded "
                    "(the database was away too long): they may be posted again"
                )
            # The EventSub holder's token failed (runtime/eventsub_task.py): polling only.
            eventsub = detail.get("eventsub_problem")
            if eventsub:
                problems.append(f"worker {report.worker}: {eventsub}")
            if task["state"] in ("failing", "restarting"):
                since = task["last_error_at"]
                problems.append(
                    f"worker {report.worker}: {task['task']} failing "
                    f"({task['consecutive_failures']} in a row"
                    + (f", last at {since:%H:%M:%S} UTC" if since else "")
                    + f"): {task['last_error']}"
                )
    return problems


def eventsub_line(reports: list[WorkerReport]) -> str:
    """One line on the EventSub socket, from the holder's `eventsub` task detail."""
    for report in reports:
        if not report.alive:
            continue
        for task in report.tasks:
            detail = task.get("detail") or {}
            if task["task"] != "eventsub" or detail.get("eventsub") == "standby":
                continue
            role = detail.get("eventsub")
            if role != "holder":
                return f"eventsub: {role or 'starting'} ({report.worker})"
            cost = f"{detail.get('total_cost')}/{detail.get('max_total_cost')}"
            return (
                f"eventsub: {detail.get('socket')} on {report.worker}, session "
                f"{detail.get('session_id') or '-'}, {detail.get('subscriptions', 0)} "
                f"subscriptions (cost {cost}), {detail.get('covered_channels', 0)} channels by "
                f"EventSub, {detail.get('over_budget_channels', 0)} left to polling, last "
                f"message {detail.get('last_message_at') or 'never'}"
            )
    return "eventsub: no worker holds the socket"


ERRORS_SHOWN_FOR = timedelta(days=1)


async def error_problems(session: AsyncSession) -> list[str]:
    """Unhandled errors (error tracking) seen in the last day: how many kinds, and the
    newest's type and place (no message: status is for every caller; /api/v1/errors has it)."""
    kinds = await error_groups.count_error_groups(session, now() - ERRORS_SHOWN_FOR)
    if not kinds:
        return []
    [newest] = await error_groups.list_error_groups(session, 1)
    return [
        f"{kinds} {'kind' if kinds == 1 else 'kinds'} of unexpected error in the last 24 h "
        f"(GET /api/v1/errors); newest: {newest.error_type} at {newest.place}, "
        f"{newest.count} in all, last at {newest.last_seen_at:%H:%M:%S} UTC"
    ]


async def incident_problems(session: AsyncSession) -> list[str]:
    """Unresolved incidents of the alert rules, the most severe first."""
    from clipwatch.monitoring.alerts.service import open_incident_problems

    return await open_incident_problems(session)
