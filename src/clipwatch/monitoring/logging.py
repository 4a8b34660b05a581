"""Structured logging: console in a terminal, JSON otherwise; secrets redacted; file rotation.

Redaction (`redact`, a structlog processor; also applied to tracebacks): values under
secret-looking keys, at any depth; secret shapes inside any text (Discord webhook URLs,
`Bearer`/`Bot`/`OAuth` credentials, `cw_` API tokens, session cookies, passwords and keys in
URLs and queries); and the configured secrets themselves wherever they appear
(`register_secrets`: the client secret, the secret key, the bot token, ...).
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from clipwatch.config import Settings

SECRET_KEYS = re.compile(
    r"(token|secret|password|authorization|cookie|webhook|session|api_key|dsn)", re.IGNORECASE
)
# Secret shapes inside free text.
SECRET_PATTERNS = [
    # A Discord webhook's token (…/webhooks/<id>/<token>, with or without /api/v10).
    (re.compile(r"(/webhooks/\d+/)[\w.-]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(bearer\s+)[\w.~+/=-]+"), r"\1[redacted]"),
    # Discord bot tokens and Twitch tokens in their own Authorization schemes.
    (re.compile(r"\b(Bot|OAuth)(\s+)[\w.~+/=-]{20,}"), r"\1\2[redacted]"),
    (re.compile(r"\bcw_[A-Za-z0-9_-]{8,}"), "cw_[redacted]"),
    # A password in a URL (a database URL in a driver's error), a key before @ (a Sentry DSN).
    (re.compile(r"(\w+://)[^/\s:@]+:[^/\s@]+@"), r"\1[redacted]@"),
    (re.compile(r"(\w+://)[^/\s:@]{8,}@"), r"\1[redacted]@"),
    # Session cookies (Cookie and Set-Cookie headers quoted in text).
    (re.compile(r"(?i)\b((?:__Host-)?[\w-]*session[\w-]*=)[^;,&\s]+"), r"\1[redacted]"),
    (
        re.compile(r"(?i)\b(client_secret|access_token|refresh_token|token|password|code)=[^&\s]+"),
        r"\1=[redacted]",
    ),
    # Credentials as keys of JSON or a repr quoted in text.
    (
        re.compile(
            r"(?i)\b(client_secret|access_token|refresh_token|password|secret_key)"
            r"([\"']?\s*:\s*[\"']?)[^\"'\s,}]+"
        ),
        r"\1\2[redacted]",
    ),
]
REDACTED = "[redacted]"
SHORTEST_SECRET = 6  # shorter configured values are not searched for in text (too common)
_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Values never to be logged, wherever they appear (added to those already known)."""
    _secrets.update(v for v in values if v and len(v) >= SHORTEST_SECRET)


def settings_secrets(settings: Settings) -> list[str]:
    """The configured secrets (every setting declared with `repr=False`): what
    `register_secrets` is given at start."""
    return [
        str(getattr(settings, name))
        for name, info in type(settings).model_fields.items()
        if not info.repr and getattr(settings, name)
    ]


def redact_text(value: str) -> str:
    for pattern, replacement in SECRET_PATTERNS:
        value = pattern.sub(replacement, value)
    for secret in _secrets:
        if secret in value:
            value = value.replace(secret, REDACTED)
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


def _redact_value(key: str, value: Any, depth: int = 0) -> Any:
    if key != "event" and SECRET_KEYS.search(key) and value:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if depth < 4 and isinstance(value, dict):
        return {k: _redact_value(str(k), v, depth + 1) for k, v in value.items()}
    if depth < 4 and isinstance(value, list | tuple):
        return [_redact_value("", v, depth + 1) for v in value]
    return value


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: secret-looking keys lose their values (at any depth), text its
    secrets."""
    for key, value in list(event.items()):
        if isinstance(value, str | dict | list | tuple):
            event[key] = _redact_value(key, value)
        elif key != "event" and value and SECRET_KEYS.search(key):
            event[key] = REDACTED
    return event


def configure_logging(
    level: str = "info",
    fmt: str = "",
    file: str = "",
    *,
    max_bytes: int = 20 * 2**20,
    backups: int = 5,
    secrets: Iterable[str] = (),
) -> None:
    """Logs to stderr (console or JSON) and, with `file`, to that file as JSON lines,
    rotated at `max_bytes` keeping `backups` older files."""
    register_secrets(secrets)
    if not fmt:
        fmt = "console" if sys.stderr.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    def formatter(renderer: Any) -> logging.Formatter:
        return structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact,  # again: a traceback's text holds what the exception held
                renderer,
            ],
        )

    json_lines = formatter(structlog.processors.JSONRenderer())
    console: Any = (
        formatter(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
        if fmt == "console"
        else json_lines
    )
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(console)
    handlers: list[logging.Handler] = [stderr]
    if file:
        rotating = logging.handlers.RotatingFileHandler(
            file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        rotating.setFormatter(json_lines)  # a file is read by programs: JSON lines always
        handlers.append(rotating)
    root = logging.getLogger()
    for old in root.handlers:
        old.close()
    root.handlers.clear()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # One line per outgoing request (Twitch pages, Discord posts) only when debugging.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
