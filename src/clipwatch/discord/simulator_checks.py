"""The Discord simulator's own reading of request bodies: Discord's checks as
reference/discord-api.md gives them, written apart from clipwatch's message builder (a
checker that shared the builder's code would share its mistakes). Pure functions; every
input, however odd, gets an answer: errors in Discord's `errors` tree shape, never an
exception.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

SNOWFLAKE = re.compile(r"^\d{1,20}$")
_ROLE_MENTION = re.compile(r"<@&(\d{1,20})>")
_USER_MENTION = re.compile(r"<@!?(\d{1,20})>")
_EVERYONE = re.compile(r"@(everyone|here)")
MENTION_TYPES = ("users", "roles", "everyone")
MAX_MENTION_IDS = 100
NAME_MAX = 80  # webhook names and per-message `username` overrides
THREAD_NAME_MAX = 100
FORBIDDEN_NAME_WORDS = ("clyde", "discord")
UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}
UNKNOWN_CHANNEL = {"message": "Unknown Channel", "code": 10003}
UNKNOWN_MESSAGE = {"message": "Unknown Message", "code": 10008}
MISSING_PERMISSIONS = {"message": "Missing Permissions", "code": 50013}
NOT_JSON = object()  # what `loads` reads from a body that is not JSON


def loads(body: bytes) -> Any:
    """The JSON body (`NOT_JSON` when it is not JSON; an empty body reads as `{}`)."""
    if not body:
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return NOT_JSON


def invalid_form(errors: dict[str, Any]) -> dict[str, Any]:
    """Discord's 400 for a body that breaks its rules."""
    return {"message": "Invalid Form Body", "code": 50035, "errors": errors}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"_errors": [{"code": code, "message": message}]}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def is_snowflake(value: Any) -> bool:
    return isinstance(value, str) and SNOWFLAKE.match(value) is not None


def name_errors(name: Any) -> dict[str, Any] | None:
    """A webhook's name (or a message's `username`): 1-80 characters, and neither "clyde"
    nor "discord" in any case (Discord refuses both words for webhook names; the reference
    says overrides are checked the same way, unverified: never kinder)."""
    if not isinstance(name, str):
        return _error("BASE_TYPE_REQUIRED", "This field is required")
    if not 1 <= len(name) <= NAME_MAX:
        return _error("BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {NAME_MAX} in length.")
    lowered = name.lower()
    for word in FORBIDDEN_NAME_WORDS:
        if word in lowered:
            return _error("USERNAME_INVALID_CONTAINS", f'Username cannot contain "{word}"')
    return None


def allowed_mentions_errors(value: Any) -> dict[str, Any] | None:
    """`parse` holds only users/roles/everyone and never a type also given as an id list;
    `users` and `roles` are lists of at most 100 snowflakes."""
    if not isinstance(value, dict):
        return _error("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    errors: dict[str, Any] = {}
    parse = value.get("parse", [])
    if not isinstance(parse, list) or not all(p in MENTION_TYPES for p in parse):
        errors["parse"] = _error(
            "BASE_TYPE_CHOICES", "Value must be one of users, roles, everyone."
        )
        parse = []
    for kind in ("users", "roles"):
        if kind not in value:
            continue
        ids = value[kind]
        if not isinstance(ids, list):
            errors[kind] = _error("LIST_TYPE_CONVERT", "Must be an array.")
        elif len(ids) > MAX_MENTION_IDS:
            errors[kind] = _error("BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        elif not all(is_snowflake(i) or isinstance(i, int) for i in ids):
            errors[kind] = _error("NUMBER_TYPE_COERCE", "Value is not snowflake.")
        elif kind in parse:
            errors["_errors"] = [
                {
                    "code": "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    "message": f'parse:["{kind}"] is mutually exclusive with {kind}: [ids]',
                }
            ]
    if "replied_user" in value and not isinstance(value["replied_user"], bool):
        errors["replied_user"] = _error("BASE_TYPE_BOOLEAN", "Must be either true or false.")
    return errors or None


def _embed_errors(embed: Any, errors: dict[str, Any], path: str) -> int:
    """Checks one embed into `errors`; returns its characters counted towards 6,000."""
    if not isinstance(embed, dict):
        errors[path] = _error("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return 0
    total = 0
    for key, limit in (("title", 256), ("description", 4096)):
        text = _text(embed.get(key))
        total += len(text)
        if len(text) > limit:
            errors[f"{path}.{key}"] = f"Must be {limit} or fewer in length."
    fields = embed.get("fields") or []
    if not isinstance(fields, list):
        errors[f"{path}.fields"] = "Must be an array."
        fields = []
    if len(fields) > 25:
        errors[f"{path}.fields"] = "Must be 25 or fewer in length."
    for number, item in enumerate(fields):
        if not isinstance(item, dict):
            errors[f"{path}.fields.{number}"] = "Only dictionaries may be used in a DictType"
            continue
        name, value = _text(item.get("name")), _text(item.get("value"))
        total += len(name) + len(value)
        if not name or len(name) > 256:
            errors[f"{path}.fields.{number}.name"] = "1 to 256 in length."
        if not value or len(value) > 1024:
            errors[f"{path}.fields.{number}.value"] = "1 to 1024 in length."
    for key, inner, limit in (("footer", "text", 2048), ("author", "name", 256)):
        part = embed.get(key) or {}
        if not isinstance(part, dict):
            errors[f"{path}.{key}"] = "Only dictionaries may be used in a DictType"
            continue
        text = _text(part.get(inner))
        total += len(text)
        if len(text) > limit:
            errors[f"{path}.{key}.{inner}"] = f"Must be {limit} or fewer in length."
    return total


def payload_errors(payload: Any, *, edit: bool = False) -> dict[str, Any]:
    """Discord's own checks of an execute-webhook body (or, with `edit`, of a message after
    an edit: there is no `username`, `avatar_url` or `thread_name` to check)."""
    if not isinstance(payload, dict):
        return _error("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    errors: dict[str, Any] = {}
    content = payload.get("content")
    embeds = payload.get("embeds")
    if content is not None and not isinstance(content, str):
        errors["content"] = _error("STRING_TYPE_CONVERT", "Must be a string.")
        content = ""
    if embeds is not None and not isinstance(embeds, list):
        errors["embeds"] = _error("LIST_TYPE_CONVERT", "Must be an array.")
        return errors
    if not content and not embeds:
        return _error("50006", "Cannot send an empty message")
    if content and len(content) > 2000:
        errors["content"] = _error("BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    embeds = embeds or []
    if len(embeds) > 10:
        errors["embeds"] = _error("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        return errors
    total = sum(_embed_errors(e, errors, f"embeds.{i}") for i, e in enumerate(embeds))
    if total > 6000:
        errors["embeds"] = "Embed size exceeds maximum size of 6000"
    if "allowed_mentions" in payload:
        mentions = allowed_mentions_errors(payload["allowed_mentions"])
        if mentions:
            errors["allowed_mentions"] = mentions
    if edit:
        return errors
    if "username" in payload and (bad := name_errors(payload["username"])):
        errors["username"] = bad
    if "avatar_url" in payload and not isinstance(payload["avatar_url"], str):
        errors["avatar_url"] = _error("STRING_TYPE_CONVERT", "Must be a string.")
    if "thread_name" in payload:
        name = payload["thread_name"]
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= THREAD_NAME_MAX:
            errors["thread_name"] = _error(
                "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {THREAD_NAME_MAX} in length."
            )
    return errors


def pinged(content: Any, allowed: Any) -> dict[str, Any]:
    """Who a message's content notifies under its `allowed_mentions` (Discord re-reads them on
    every edit). Without `allowed_mentions` a webhook's message parses users only (the current
    docs); mentions inside embeds notify nobody. `@everyone`/`@here` count as pinging when
    "everyone" is parsed (the permission is assumed granted: never kinder)."""
    text = content if isinstance(content, str) else ""
    rules = allowed if isinstance(allowed, dict) else {"parse": ["users"]}
    parse: list[Any] = rules["parse"] if isinstance(rules.get("parse"), list) else []
    listed = {
        kind: {str(i) for i in ids if isinstance(i, str | int)}
        for kind in ("users", "roles")
        if isinstance(ids := rules.get(kind), list)
    }
    roles = [
        r
        for r in dict.fromkeys(_ROLE_MENTION.findall(text))
        if "roles" in parse or r in listed.get("roles", ())
    ]
    users = [
        u
        for u in dict.fromkeys(_USER_MENTION.findall(text))
        if "users" in parse or u in listed.get("users", ())
    ]
    return {
        "roles": roles,
        "users": users,
        "everyone": "everyone" in parse and bool(_EVERYONE.search(text)),
    }
