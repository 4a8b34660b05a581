"""The problems list: one line per thing an operator should look at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clipwatch.runtime.status import WorkerReport, route_problems, sync_problems, worker_problems

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def failing(login: str) -> dict[str, object]:
    return {
        "channel_id": login + "-id",
        "login": login,
        "last_error": "HTTPStatusError: 503",
        "consecutive_failures": 3,
        "next_try_at": NOW + timedelta(minutes=4),
    }


def test_a_healthy_archive_has_no_problems() -> None:
    assert sync_problems({"failing": 0, "failing_channels": [], "quarantined": 0}) == []
    report = WorkerReport("h:1", True, NOW, [{"task": "sync", "state": "idle"}])
    assert worker_problems([report]) == []


def test_failing_channels_are_named_and_the_rest_counted() -> None:
    channels = [failing(f"chan{i}") for i in range(12)]
    problems = sync_problems({"failing": 12, "failing_channels": channels, "quarantined": 2})
    assert problems[0] == (
        "channel chan0: sync failing (3 in a row, next try 12:04:00 UTC): HTTPStatusError: 503"
    )
    assert len([p for p in problems if p.startswith("channel ")]) == 10
    assert "2 more channels failing (clipwatch channels list)" in problems
    assert problems[-1] == "2 clips from Twitch could not be stored (clipwatch sync --quarantine)"


def test_a_silent_worker_is_a_problem_and_a_stopped_one_is_not() -> None:
    running = [{"task": "sync", "state": "idle"}]
    stopped = [{"task": "sync", "state": "stopped"}]
    silent = WorkerReport("h:2", False, NOW, running)
    assert worker_problems([silent]) == ["worker h:2 stopped reporting at 12:00:00 UTC"]
    assert worker_problems([WorkerReport("h:3", False, NOW, stopped)]) == []


def test_a_paused_sender_is_a_problem() -> None:
    detail = {"discord_paused": "Discord's Cloudflare ban: sending paused", "discord_429s": 1}
    report = WorkerReport(
        "h:4", True, NOW, [{"task": "deliveries", "state": "idle", "detail": detail}]
    )
    assert worker_problems([report]) == ["worker h:4: Discord's Cloudflare ban: sending paused"]


def test_deliveries_whose_record_was_lost_are_a_problem() -> None:
    def report(lost: int) -> WorkerReport:
        detail = {"records_delayed": 3, "records_lost": lost}
        return WorkerReport(
            "h:5", True, NOW, [{"task": "deliveries", "state": "idle", "detail": detail}]
        )

    assert worker_problems([report(0)]) == []  # delayed records all landed: no problem
    assert worker_problems([report(2)]) == [
        "worker h:5: 2 sent deliveries could not be recorded (the database was away too "
        "long): they may be posted again"
    ]


def test_routes_with_problems_are_named() -> None:
    gone = {
        "id": 1,
        "name": "clips",
        "enabled": False,
        "disabled_reason": "Discord says Unknown Webhook (code 10015)",
        "last_error": None,
        "last_error_at": None,
    }
    template = {
        "id": 2,
        "name": "fancy",
        "enabled": True,
        "disabled_reason": None,
        "last_error": "template: ZeroDivisionError",
        "last_error_at": NOW,
    }
    assert route_problems([gone, template]) == [
        "route 1 (clips) disabled: Discord says Unknown Webhook (code 10015)",
        "route 2 (fancy): template: ZeroDivisionError (last at 12:00:00 UTC)",
    ]
    many = [dict(template, id=i) for i in range(13)]
    assert route_problems(many)[-1] == "3 more routes with problems (clipwatch routes list)"
