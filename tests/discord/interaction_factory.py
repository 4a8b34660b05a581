"""Interactions as Discord sends them, for tests: a slash command in a server (its member's
permissions a decimal-string bitfield, as Discord writes them), in a DM (a `user`, no
`member`), an autocomplete, and Discord's Ed25519 signature over them.

    body, headers = signed(guild_command("clipwatch", "follow", {"channel": "alpha"},
                                         permissions=MANAGE_WEBHOOKS))
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson
from nacl.signing import SigningKey

# Permission bits (Discord's "Permissions" table).
MANAGE_CHANNELS = 1 << 4
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
SEND_MESSAGES = 1 << 11
MENTION_EVERYONE = 1 << 17
MANAGE_WEBHOOKS = 1 << 29
MANAGE_THREADS = 1 << 34  # past 2**32: why Discord sends the field as a string
EVERYDAY = SEND_MESSAGES | (1 << 10) | (1 << 16)  # send, view channel, read history

APPLICATION_ID = "700000000000000001"  # the simulator's bot user, maker of its webhooks
GUILD = "800000000000000001"  # the simulator's default server ...
CHANNEL = "900000000000000001"  # ... and channel
SIGNER = SigningKey.generate()
_ids = itertools.count(1_200_000_000_000_000_000)


def signed(
    payload: dict[str, Any] | bytes, signer: SigningKey = SIGNER, *, age_s: float = 0
) -> tuple[bytes, dict[str, str]]:
    """The body and Discord's headers: Ed25519(timestamp + raw body)."""
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    timestamp = str(int(time.time() - age_s))
    signature = signer.sign(timestamp.encode() + body).signature.hex()
    return body, {
        "X-Signature-Ed25519": signature,
        "X-Signature-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def _option_type(value: Any) -> int:
    if isinstance(value, bool):
        return 5  # BOOLEAN
    if isinstance(value, int):
        return 4  # INTEGER
    if isinstance(value, float):
        return 10  # NUMBER
    return 3  # STRING


def _data(
    name: str, sub: str | None, options: dict[str, Any] | None, focused: str | None
) -> dict[str, Any]:
    given = [
        {"name": k, "type": _option_type(v), "value": v}
        | ({"focused": True} if k == focused else {})
        for k, v in (options or {}).items()
    ]
    if sub is not None:
        given = [{"type": 1, "name": sub, "options": given}]  # SUB_COMMAND
    return {"id": str(next(_ids)), "name": name, "type": 1, "options": given}


def guild_command(
    name: str,
    sub: str | None = None,
    options: dict[str, Any] | None = None,
    *,
    permissions: int | str = EVERYDAY,
    app_permissions: int | str | None = MANAGE_WEBHOOKS | EVERYDAY,
    guild_id: str = GUILD,
    channel_id: str = CHANNEL,
    user_id: str = "500000000000000001",
    kind: int = 2,
    focused: str | None = None,
) -> dict[str, Any]:
    """`/name sub option:value ...` run in a server by a member with `permissions` (an int
    or Discord's decimal string, given as is: a test may send an odd one)."""
    interaction: dict[str, Any] = {
        "type": kind,
        "id": str(next(_ids)),
        "application_id": APPLICATION_ID,
        "token": f"interaction-token-{next(_ids)}",
        "version": 1,
        "context": 0,
        "guild_id": guild_id,
        "channel_id": channel_id,
        "member": {
            "user": {"id": user_id, "username": "member"},
            "roles": [],
            "permissions": str(permissions) if isinstance(permissions, int) else permissions,
        },
        "data": _data(name, sub, options, focused),
    }
    if app_permissions is not None:
        interaction["app_permissions"] = (
            str(app_permissions) if isinstance(app_permissions, int) else app_permissions
        )
    return interaction


def dm_command(
    name: str,
    sub: str | None = None,
    options: dict[str, Any] | None = None,
    *,
    user_id: str = "500000000000000001",
) -> dict[str, Any]:
    """The same command in a DM with the bot: a `user`, no `member`, no server."""
    return {
        "type": 2,
        "id": str(next(_ids)),
        "application_id": APPLICATION_ID,
        "token": f"interaction-token-{next(_ids)}",
        "version": 1,
        "context": 1,
        "channel_id": CHANNEL,
        "user": {"id": user_id, "username": "someone"},
        "data": _data(name, sub, options, None),
    }


def autocomplete(
    name: str, sub: str | None, options: dict[str, Any], focused: str, **kw: Any
) -> dict[str, Any]:
    """Typing into `focused` (interaction type 4)."""
    return guild_command(name, sub, options, kind=4, focused=focused, **kw)
