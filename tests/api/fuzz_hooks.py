"""Schemathesis hooks for test_fuzz: where the OpenAPI document cannot say what is valid.

Loaded by the schemathesis CLI (SCHEMATHESIS_HOOKS), not collected by pytest. The built-in
`positive_data_acceptance` is run through `positive_data_acceptance_where_knowable`, which
skips only the requests whose validity no JSON schema can express; everything else gets
the built-in check unchanged.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from typing import Any

import schemathesis
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

# A range filter whose lower end is past its upper end is refused (422): a schema describes
# each parameter alone and cannot relate two of them.
RANGES = (
    ("created_after", "created_before"),
    ("min_views", "max_views"),
    ("min_duration", "max_duration"),
)


def _instant(value: Any) -> datetime | None:
    try:
        instant = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)  # the server's reading


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _contradicts(query: dict[str, Any]) -> bool:
    for low_name, high_name in RANGES:
        if low_name not in query or high_name not in query:
            continue
        read = _instant if low_name.startswith("created") else _number
        low, high = read(query[low_name]), read(query[high_name])
        if low is None or high is None:
            continue
        if low > high:  # type: ignore[operator]
            return True
    return False


def validity_unknowable(case: schemathesis.Case) -> str | None:
    """Why a schema-valid request may rightly be refused, or None when it must be taken."""
    query = case.query or {}
    if "cursor" in query:
        # A cursor is signed by the server and bound to its query: a made-up one fits the
        # schema and is answered 400 "invalid or expired cursor".
        return "made-up cursor"
    collection_id = (case.path_parameters or {}).get("collection_id")
    if collection_id is not None and not str(collection_id).isdigit():
        # The stateful phase fills {collection_id} from another listing's string ids (a
        # clip's) by a link it infers: not a valid id, rightly 422 (docs/collections.md).
        return "another resource's id in a collection path"
    if case.operation.path == "/auth/callback":
        # `state` must equal the cookie /auth/login set in this browser; no schema can say so.
        return "login state"
    if _contradicts(query):
        return "contradicting range"
    body = case.body if isinstance(case.body, dict) else {}
    template = body.get("template")
    if isinstance(template, dict) and template.get("custom"):
        # A custom template must compile as Jinja and render within Discord's limits,
        # checked when it is saved (422).
        return "custom template"
    if case.operation.path.startswith("/api/v1/routes"):
        return _route_options_unknowable(case.method.upper(), body)
    return None


# Issue 15's route options that are checked together (discord/routes.check_options), or
# against the route as stored (a PATCH), which no schema of one body can say.
def _route_options_unknowable(method: str, body: dict[str, Any]) -> str | None:
    name = body.get("thread_name")
    if isinstance(name, str) and "{" in name:
        return "forum thread name template"  # compiled like a custom template when saved
    if method == "PATCH":
        # Each of these is checked with what the route holds (its forum mode, its thread
        # name, its kind, its @here allowance), which the request does not show.
        risky = (
            body.get("forum_mode") is not None
            or body.get("thread_id") is not None
            or body.get("ping_here") is True
            or "kind" in body
            or "digest" in body
            or ("thread_name" in body and body["thread_name"] is None)
        )
        return "route options checked with the stored route" if risky else None
    if body.get("forum_mode") and body.get("thread_id"):
        return "thread and forum at once"
    if (body.get("kind") == "digest") != (body.get("digest") is not None):
        return "digest kind without a schedule, or a schedule on a clips route"
    if body.get("ping_here") and not body.get("here_allowed"):
        return "@here without an admin's allowance"
    if body.get("forum_mode") and not body.get("thread_name"):
        return "forum mode without a thread name"
    return None


_tally_lock = threading.Lock()


def _tally(outcome: str) -> None:
    """One line per case into $CLIPWATCH_FUZZ_TALLY: the test sees that the check ran."""
    path = os.environ.get("CLIPWATCH_FUZZ_TALLY")
    if path:
        with _tally_lock, open(path, "a") as tally:
            tally.write(outcome + "\n")


@schemathesis.check
def positive_data_acceptance_where_knowable(
    ctx: CheckContext, response: Response, case: schemathesis.Case
) -> bool | None:
    reason = validity_unknowable(case)
    _tally(f"skipped: {reason}" if reason else "checked")
    if reason is not None:
        return None
    if twitch_refused_the_token(case, response):
        return None
    return positive_data_acceptance(ctx, response, case)


def twitch_refused_the_token(case: schemathesis.Case, response: Response) -> bool:
    """A well-formed token is valid only if Twitch's /oauth2/validate says so: the one
    refusal taken from POST /api/v1/eventsub/connect is that verdict, said in its words."""
    return (
        case.operation.path == "/api/v1/eventsub/connect"
        and response.status_code == 422
        and b"Twitch refused the token" in response.content
    )
