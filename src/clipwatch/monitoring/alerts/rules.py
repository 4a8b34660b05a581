"""Alert rules, receivers and routes, read from YAML and validated at start.

The shipped set is `default_rules.yaml` beside this module; `CLIPWATCH_ALERT_RULES_FILE`
replaces it with a file of one's own (same shape). Anything wrong stops start-up with one
line naming the file, the place in it and what is wrong (`RulesError`, a `ConfigError`).

A rule compares each value of one signal (`signals.py`) with a threshold; a value whose
comparison holds for the rule's `for` opens an incident, and one that stays clear for the
same `for` resolves it. Summaries are `str.format` templates over the value's labels and
fields plus `value` and `threshold` (no Jinja: nothing in them can run code).
"""

from __future__ import annotations

import operator
import os
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from clipwatch.discord.webhook_url import WebhookTarget, parse_webhook_url
from clipwatch.errors import ConfigError, InvalidInput

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_NAME = r"^[a-z][a-z0-9_]{0,63}$"
_LABEL_NAME = r"^[a-z_][a-z0-9_]{0,31}$"


class RulesError(ConfigError):
    """A rules file that cannot be used; the message is one line."""


def parse_duration(value: object) -> timedelta:
    """`90`, `"90s"`, `"5m"`, `"1h"`, `"1d"` (a number alone is seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 30s, 5m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"{value!r} is not a duration (like 30s, 5m, 1h)")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0 or seconds > 30 * 86400:
        raise ValueError("a duration lies between 0 and 30 days")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def template_fields(template: str) -> set[str]:
    """The names a summary template uses; raises ValueError when it is not a plain
    str.format template (no attribute or index lookups: labels are plain values)."""
    names = set()
    for _, field_name, spec, _ in string.Formatter().parse(template):
        if field_name is None:
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field_name):
            raise ValueError(f"{{{field_name}}}: only plain names may appear in braces")
        if spec and "{" in spec:
            raise ValueError("nested braces are not allowed")
        names.add(field_name)
    return names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Rule(_Strict):
    name: str = Field(pattern=_NAME)
    signal: str = Field(pattern=_NAME)
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    threshold: float
    for_: Duration = Field(default=timedelta(0), alias="for")
    severity: Severity = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=1000)

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not re.fullmatch(_LABEL_NAME, name):
                raise ValueError(f"label name {name!r} must be lower case letters, digits, _")
            if len(text) > 200:
                raise ValueError(f"label {name!r} is longer than 200 characters")
        return value

    @field_validator("summary")
    @classmethod
    def _summary_template(cls, value: str) -> str:
        template_fields(value)
        return value

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)

    def render_summary(self, values: Mapping[str, Any]) -> str:
        """The summary with the value's labels and fields; a name the value lacks stays
        as written (`{name}`), so a template never fails an evaluation."""
        known = {"value": _number(values.get("value")), "threshold": _number(self.threshold)}
        known |= {k: v for k, v in values.items() if k != "value"}
        return string.Formatter().vformat(self.summary, (), _Defaulting(known))[:500]


def _number(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float):
        return round(value, 2)
    return value


class _Defaulting(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Receiver(_Strict):
    """Where notifications go. `url` holds the address itself, or `url_from` names the
    setting (CLIPWATCH_…) or environment variable that holds it, so a rules file need
    not hold a secret. A Discord or webhook receiver whose address is empty is off."""

    name: str = Field(pattern=_NAME)
    type: Literal["log", "discord", "webhook"]
    url: str = Field(default="", max_length=500, repr=False)
    url_from: str = Field(default="", pattern=r"^$|^[A-Z][A-Z0-9_]{0,63}$")


class Route(_Strict):
    """Incidents of these severities whose labels match `match` (every pair equal) go to
    `receiver`. Every matching route sends: a route is not a first-match filter."""

    receiver: str = Field(pattern=_NAME)
    severity: list[Severity] = Field(default_factory=lambda: list(SEVERITIES))
    match: dict[str, str] = Field(default_factory=dict)


class Grouping(_Strict):
    # Messages of one group (one rule) to one receiver are at least this far apart: a
    # storm of incidents in between goes out as one message that lists them.
    group_interval: Duration = timedelta(minutes=5)
    # Still-firing, unacknowledged incidents are repeated this often.
    repeat_interval: Duration = timedelta(hours=4)


class RulesFile(_Strict):
    grouping: Grouping = Field(default_factory=Grouping)
    rules: list[Rule]
    receivers: list[Receiver] = Field(default_factory=lambda: [Receiver(name="log", type="log")])
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _route_to_every_receiver(cls, data: Any) -> Any:
        """Without `routes`, every incident goes to every receiver."""
        if isinstance(data, dict) and "routes" not in data:
            receivers = data.get("receivers") or [{"name": "log"}]
            if isinstance(receivers, list):
                names = [r.get("name") for r in receivers if isinstance(r, dict)]
                data = {**data, "routes": [{"receiver": n} for n in names if n]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RulesFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule {rule.name!r} is defined twice")
            seen.add(rule.name)
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise ValueError("receiver names must be unique")
        for route in self.routes:
            if route.receiver not in names:
                raise ValueError(f"route names receiver {route.receiver!r}, which is not defined")
        return self


@dataclass(frozen=True)
class Target:
    """A receiver ready to use: its URL resolved and checked (empty: off)."""

    name: str
    type: str
    url: str

    def __repr__(self) -> str:  # a webhook URL holds a secret
        return f"Target(name={self.name!r}, type={self.type!r}, url={'[set]' if self.url else ''})"

    @property
    def active(self) -> bool:
        return self.type == "log" or bool(self.url)


@dataclass(frozen=True)
class AlertConfig:
    source: str
    rules: tuple[Rule, ...]
    targets: dict[str, Target]
    routes: tuple[Route, ...]
    grouping: Grouping

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def receivers_for(self, severity: str, labels: Mapping[str, str]) -> list[str]:
        """The active receivers an incident of this severity and these labels goes to."""
        chosen: list[str] = []
        for route in self.routes:
            if severity not in route.severity:
                continue
            if any(labels.get(k) != v for k, v in route.match.items()):
                continue
            target = self.targets[route.receiver]
            if target.active and target.name not in chosen:
                chosen.append(target.name)
        return chosen


DEFAULT_RULES = "default_rules.yaml"


def default_rules_text() -> str:
    return (resources.files(__package__) / DEFAULT_RULES).read_text(encoding="utf-8")


def load_rules(
    path: str | Path | None = None,
    *,
    lookup: Callable[[str], str] | None = None,
    discord_hosts: Iterable[str] = (),
    webhook_hosts: Iterable[str] = (),
    text: str | None = None,
) -> AlertConfig:
    """The rules from `path` (or the shipped set), checked; RulesError in one line.

    `lookup` turns a receiver's `url_from` name into its value (settings, then the
    environment). Discord URLs must name an allowed Discord host (CLIPWATCH_WEBHOOK_ALLOWED_
    HOSTS); webhook URLs one of CLIPWATCH_ALERT_WEBHOOK_HOSTS."""
    source = str(path) if path else ("(given text)" if text is not None else DEFAULT_RULES)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8") if path else default_rules_text()
        except OSError as exc:
            raise RulesError(
                f"CLIPWATCH_ALERT_RULES_FILE: cannot read {source}: {exc.strerror}"
            ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise RulesError(f"alert rules {source}{where}: {problem}") from None
    if not isinstance(data, dict):
        raise RulesError(f"alert rules {source}: the file must hold a mapping with `rules:`")
    try:
        parsed = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise RulesError(f"alert rules {source}: {_first_error(exc, data)}") from None
    targets = {}
    for receiver in parsed.receivers:
        url = receiver.url
        if not url and receiver.url_from:
            url = (lookup or _environment)(receiver.url_from)
        if url:
            try:
                check_receiver_url(receiver.type, url, discord_hosts, webhook_hosts)
            except ValueError as exc:
                raise RulesError(f"alert rules {source}: receiver {receiver.name}: {exc}") from None
        targets[receiver.name] = Target(receiver.name, receiver.type, url.strip())
    return AlertConfig(source, tuple(parsed.rules), targets, tuple(parsed.routes), parsed.grouping)


def _environment(name: str) -> str:
    return os.environ.get(name, "")


def _first_error(exc: ValidationError, data: Any) -> str:
    error = exc.errors()[0]
    place = []
    node = data
    for part in error["loc"]:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
            name = node.get("name") if isinstance(node, dict) else None
            place.append(f"({name})" if name else f"({part})")  # not [..]: Rich markup
        else:
            node = node.get(part) if isinstance(node, dict) else None
            place.append(f".{part}" if place else str(part))
    where = "".join(place)
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def check_receiver_url(
    kind: str, url: str, discord_hosts: Iterable[str], webhook_hosts: Iterable[str]
) -> None:
    """The same rules as a route's pasted URL: only allowed hosts, no credentials, no
    ports other than the scheme's (ValueError says what is wrong, never the URL)."""
    if kind == "log":
        raise ValueError("a log receiver takes no url")
    if kind == "discord":
        try:
            parse_webhook_url(url, discord_hosts)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        return
    allowed = {h.strip().lower() for h in webhook_hosts if h.strip()}
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 — raises on a malformed port
    except ValueError:
        raise ValueError("the url is malformed") from None
    if parts.scheme not in ("https", "http"):
        raise ValueError("the url must start with https:// (or http://)")
    if parts.username or parts.password:
        raise ValueError("the url must not carry a user name or password")
    host = (parts.hostname or "").lower().rstrip(".")
    if not allowed:
        raise ValueError("CLIPWATCH_ALERT_WEBHOOK_HOSTS is empty: no webhook host is allowed")
    if host not in allowed:
        raise ValueError(f"the host must be one of {', '.join(sorted(allowed))}")


def webhook_target(target: Target) -> WebhookTarget:
    """A Discord receiver's URL as the outbox keeps it (the webhook's id and token)."""
    return parse_webhook_url(target.url, [urlsplit(target.url).hostname or ""])
