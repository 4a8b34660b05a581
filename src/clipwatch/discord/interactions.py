"""Slash commands over HTTP: `/clips search|top|latest|random`, with autocomplete, and
`/clipwatch link|follow|unfollow|list` (setup from Discord: discord/setup.py).

The signature is checked before anything else (the API layer calls `verify_signature` on
the raw body). Answers come within Discord's 3 s: a query that takes longer than
`ANSWER_WITHIN_S` is answered "thinking…" (deferred), and its result edits that answer
when it is ready. Problems are ephemeral messages; no message can ping anyone.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from nacl.exceptions import BadSignatureError
from nacl.exceptions import ValueError as NaclValueError
from nacl.signing import VerifyKey

from clipwatch.discord.messages import NO_PINGS, ClipView, build_messages
from clipwatch.errors import BadRequest

PING, COMMAND, AUTOCOMPLETE = 1, 2, 4
PONG, MESSAGE, DEFERRED, CHOICES = 1, 4, 5, 8
EPHEMERAL = 1 << 6
ANSWER_WITHIN_S = 2.0
SUBCOMMANDS = ("search", "top", "latest", "random")

COMMANDS = [
    {
        "name": "clips",
        "description": "Find clips in the archive",
        "options": [
            {
                "type": 1,
                "name": name,
                "description": description,
                "options": [
                    *(
                        [{"type": 3, "name": "query", "description": "Words", "required": True}]
                        if name == "search"
                        else []
                    ),
                    {"type": 3, "name": "channel", "description": "Channel", "autocomplete": True},
                    {"type": 3, "name": "game", "description": "Game", "autocomplete": True},
                ],
            }
            for name, description in [
                ("search", "Clips matching words"),
                ("top", "The most viewed clips"),
                ("latest", "The newest clips"),
                ("random", "A random clip among the most viewed"),
            ]
        ],
    },
    {
        "name": "clipwatch",
        "description": "Set up clip posts in this server",
        "contexts": [0],  # servers only (a DM still gets an answer saying so)
        "options": [
            {
                "type": 1,
                "name": "link",
                "description": "Link this server to a clipwatch account (needs Manage Server)",
                "options": [
                    {
                        "type": 3,
                        "name": "code",
                        "description": "The one-time code from clipwatch",
                        "required": True,
                        "max_length": 40,
                    }
                ],
            },
            {
                "type": 1,
                "name": "follow",
                "description": "Post a channel's new clips here (needs Manage Webhooks)",
                "options": [
                    {
                        "type": 3,
                        "name": "channel",
                        "description": "Twitch login of a tracked channel",
                        "required": True,
                        "autocomplete": True,
                        "max_length": 100,
                    },
                    {
                        "type": 4,
                        "name": "min_views",
                        "description": "Only clips with at least this many views",
                        "min_value": 0,
                        "max_value": 10**12,
                    },
                    {
                        "type": 3,
                        "name": "template",
                        "description": "How a clip looks",
                        "choices": [
                            {"name": "Card", "value": "card"},
                            {"name": "Compact", "value": "compact"},
                            {"name": "Link (Discord's player)", "value": "link"},
                        ],
                    },
                ],
            },
            {
                "type": 1,
                "name": "unfollow",
                "description": "Stop posting a channel's clips here (needs Manage Webhooks)",
                "options": [
                    {
                        "type": 3,
                        "name": "channel",
                        "description": "Twitch login",
                        "required": True,
                        "max_length": 100,
                    }
                ],
            },
            {"type": 1, "name": "list", "description": "This server's clip posts"},
        ],
    },
]


def verify_signature(public_key_hex: str, signature_hex: str, timestamp: str, body: bytes) -> bool:
    """Ed25519 over timestamp + raw body, as Discord signs it."""
    try:
        key = VerifyKey(bytes.fromhex(public_key_hex))
        key.verify(timestamp.encode() + body, bytes.fromhex(signature_hex))
    except (BadSignatureError, NaclValueError, ValueError, TypeError):
        return False
    return True


# A signed request whose timestamp is further than this from now is a replay, not Discord.
SIGNATURE_MAX_AGE_S = 300


def signed_recently(timestamp: str, now: float, max_age: float = SIGNATURE_MAX_AGE_S) -> bool:
    """Whether Discord's signed timestamp (Unix seconds) is within `max_age` of `now`, either
    way: a request signed long ago (or for later) is refused even with a valid signature."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 20):
        return False
    return abs(now - int(timestamp)) <= max_age


class MalformedInteraction(BadRequest):
    """A validly signed body that is not an interaction of a shape Discord sends (400)."""


# Discord's interaction types: PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE,
# MODAL_SUBMIT. https://discord.com/developers/docs/interactions/receiving-and-responding
INTERACTION_TYPES = frozenset({PING, COMMAND, 3, AUTOCOMPLETE, 5})


@dataclass(frozen=True)
class Interaction:
    type: int
    data: dict[str, Any]  # empty for a PING
    token: str | None  # what a deferred answer is edited with
    # Where and by whom (read by /clipwatch; odd values read as absent: a DM, no permission).
    guild_id: str | None = None
    channel_id: str | None = None
    user_id: str | None = None
    permissions: int | None = None  # the member's, in this channel (a bitfield)
    app_permissions: int | None = None  # the bot's, in this channel


@dataclass(frozen=True)
class CommandRequest:
    subcommand: str
    query: str | None
    channel: str | None
    game: str | None


def parse_interaction(body: bytes) -> Interaction:
    """The interaction in a (signed) body; MalformedInteraction when it is not one. Only the
    parts read are checked: Discord adds fields, and an unknown one is no error."""
    try:
        value = orjson.loads(body)  # refuses nesting deeper than 1024
    except orjson.JSONDecodeError:
        raise MalformedInteraction("the body is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedInteraction("an interaction is a JSON object")
    kind = value.get("type")
    if type(kind) is not int or kind not in INTERACTION_TYPES:  # True is no type
        raise MalformedInteraction("`type` is not an interaction type")
    data = value.get("data", {} if kind == PING else None)
    if not isinstance(data, dict):
        raise MalformedInteraction("`data` is missing or not an object")
    token = value.get("token")
    if token is not None and not (isinstance(token, str) and token):
        raise MalformedInteraction("`token` is not a string")
    member = value.get("member")
    if not isinstance(member, dict):
        member = {}
    user = member.get("user") if isinstance(member.get("user"), dict) else value.get("user")
    return Interaction(
        kind,
        data,
        token,
        guild_id=_snowflake(value.get("guild_id")),
        channel_id=_snowflake(value.get("channel_id")),
        user_id=_snowflake(user.get("id")) if isinstance(user, dict) else None,
        permissions=_bitfield(member.get("permissions")),
        app_permissions=_bitfield(value.get("app_permissions")),
    )


def _snowflake(value: object) -> str | None:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return value
    return None


def _bitfield(value: object) -> int | None:
    """Discord's permissions: a decimal string (a number would lose bits past 2**53)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 40:
        return int(value)
    return None


def _options(value: object, where: str) -> list[dict[str, Any]]:
    """A list of Discord option objects, each with a string `name`; missing is empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedInteraction(f"{where} is not a list")
    for option in value:
        if not isinstance(option, dict) or not isinstance(option.get("name"), str):
            raise MalformedInteraction(f"{where} holds something that is not an option")
    return value


def _values(sub: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """A subcommand's options: (name, value, focused). Every option of `/clips` is text."""
    found = []
    for option in _options(sub.get("options"), f"the options of {sub['name'][:32]!r}"):
        value, focused = option.get("value", ""), option.get("focused", False)
        if not isinstance(value, str) or not isinstance(focused, bool):
            raise MalformedInteraction(f"option {option['name'][:32]!r} is not text")
        found.append((option["name"], value, focused))
    return found


def parse_command(data: dict[str, Any]) -> CommandRequest | None:
    """The `/clips` subcommand and its options, or None when it is another command."""
    name = data.get("name")
    if not isinstance(name, str):
        raise MalformedInteraction("the command has no name")
    if name != "clips":
        return None
    options = _options(data.get("options"), "the command's options")
    if not options:
        raise MalformedInteraction("`/clips` came without a subcommand")
    sub = options[0]
    if sub["name"] not in SUBCOMMANDS:
        return None
    values = {option: value for option, value, _focused in _values(sub)}

    def text(option: str) -> str | None:
        value = values.get(option, "")
        return value[:100] if value.strip() else None

    return CommandRequest(sub["name"], text("query"), text("channel"), text("game"))


def focused_option(data: dict[str, Any]) -> tuple[str, str] | None:
    """The option being typed in an autocomplete interaction: (name, what is typed so far)."""
    for sub in _options(data.get("options"), "the command's options"):
        for name, value, focused in _values(sub):
            if focused:
                return name, value
    return None


def message_for(clips: list[ClipView], request: CommandRequest) -> dict[str, Any]:
    if not clips:
        what = f" for “{request.query}”" if request.query else ""
        return ephemeral(f"No clips found{what}.")
    if request.subcommand == "random":
        clips = [random.choice(clips)]
    message = build_messages("card", clips[:5])[0]
    return {"embeds": message["embeds"], "allowed_mentions": NO_PINGS}


def ephemeral(text: str) -> dict[str, Any]:
    return {"content": text[:2000], "flags": EPHEMERAL, "allowed_mentions": NO_PINGS}


Finder = Callable[[CommandRequest], Awaitable[list[ClipView]]]
