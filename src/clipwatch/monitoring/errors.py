"""Error tracking: every unhandled error (an API request's 500, a worker task that died) is
grouped by fingerprint — its type and its place, the innermost frame in clipwatch's own code
(`clipwatch/clips/search.py:search_clips`) — and counted in `error_group` with first and last
seen, the latest message (redacted, one line, bounded) and the latest trace id (the request
or job id of the log lines). With `CLIPWATCH_SENTRY_DSN` set, each is also sent to Sentry,
scrubbed as the logs are (`Scrubber`): every string of the event and of each breadcrumb.

Recording never raises: a failure to store (the database is down) is logged once while it
lasts and counted (`ErrorTracker.failures`); the caller's answer goes on regardless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import traceback
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from importlib.metadata import version
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog

import clipwatch
from clipwatch.errors import ConfigError
from clipwatch.monitoring import metrics
from clipwatch.monitoring.logging import REDACTED, SECRET_KEYS, describe_error, redact_text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from clipwatch.config import Settings

log = structlog.get_logger("clipwatch.errors")

MESSAGE_CHARS = 500
RECORD_TIMEOUT_S = 5.0  # a database that hangs must not hold a 500 answer for long
PACKAGE_DIR = os.path.dirname(os.path.abspath(clipwatch.__file__)) + os.sep
PACKAGE_PARENT = os.path.dirname(PACKAGE_DIR.rstrip(os.sep)) + os.sep
# Settings values shorter than this are not searched for in Sentry's events (too common).
SECRET_MIN_CHARS = 6
_RECORDED = "_clipwatch_error_recorded"
# Beyond the logs' shapes: cookies in free text (a header echoed in a message, a session
# cookie by name), which a log line only ever carries under a key the logs redact.
COOKIE_PATTERNS = [
    (re.compile(r"(?i)\b((?:set-)?cookie\s*:\s*)[^\r\n]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)\b([\w-]*session[\w-]*=)[^;&\s]+"), r"\1" + REDACTED),
]


# --- fingerprints ---------------------------------------------------------------------------


def error_type_name(error: BaseException) -> str:
    kind = type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def error_place(error: BaseException) -> str:
    """The innermost frame of the traceback in clipwatch's code, as `clipwatch/<file>:<function>`
    (no line number: an edit elsewhere in the file keeps the group); without one, the
    innermost frame of all (`<file name>:<function>`)."""
    ours = last = None
    for frame, _line in traceback.walk_tb(error.__traceback__):
        code = frame.f_code
        last = code
        if code.co_filename.startswith(PACKAGE_DIR):
            ours = code
    if ours is not None:
        path = ours.co_filename.removeprefix(PACKAGE_PARENT).replace(os.sep, "/")
        return f"{path}:{ours.co_qualname}"[:300]
    if last is not None:
        return f"{os.path.basename(last.co_filename)}:{last.co_qualname}"[:300]
    return "unknown"


@dataclass(frozen=True)
class Occurrence:
    fingerprint: str
    error_type: str
    place: str
    message: str
    trace_id: str


def current_trace_id() -> str | None:
    """The request id (or, in the worker, the job id) bound to this context's log lines."""
    bound = structlog.contextvars.get_contextvars()
    for key in ("request_id", "job_id"):
        if bound.get(key):
            return str(bound[key])[:128]
    return None


def describe_occurrence(error: BaseException, trace_id: str | None = None) -> Occurrence:
    error_type = error_type_name(error)[:200]
    place = error_place(error)
    return Occurrence(
        fingerprint=sha256(f"{error_type}\n{place}".encode()).hexdigest()[:32],
        error_type=error_type,
        place=place,
        message=describe_error(error, MESSAGE_CHARS),
        trace_id=(trace_id or current_trace_id() or uuid.uuid4().hex)[:128],
    )


# --- recording --------------------------------------------------------------------------------


@dataclass
class ErrorTracker:
    """Records one process's unhandled errors (`source`: `api`, or `worker`) in its database,
    and sends them to Sentry when that is on."""

    sessionmaker: async_sessionmaker[AsyncSession]
    source: str
    failures: int = 0  # recordings that could not be stored
    recorded: int = 0
    _failing: bool = field(default=False, repr=False)

    async def record(
        self, error: BaseException, *, trace_id: str | None = None, where: str | None = None
    ) -> Occurrence | None:
        """Never raises (but for cancellation). Each exception is recorded once, however
        many handlers see it. `where` narrows the source (`worker:sync`)."""
        try:
            if getattr(error, _RECORDED, False):
                return None
            setattr(error, _RECORDED, True)
        except Exception:  # an exception type that takes no attributes: recorded anyway
            pass
        source = f"{self.source}:{where}" if where else self.source
        metrics.UNHANDLED_ERRORS.labels(source[:64]).inc()
        try:
            occurrence = describe_occurrence(error, trace_id)
        except Exception as exc:
            self._failed(exc)
            return None
        send_to_sentry(error, occurrence, source)
        try:
            async with asyncio.timeout(RECORD_TIMEOUT_S):
                await self._store(occurrence, source)
        except Exception as exc:
            self._failed(exc)
            return occurrence
        self.recorded += 1
        if self._failing:
            log.info("error_tracking_recovered", failures=self.failures)
            self._failing = False
        return occurrence

    async def _store(self, occurrence: Occurrence, source: str) -> None:
        from clipwatch.db.engine import session_scope
        from clipwatch.db.repositories import error_groups

        async with session_scope(self.sessionmaker) as session:
            await error_groups.record_error(
                session,
                fingerprint=occurrence.fingerprint,
                error_type=occurrence.error_type,
                place=occurrence.place,
                source=source[:64],
                message=occurrence.message,
                trace_id=occurrence.trace_id,
                at=datetime.now(UTC),
            )

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        metrics.ERROR_TRACKING_FAILURES.inc()
        if not self._failing:
            log.warning("error_tracking_failed", error=describe_error(exc))
        self._failing = True


# --- Sentry -----------------------------------------------------------------------------------


class Scrubber:
    """The logs' redaction over a whole Sentry event: every string loses the secret shapes
    of `monitoring.logging` (webhook URLs, bearer and cw_ tokens, passwords in URLs and
    queries) and cookies; the value of every secret-looking key (token, secret, cookie,
    authorization, webhook, session, ...) is replaced, and so is any secret value of the
    settings wherever it appears (inside a repr, say)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found = {s for s in secrets if len(s) >= SECRET_MIN_CHARS}
        self.secrets = sorted(found, key=len, reverse=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> Scrubber:
        secrets = []
        for name, value in settings:
            text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            if not isinstance(text, str) or not text:
                continue
            if SECRET_KEYS.search(name):
                secrets.append(text)
            if "://" in text:
                try:
                    password = urlsplit(text).password
                except ValueError:
                    password = None
                if password:
                    secrets.append(password)
        return cls(secrets)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        for pattern, replacement in COOKIE_PATTERNS:
            value = pattern.sub(replacement, value)
        return redact_text(value)

    def scrub(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, str):
            if key is not None and value and SECRET_KEYS.search(key):
                return REDACTED
            return self.text(value)
        if isinstance(value, dict):
            return {
                (self.text(k) if isinstance(k, str) else k): self.scrub(
                    v, k if isinstance(k, str) else None
                )
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.scrub(item) for item in value]
        return value

    def event(self, event: Any, _hint: Any) -> Any:
        """Sentry's `before_send`: the event scrubbed, or nothing when scrubbing failed
        (an event that may hold a secret is not sent)."""
        try:
            return self.scrub(event)
        except Exception:
            return None

    def breadcrumb(self, crumb: Any, _hint: Any) -> Any:
        try:
            return self.scrub(crumb)
        except Exception:
            return None


_sentry_on = False


def start_error_reporting(settings: Settings, process: str) -> bool:
    """Sentry for this process (`serve` or `worker`) when `CLIPWATCH_SENTRY_DSN` is set;
    whether it is on. A DSN Sentry cannot read is a `ConfigError` (one line at start-up).

    Events come only from `send_to_sentry` (no automatic integrations: one event per error,
    grouped by our fingerprint); log lines become breadcrumbs, never events. No local
    variables, request bodies or personal data are sent."""
    global _sentry_on
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.utils import BadDsn

    scrubber = Scrubber.from_settings(settings)
    try:
        sentry_sdk.init(
            dsn=settings.sentry_dsn,
            # send_default_pii stays unset, which is off: sentry-sdk 2.75 deprecates setting
            # it, and `data_collection` would turn Sentry's own EventScrubber off.
            include_local_variables=False,
            max_request_body_size="never",
            auto_enabling_integrations=False,
            integrations=[LoggingIntegration(level=logging.INFO, event_level=None)],
            before_send=scrubber.event,
            before_breadcrumb=scrubber.breadcrumb,
            release=f"clipwatch@{version('clipwatch')}",
            environment="demo" if settings.demo_mode else "production",
            in_app_include=["clipwatch"],
        )
    except BadDsn as exc:
        raise ConfigError(f"CLIPWATCH_SENTRY_DSN: not a DSN Sentry accepts ({exc})") from None
    sentry_sdk.set_tag("process", process)
    _sentry_on = True
    log.info("error_reporting", sentry=True, process=process)
    return True


def stop_error_reporting(timeout: float = 2.0) -> None:
    """Send what is queued (at most `timeout` seconds) and turn Sentry off."""
    global _sentry_on
    if not _sentry_on:
        return
    _sentry_on = False
    sentry_sdk = sys.modules["sentry_sdk"]
    sentry_sdk.get_client().close(timeout=timeout)
    sentry_sdk.get_global_scope().set_client(None)


def flush_error_reporting(timeout: float = 2.0) -> None:
    if _sentry_on:
        sys.modules["sentry_sdk"].flush(timeout=timeout)


def send_to_sentry(error: BaseException, occurrence: Occurrence, source: str) -> None:
    if not _sentry_on:
        return
    try:
        sentry_sdk = sys.modules["sentry_sdk"]
        from sentry_sdk.utils import event_from_exception

        event, hint = event_from_exception(
            error,
            client_options=sentry_sdk.get_client().options,
            mechanism={"type": "clipwatch", "handled": False},  # it ended a request or task
        )
        with sentry_sdk.new_scope() as scope:
            scope.fingerprint = [occurrence.error_type, occurrence.place]
            scope.set_tag("source", source)
            scope.set_tag("place", occurrence.place)
            scope.set_tag("trace_id", occurrence.trace_id)
            sentry_sdk.capture_event(event, hint=hint)
    except Exception as exc:  # Sentry's trouble never becomes the caller's
        log.warning("sentry_capture_failed", error=describe_error(exc))
