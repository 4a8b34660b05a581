"""The interaction factory builds what Discord sends: the product's own parser and signature
check read its member permissions, DMs and autocompletes as Discord's."""

from __future__ import annotations

import pytest

from clipwatch.discord.interactions import parse_interaction, verify_signature
from tests.discord.interaction_factory import (
    MANAGE_THREADS,
    MANAGE_WEBHOOKS,
    SIGNER,
    autocomplete,
    dm_command,
    guild_command,
    signed,
)


@pytest.mark.parametrize("permissions", [0, MANAGE_WEBHOOKS, MANAGE_THREADS | MANAGE_WEBHOOKS])
def test_a_guild_command_carries_its_members_permissions(permissions: int) -> None:
    payload = guild_command(
        "clipwatch", "follow", {"channel": "alpha", "min_views": 10}, permissions=permissions
    )
    assert payload["member"]["permissions"] == str(permissions)  # a decimal string
    body, headers = signed(payload)
    assert verify_signature(
        SIGNER.verify_key.encode().hex(),
        headers["X-Signature-Ed25519"],
        headers["X-Signature-Timestamp"],
        body,
    )
    read = parse_interaction(body)
    assert read.permissions == permissions
    assert (read.guild_id, read.channel_id) == (payload["guild_id"], payload["channel_id"])
    [sub] = read.data["options"]
    assert sub["name"] == "follow"
    assert {o["name"]: (o["type"], o["value"]) for o in sub["options"]} == {
        "channel": (3, "alpha"),
        "min_views": (4, 10),
    }


def test_an_odd_permissions_value_is_sent_as_given() -> None:
    payload = guild_command("clipwatch", "list", permissions="not a number")
    assert parse_interaction(signed(payload)[0]).permissions is None


def test_a_dm_has_a_user_and_no_member() -> None:
    payload = dm_command("clipwatch", "list")
    assert "member" not in payload
    assert "guild_id" not in payload
    read = parse_interaction(signed(payload)[0])
    assert (read.guild_id, read.permissions) == (None, None)
    assert read.user_id == payload["user"]["id"]


def test_an_autocomplete_marks_the_focused_option() -> None:
    payload = autocomplete("clips", "search", {"channel": "al", "query": ""}, "channel")
    read = parse_interaction(signed(payload)[0])
    assert read.type == 4
    [sub] = read.data["options"]
    assert [o.get("focused", False) for o in sub["options"]] == [True, False]
