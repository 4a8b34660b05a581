"""Slash commands over HTTP: `/clips search|top|latest|random`, with autocomplete.

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

from nacl.exceptions import BadSignatureError
from nacl.exceptions import ValueError as NaclValueError
from nacl.signing import VerifyKey

from clipwatch.discord.messages import NO_PINGS, ClipView, build_messages

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
    }
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


@dataclass(frozen=True)
class CommandRequest:
    subcommand: str
    query: str | None
    channel: str | None
    game: str | None


def parse_command(data: dict[str, Any]) -> CommandRequest | None:
    """The `/clips` subcommand and its options, or None when it is something else."""
    if data.get("name") != "clips":
        return None
    options = data.get("options") or []
    if not options or not isinstance(options[0], dict):
        return None
    sub = options[0]
    if sub.get("name") not in SUBCOMMANDS:
        return None
    values = {
        o.get("name"): o.get("value") for o in sub.get("options") or [] if isinstance(o, dict)
    }

    def text(name: str) -> str | None:
        value = values.get(name)
        return str(value)[:100] if isinstance(value, str | int) and str(value).strip() else None

    return CommandRequest(str(sub["name"]), text("query"), text("channel"), text("game"))


def focused_option(data: dict[str, Any]) -> tuple[str, str] | None:
    for sub in data.get("options") or []:
        for option in sub.get("options") or []:
            if isinstance(option, dict) and option.get("focused"):
                return str(option.get("name")), str(option.get("value") or "")
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
