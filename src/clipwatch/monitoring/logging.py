"""Structured logging: console in a terminal, JSON otherwise; secrets redacted; file rotation."""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEYS = re.compile(
    r"(token|secret|password|authorization|cookie|webhook|session|api_key)", re.IGNORECASE
)
# Discord webhook URLs and bearer tokens inside free text.
SECRET_PATTERNS = [
    (re.compile(r"(/api(?:/v\d+)?/webhooks/\d+/)[\w-]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(bearer\s+)[\w.~+/=-]+"), r"\1[redacted]"),
    (re.compile(r"\bcw_[A-Za-z0-9_-]{8,}"), "cw_[redacted]"),
    # A password in a URL (a database URL in a driver's error) and credentials in a query.
    (re.compile(r"(\w+://)[^/\s:@]+:[^/\s@]+@"), r"\1[redacted]@"),
    (
        re.compile(r"(?i)\b(client_secret|access_token|refresh_token|token|password|code)=[^&\s]+"),
        r"\1=[redacted]",
    ),
]
REDACTED = "[redacted]"


def redact_text(value: str) -> str:
    for pattern, replacement in SECRET_PATTERNS:
        value = pattern.sub(replacement, value)
    return value


def describe_error(error: BaseException | str, limit: int = 500) -> str:
    """One line for operators (status, a channel's or a route's last error): the error's kind
    and the first line of its message, secrets removed, characters no column holds dropped,
    at most `limit` characters."""
    if isinstance(error, str):
        text = error
    else:
        detail = str(getattr(error, "orig", None) or error)  # a driver's error under SQLAlchemy's
        first = next((line.strip() for line in detail.splitlines() if line.strip()), "")
        text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(redact_text(text).split())
    return text[: limit - 1] + "…" if len(text) > limit else text


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: secret-looking keys lose their values, free text its secrets."""
    for key, value in list(event.items()):
        if key != "event" and SECRET_KEYS.search(key) and value:
            event[key] = REDACTED
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


def configure_logging(level: str = "info", fmt: str = "", file: str = "") -> None:
    if not fmt:
        fmt = "console" if sys.stderr.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file:
        handlers.append(
            logging.handlers.RotatingFileHandler(file, maxBytes=20 * 2**20, backupCount=5)
        )
    root = logging.getLogger()
    root.handlers.clear()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # One line per outgoing request (Twitch pages, Discord posts) only when debugging.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
