"""`POST /api/v1/alerts/alertmanager`: Alertmanager's webhook (payload version 4), its
alerts made incidents (monitoring/alerts/alertmanager.py; docs/monitoring.md).

Authenticated by `Authorization: Bearer <CLIPWATCH_ALERTMANAGER_TOKEN>` (Alertmanager's
`http_config.authorization`), not by clipwatch's API tokens: this route is outside `caller`.
With the setting empty the endpoint is off and answers 404. A wrong token costs the
caller's address at the strict rate of failed credentials, as everywhere.

The payload is validated strictly (types, label names, sizes, date-times with a zone);
fields Alertmanager may add within version 4 are ignored (`truncatedAlerts` came that way).
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.ratelimit import Decision
from clipwatch.api.auth import client_ip
from clipwatch.api.deps import Session, State
from clipwatch.api.errors import problem_responses
from clipwatch.api.schemas import StrictBody
from clipwatch.errors import NotFound, RateLimited, Unauthenticated
from clipwatch.monitoring.alerts.alertmanager import Applied, ExternalAlert, apply_alerts

log = structlog.get_logger("clipwatch.alerts")

PATH = "/alerts/alertmanager"
MAX_ALERTS = 1000
MAX_LABELS = 64
LABEL_NAME = "^[a-zA-Z_][a-zA-Z0-9_]*$"  # Prometheus's label names
LABEL_NAME_RE = re.compile("[a-zA-Z_][a-zA-Z0-9_]*")
LABEL_NAME_CHARS = 128
LABEL_VALUE_CHARS = 1024
ANNOTATION_CHARS = 8192
NO_NUL = "^[^\\x00]*$"
# Go's zero time.Time: Alertmanager's endsAt of an alert with no end yet.
ZERO_YEAR = 1
RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
LONE_SURROGATE = "the body holds text that is not valid Unicode (a lone surrogate)"
INSTANT_WORDS = "must be a date and time with a time zone, like 2025-01-31T18:00:00Z"

router = APIRouter(tags=["incidents"])
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="alertmanager",
    description="CLIPWATCH_ALERTMANAGER_TOKEN (Alertmanager's http_config.authorization)",
)


def _checked(value: dict[str, str], what: str, value_chars: int) -> dict[str, str]:
    for name, text in value.items():
        if len(name) > LABEL_NAME_CHARS or not _is_label_name(name):
            raise ValueError(
                f"{what} names are letters, digits and _, not starting with a digit "
                f"(at most {LABEL_NAME_CHARS}): {name[:40]!r} is not"
            )
        if len(text) > value_chars:
            raise ValueError(f"{what} {name!r} is longer than {value_chars} characters")
        if "\x00" in text:
            raise ValueError(f"{what} {name!r} holds a NUL character")
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    return _checked(value, "label", LABEL_VALUE_CHARS)


def _annotations(value: dict[str, str]) -> dict[str, str]:
    return _checked(value, "annotation", ANNOTATION_CHARS)


def _map_schema(value_chars: int) -> dict[str, Any]:
    """What _checked takes, said to the OpenAPI document (pydantic alone would not)."""
    return {
        "type": "object",
        "maxProperties": MAX_LABELS,
        "propertyNames": {"pattern": LABEL_NAME, "maxLength": LABEL_NAME_CHARS},
        "additionalProperties": {"type": "string", "maxLength": value_chars, "pattern": NO_NUL},
    }


def _is_label_name(name: str) -> bool:
    return LABEL_NAME_RE.fullmatch(name) is not None


def _instant(value: object) -> datetime:
    """RFC 3339 with a zone, as Alertmanager writes it (nanoseconds cut to microseconds)."""
    match = RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(INSTANT_WORDS)
    date, clock, fraction, zone = match.groups()
    if clock.endswith(":60"):  # a leap second: Python's datetime has none
        clock = clock[:-2] + "59"
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}{(fraction or '')[:7]}{zone}")
    except ValueError:
        raise ValueError(INSTANT_WORDS) from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # the first or last hours of years 1 and 9999
        return moment


Instant = Annotated[
    datetime,
    BeforeValidator(_instant),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Labels = Annotated[
    dict[str, str],
    Field(max_length=MAX_LABELS),
    AfterValidator(_labels),
    WithJsonSchema(_map_schema(LABEL_VALUE_CHARS)),
]
Annotations = Annotated[
    dict[str, str],
    Field(max_length=MAX_LABELS),
    AfterValidator(_annotations),
    WithJsonSchema(_map_schema(ANNOTATION_CHARS)),
]
Status = Literal["firing", "resolved"]


class _Payload(StrictBody):
    # Strict types (5.0 is the integer 5, as JSON Schema says); unknown fields ignored
    # rather than refused (Alertmanager adds fields within version 4).
    model_config = ConfigDict(strict=True, extra="ignore")


class AlertmanagerAlert(_Payload):
    status: Status
    labels: Labels = Field(description="the alert's identity: its incident's fingerprint")
    annotations: Annotations = Field(description="`summary` (else `description`) is shown")
    startsAt: Instant
    endsAt: Instant = Field(description="0001-01-01T00:00:00Z while the alert has no end")
    generatorURL: str = Field(default="", max_length=2048)
    fingerprint: str = Field(default="", max_length=64)


class AlertmanagerWebhook(_Payload):
    """Alertmanager's webhook payload, version 4
    (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""

    version: Literal["4"]
    groupKey: str = Field(max_length=4096)
    truncatedAlerts: int = Field(default=0, ge=0, le=2**31)
    status: Status
    receiver: str = Field(max_length=256)
    groupLabels: Labels
    commonLabels: Labels
    commonAnnotations: Annotations
    externalURL: str = Field(max_length=2048)
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=MAX_ALERTS)

    @model_validator(mode="before")
    @classmethod
    def _unicode(cls, data: Any) -> Any:
        """JSON's escapes can spell a lone surrogate, which no database stores."""
        try:
            orjson.dumps(data)
        except TypeError as exc:  # also for what the fields' own checks refuse: too deep, ...
            if "surrogates" in str(exc):
                raise ValueError(LONE_SURROGATE) from None
        return data

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": "4",
                    "groupKey": '{}:{alertname="outbox_stuck"}',
                    "truncatedAlerts": 0,
                    "status": "firing",
                    "receiver": "clipwatch",
                    "groupLabels": {"alertname": "outbox_stuck"},
                    "commonLabels": {"alertname": "outbox_stuck", "severity": "critical"},
                    "commonAnnotations": {},
                    "externalURL": "http://alertmanager.example:9093",
                    "alerts": [
                        {
                            "status": "firing",
                            "labels": {"alertname": "outbox_stuck", "severity": "critical"},
                            "annotations": {"summary": "the oldest pending message waits"},
                            "startsAt": "2026-11-26T17:00:00.123456789Z",
                            "endsAt": "0001-01-01T00:00:00Z",
                            "generatorURL": "http://prometheus.example:9090/graph",
                            "fingerprint": "6b7c8a9d0e1f2a3b",
                        }
                    ],
                }
            ]
        }
    )


class AlertmanagerReceipt(BaseModel):
    opened: list[int] = Field(description="incidents opened by this post")
    updated: list[int] = Field(description="open incidents seen firing again")
    resolved: list[int] = Field(description="incidents resolved by this post")
    ignored: int = Field(description="resolved alerts with no open incident")


def _limited(decision: Decision) -> None:
    if not decision.allowed:
        raise RateLimited(
            f"too many requests; try again in {decision.reset_after} s",
            retry_after=max(decision.reset_after, 1),
            headers=decision.headers(),
        )


async def alertmanager_caller(
    request: Request,
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    settings = state.settings
    token = settings.alertmanager_token
    if not token:
        raise NotFound("the Alertmanager receiver is off (CLIPWATCH_ALERTMANAGER_TOKEN is not set)")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        limiter = state.limiter
        _limited(await limiter.hit(settings.rate_limit_auth, "auth", client_ip(request)))
        raise Unauthenticated("this needs Authorization: Bearer <CLIPWATCH_ALERTMANAGER_TOKEN>")
    decision = await state.limiter.hit(settings.rate_limit_token, "alertmanager", "receiver")
    request.state.rate_limit = decision
    _limited(decision)


def external_alerts(payload: AlertmanagerWebhook) -> list[ExternalAlert]:
    return [
        ExternalAlert(
            status=a.status,
            labels=a.labels,
            annotations=a.annotations,
            starts_at=a.startsAt,
            ends_at=None if a.endsAt.year <= ZERO_YEAR else a.endsAt,
        )
        for a in payload.alerts
    ]


async def _apply(session: AsyncSession, alerts: list[ExternalAlert], now: datetime) -> Applied:
    """A concurrent post (another Alertmanager of a pair, a retry) may open the same
    incident first: the unique index refuses ours once theirs commits, and the post is
    applied again, over theirs, inside a savepoint. SQLite too: its writers take turns, but
    two posts can both read "no incident" before either writes (a CI run under load)."""
    try:
        async with session.begin_nested():
            return await apply_alerts(session, alerts, now)
    except IntegrityError:
        async with session.begin_nested():
            return await apply_alerts(session, alerts, now)


@router.post(
    PATH,
    response_model=AlertmanagerReceipt,
    summary="Alertmanager's webhook: its alerts become incidents",
    responses=problem_responses(
        {
            401: "Missing or wrong Authorization: Bearer <CLIPWATCH_ALERTMANAGER_TOKEN>",
            404: "The receiver is off: CLIPWATCH_ALERTMANAGER_TOKEN is not set",
            422: "Not an Alertmanager webhook payload of version 4",
            429: "Rate limited: see Retry-After and RateLimit-* headers",
        }
    ),
    dependencies=[Depends(alertmanager_caller)],
)
async def receive_alertmanager(
    payload: AlertmanagerWebhook, session: Session
) -> AlertmanagerReceipt:
    """A firing alert opens its incident (fingerprint of its labels), or counts it seen
    again; a resolved alert resolves it. Point an Alertmanager `webhook_configs` entry here
    with `send_resolved: true` (docs/monitoring.md)."""
    applied = await _apply(session, external_alerts(payload), datetime.now(UTC))
    if payload.truncatedAlerts:
        log.warning(
            "alertmanager_alerts_truncated",
            truncated=payload.truncatedAlerts,
            group=payload.groupKey[:200],
        )
    if applied.opened or applied.resolved:
        log.info(
            "alertmanager_incidents",
            opened=len(applied.opened),
            resolved=len(applied.resolved),
            ids=(applied.opened + applied.resolved)[:20],
        )
    return AlertmanagerReceipt(
        opened=applied.opened,
        updated=applied.updated,
        resolved=applied.resolved,
        ignored=applied.ignored,
    )
