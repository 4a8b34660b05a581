"""A route's identity (username, avatar_url): checked at save (422 on the field), sent on
every message of the route (clips and route tests), against the simulator on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.config import Settings
from clipwatch.discord.identity import check_avatar_url, check_username
from clipwatch.errors import InvalidInput
from tests.api.test_accounts import bearer, make_user
from tests.conftest import app_client
from tests.discord.conftest import DiscordSim
from tests.discord.test_threads_forums import drain, queue
from tests.factories import helix_clip

AVATAR = "https://cdn.discordapp.com/avatars/1/abc.png"
HOSTS = ["cdn.discordapp.com"]


@pytest.mark.parametrize(
    "name",
    ["Clyde", "my DISCORD bot", "ClYdE helper", "x" * 81, "", "   ", "bell\x07", "a\u202eb"],
)
def test_refused_usernames(name: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_username(name)
    assert raised.value.field == "username"


def test_accepted_usernames_are_trimmed() -> None:
    assert check_username("  Clip Feed 🎬 ") == "Clip Feed 🎬"
    assert check_username("x" * 80) == "x" * 80


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.discordapp.com/a.png",
        "https://evil.example/a.png",
        "https://cdn.discordapp.com.evil.example/a.png",
        "https://user@cdn.discordapp.com/a.png",
        "https://cdn.discordapp.com:8443/a.png",
        "https://cdn.discordapp.com/",
        "https://cdn.discordapp.com/a b.png",
        "javascript:alert(1)",
        "https://[::1]/a.png",
    ],
)
def test_refused_avatars(url: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_avatar_url(url, HOSTS)
    assert raised.value.field == "avatar_url"


async def test_identity_is_checked_at_save_and_sent_on_every_message(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], discord_sim: DiscordSim
) -> None:
    hook = discord_sim.discord.add_webhook()
    _, alice = await make_user(sessionmaker, "alice")
    config = settings.model_copy(
        update={"discord_api_url": f"{discord_sim.base}/api/v10", "webhook_check": True}
    )
    base = {"name": "r", "webhook_url": hook.pasted_url}
    async with app_client(config) as client:
        for field, value in [
            ("username", "Discord Clips"),
            ("username", "clyde"),
            ("username", "x" * 81),
            ("avatar_url", "https://evil.example/a.png"),
            ("avatar_url", "http://cdn.discordapp.com/a.png"),
        ]:
            answer = await client.post(
                "/api/v1/routes", json={**base, field: value}, headers=bearer(alice)
            )
            assert answer.status_code == 422, (field, value, answer.text)
            assert field in answer.text
        created = await client.post(
            "/api/v1/routes",
            json={**base, "username": "Clip Feed", "avatar_url": AVATAR},
            headers=bearer(alice),
        )
        assert created.status_code == 201, created.text
        route = created.json()
        assert (route["username"], route["avatar_url"]) == ("Clip Feed", AVATAR)
        path = f"/api/v1/routes/{route['id']}"
        refused = await client.patch(path, json={"username": "discord"}, headers=bearer(alice))
        assert refused.status_code == 422
        assert (await client.get(path, headers=bearer(alice))).json()["username"] == "Clip Feed"
        tested = await client.post(f"{path}/test", headers=bearer(alice))
        assert tested.json()["sent"] is True, tested.text
    await queue(sessionmaker, route["id"], [helix_clip() for _ in range(12)])
    await drain(sessionmaker, discord_sim, key=config.signing_key)
    received = discord_sim.discord.received
    assert len(received) == 3  # the test, then 12 clips in two messages
    for message in received:
        assert message.payload["username"] == "Clip Feed"
        assert message.payload["avatar_url"] == AVATAR
