"""`clipwatch config reference|show`: the settings as documented, and as this process has them.

The reference is read from the `Settings` model (names, types, defaults, limits and each
field's description), never from the environment, so it holds no configured value;
docs/configuration.md is its output (tests/test_configuration_doc.py keeps them equal).
"""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

import typer

from clipwatch.cli.common import options, print_table, settings_or_exit

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from clipwatch.config import Settings

app = typer.Typer(
    help="The settings: their reference, and this process's values.", no_args_is_help=True
)

REGENERATE = "clipwatch config reference > docs/configuration.md"
# The first setting of each group, in the order Settings declares them (config.py's comments).
GROUP_STARTS = {
    "database_url": "Database",
    "redis_url": "Redis",
    "twitch_client_id": "Twitch",
    "discord_api_url": "Discord",
    "secret_key": "Service",
    "session_idle_minutes": "Accounts and access",
    "cache_ttl_seconds": "Cache",
    "search_relevance_candidates": "Search",
    "log_format": "Logging and monitoring",
    "alert_rules_file": "Alerts and incidents",
}
INTRO = """\
# Configuration reference

Every setting is an environment variable named `CLIPWATCH_` and the setting's name in capitals
(names are not case-sensitive), read once when a process starts: `clipwatch serve`,
`clipwatch worker` and every other command read the same settings. A `.env` file in the
working directory (lines `CLIPWATCH_NAME=value`) is read too; a variable set in the
environment wins over the same one in `.env`, and a command-line option that names a setting
(`clipwatch --database URL`) wins over both; what neither sets keeps the default below. A bad
value stops the process at start with one line naming the variable. `clipwatch config show`
prints the values a process would use, secrets redacted. Every process of a scaled setup needs
the same `CLIPWATCH_SECRET_KEY`, database and Redis.

The tables below are generated from `Settings` in `src/clipwatch/config.py`:
regenerate them with `{regenerate}`.
"""


def field_groups() -> list[tuple[str, list[tuple[str, FieldInfo]]]]:
    """The settings by group, in declaration order; a group starts at its GROUP_STARTS field."""
    from clipwatch.config import Settings

    fields = Settings.model_fields
    unknown = set(GROUP_STARTS) - set(fields)
    if unknown:
        raise ValueError(f"GROUP_STARTS names no setting: {', '.join(sorted(unknown))}")
    groups: list[tuple[str, list[tuple[str, FieldInfo]]]] = []
    for name, field in fields.items():
        if name in GROUP_STARTS or not groups:
            groups.append((GROUP_STARTS.get(name, "General"), []))
        groups[-1][1].append((name, field))
    return groups


def env_name(name: str) -> str:
    from clipwatch.config import Settings

    return f"{Settings.model_config.get('env_prefix', '')}{name}".upper()


def is_secret(field: FieldInfo) -> bool:
    """Secrets are the fields kept out of repr (config.py marks each with repr=False)."""
    return field.repr is False


def type_text(annotation: Any) -> str:
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(_code(str(v)) for v in get_args(annotation))
    if isinstance(annotation, types.UnionType):
        return " or ".join(type_text(a) for a in get_args(annotation))
    names = {str: "text", int: "integer", float: "number", bool: "boolean", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def default_text(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value in ("", None):
        return "*(empty)*"
    if is_secret(field):  # no secret has a default; should one get one, it is not shown
        return "*(set)*"
    if isinstance(value, bool):
        return _code(str(value).lower())
    return _code(str(value))


def range_text(field: FieldInfo) -> str:
    parts = []
    for constraint in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            bound = getattr(constraint, attr, None)
            if bound is not None:
                parts.append(f"{sign} {bound}")
        for attr, sign in (("min_length", "≥"), ("max_length", "≤")):
            bound = getattr(constraint, attr, None)
            if bound is not None:
                parts.append(f"{sign} {bound} characters")
    return ", ".join(parts)


def reference_markdown() -> str:
    """docs/configuration.md: the introduction, then one table per group."""
    lines = [INTRO.format(regenerate=REGENERATE)]
    for group, fields in field_groups():
        lines += [f"## {group}", ""]
        lines += ["| Variable | Type | Default | Range | Description |", "|---|---|---|---|---|"]
        for name, field in fields:
            description = (field.description or "").replace("|", "\\|")
            if is_secret(field):
                description += " (a secret: `clipwatch config show` redacts it)"
            cells = (
                _code(env_name(name)),
                type_text(field.annotation),
                default_text(field),
                range_text(field),
                description,
            )
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _code(text: str) -> str:
    return f"`{text}`" if text else '`""`'


def effective_rows(settings: Settings) -> list[tuple[str, str, str]]:
    """(variable, value, where it came from) for every setting, secrets redacted: secret
    fields show only whether they are set; other values lose any credential they hold
    (a password in a database or Redis URL) through the logs' redaction."""
    from clipwatch.config import DEMO_DATABASE_URL
    from clipwatch.monitoring.logging import REDACTED, redact_text

    environment = {key.upper() for key in os.environ}
    rows = []
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if is_secret(field):
            shown = REDACTED if value else ""
        else:
            shown = redact_text(str(value).lower() if isinstance(value, bool) else str(value))
        variable = env_name(name)
        if name == "database_url" and options.database is not None:
            source = "--database"
        elif name == "database_url" and value == DEMO_DATABASE_URL and variable not in environment:
            source = "demo mode"  # settings_or_exit's choice: no Twitch credentials, no database
        elif variable in environment:
            source = "environment"
        elif name in settings.model_fields_set:
            source = ".env"
        else:
            source = "default"
        rows.append((variable, shown, source))
    return rows


@app.command("reference")
def reference() -> None:
    """Print the configuration reference (Markdown) generated from the settings model."""
    typer.echo(reference_markdown(), nl=False)


@app.command("show")
def show() -> None:
    """Print the settings this process would run with, and where each came from; secrets
    redacted."""
    from rich.table import Table
    from rich.text import Text

    settings = settings_or_exit()
    table = Table("Variable", "Value", "From", box=None, pad_edge=False)
    for variable, value, source in effective_rows(settings):
        # Text: a value is never read as Rich markup ("[redacted]" would vanish as a tag).
        table.add_row(
            Text(variable), Text(value), source, style=None if source == "default" else "bold"
        )
    print_table(table)
