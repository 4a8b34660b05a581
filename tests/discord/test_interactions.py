"""Slash commands with real Ed25519 keys: signatures, every command, deferral, no pings."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts.service import operator
from clipwatch.api.routers import interactions as endpoint
from clipwatch.clips import moderation
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.discord.interactions import signed_recently
from tests.conftest import app_client
from tests.discord.conftest import DiscordSim
from tests.factories import helix_clip, store_clips

SIGNER = SigningKey.generate()
DEADLINE_S = 10.0


def signed(
    payload: dict[str, Any], signer: SigningKey = SIGNER, *, age_s: float = 0
) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(payload)
    timestamp = str(int(time.time() - age_s))
    signature = signer.sign(timestamp.encode() + body).signature.hex()
    return body, {
        "X-Signature-Ed25519": signature,
        "X-Signature-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def command(sub: str, **options: str) -> dict[str, Any]:
    return {
        "type": 2,
        "id": "1",
        "token": "interaction-token",
        "data": {
            "name": "clips",
            "options": [
                {
                    "type": 1,
                    "name": sub,
                    "options": [{"name": k, "value": v} for k, v in options.items()],
                }
            ],
        },
    }


@pytest.fixture
def discord_settings(settings: Settings, discord_sim: DiscordSim) -> Settings:
    return settings.model_copy(
        update={
            "discord_public_key": SIGNER.verify_key.encode().hex(),
            "discord_application_id": "123456789012345678",
            "discord_api_url": f"{discord_sim.base}/api/v10",
        }
    )


@pytest.fixture
async def archive(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await store_clips(
        sessionmaker,
        [
            helix_clip(
                id="Big", title="insane clutch", view_count=900, created_at="2025-01-01T00:00:00Z"
            ),
            helix_clip(
                id="Small", title="clutch moment", view_count=5, created_at="2025-03-01T00:00:00Z"
            ),
            helix_clip(
                id="Loud",
                title="@everyone **hi**",
                view_count=50,
                created_at="2025-02-01T00:00:00Z",
            ),
        ],
    )


async def post(client: httpx.AsyncClient, payload: dict[str, Any], **kw: Any) -> httpx.Response:
    body, headers = signed(payload, **kw)
    return await client.post("/discord/interactions", content=body, headers=headers)


async def test_signatures_are_checked_first(discord_settings: Settings) -> None:
    async with app_client(discord_settings) as client:
        assert (await post(client, {"type": 1})).json() == {"type": 1}
        forged = await post(client, {"type": 1}, signer=SigningKey.generate())
        assert forged.status_code == 401
        body, headers = signed({"type": 1})
        tampered = await client.post("/discord/interactions", content=body + b" ", headers=headers)
        assert tampered.status_code == 401
        bare = await client.post("/discord/interactions", content=body)
        assert bare.status_code == 401
        garbage = {**headers, "X-Signature-Ed25519": "zz"}
        assert (
            await client.post("/discord/interactions", content=body, headers=garbage)
        ).status_code == 401
        # Validly signed, but a year ago, or for ten minutes from now: a replay.
        for age in (365 * 86_400, -600, 301):
            replayed = await post(client, {"type": 1}, age_s=age)
            assert replayed.status_code == 401, age
        assert (await post(client, {"type": 1}, age_s=240)).json() == {"type": 1}


@given(st.text(max_size=30))
def test_only_a_recent_unix_time_is_fresh(timestamp: str) -> None:
    now = 1_800_000_000.0
    fresh = signed_recently(timestamp, now)
    assert fresh == (
        timestamp.isascii()
        and timestamp.isdigit()
        and len(timestamp) <= 20
        and abs(now - int(timestamp)) <= 300
    )
    assert signed_recently(str(int(now) - 299), now)
    assert not signed_recently(str(int(now) - 301), now)


async def test_every_command_answers_from_the_archive(
    discord_settings: Settings, archive: None
) -> None:
    async with app_client(discord_settings) as client:

        def ids(answer: httpx.Response) -> list[str]:
            assert answer.status_code == 200
            assert answer.json()["type"] == 4
            data = answer.json()["data"]
            assert data["allowed_mentions"] == {"parse": []}
            return [e["url"].rsplit("/", 1)[1] for e in data.get("embeds", [])]

        assert ids(await post(client, command("search", query="clutch"))) == ["Big", "Small"]
        assert ids(await post(client, command("top"))) == ["Big", "Loud", "Small"]
        assert ids(await post(client, command("latest"))) == ["Small", "Loud", "Big"]
        assert len(ids(await post(client, command("random")))) == 1
        loud = await post(client, command("search", query="everyone"))
        assert loud.json()["data"]["embeds"][0]["title"] == "@\u200beveryone \\*\\*hi\\*\\*"
        nothing = await post(client, command("search", query="zzzz"))
        assert nothing.json()["data"]["flags"] == 64  # ephemeral
        assert (await post(client, command("top", channel="nobody"))).json()["data"]["flags"] == 64
        unknown = await post(client, {"type": 2, "data": {"name": "other"}})
        assert unknown.json()["data"]["flags"] == 64


async def test_slash_commands_never_show_a_hidden_clip(
    discord_settings: Settings, archive: None, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with session_scope(sessionmaker) as session:
        await moderation.hide(session, operator("test"), "Big", "not for the server")
    async with app_client(discord_settings) as client:

        def ids(answer: httpx.Response) -> list[str]:
            data = answer.json()["data"]
            return [e["url"].rsplit("/", 1)[1] for e in data.get("embeds", [])]

        assert ids(await post(client, command("search", query="clutch"))) == ["Small"]
        assert ids(await post(client, command("top"))) == ["Loud", "Small"]
        assert ids(await post(client, command("latest"))) == ["Small", "Loud"]
        for _ in range(10):
            assert ids(await post(client, command("random"))) != ["Big"]


async def test_autocomplete_suggests_channels(discord_settings: Settings, archive: None) -> None:
    payload = {
        "type": 4,
        "data": {
            "name": "clips",
            "options": [
                {
                    "type": 1,
                    "name": "top",
                    "options": [{"name": "channel", "value": "alpha", "focused": True}],
                }
            ],
        },
    }
    async with app_client(discord_settings) as client:
        answer = await post(client, payload)
    assert answer.json()["type"] == 8
    assert answer.json()["data"]["choices"] == [{"name": "AlphaStreams", "value": "alphastreams"}]


async def test_a_slow_search_is_deferred_and_followed_up(
    discord_settings: Settings,
    archive: None,
    discord_sim: DiscordSim,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(endpoint, "ANSWER_WITHIN_S", 0.0)  # every search is "slow" now
    async with app_client(discord_settings) as client:
        answer = await post(client, command("search", query="clutch"))
        assert answer.json() == {"type": 5}
        deadline = time.monotonic() + DEADLINE_S
        while not discord_sim.discord.originals:
            assert time.monotonic() < deadline, "no follow-up arrived"
            await asyncio.sleep(0.02)  # polling interval while waiting on the condition above
    app_id, token, message = discord_sim.discord.originals[0]
    assert (app_id, token) == ("123456789012345678", "interaction-token")
    assert [e["url"].rsplit("/", 1)[1] for e in message["embeds"]] == ["Big", "Small"]


def test_register_commands_puts_them_to_discord(tmp_path: Any) -> None:
    import subprocess

    from tests.conftest import free_port
    from tests.processes import CLIPWATCH, wait_until_up

    port = free_port()
    sim = subprocess.Popen(
        [CLIPWATCH, "simulate", "discord", "--port", str(port), "--webhooks", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/_sim/messages", sim, "the Discord simulator")
        env = {
            "PATH": "/usr/bin:/bin",
            "CLIPWATCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db",
            "CLIPWATCH_SECRET_KEY": "x",
            "CLIPWATCH_DISCORD_API_URL": f"http://127.0.0.1:{port}/api/v10",
            "CLIPWATCH_DISCORD_APPLICATION_ID": "123456789012345678",
        }
        run = {"cwd": tmp_path, "capture_output": True, "text": True, "timeout": 60, "check": False}
        missing = subprocess.run([CLIPWATCH, "discord", "register-commands"], env=env, **run)
        assert missing.returncode == 1
        env["CLIPWATCH_DISCORD_BOT_TOKEN"] = "wrong"
        refused = subprocess.run([CLIPWATCH, "discord", "register-commands"], env=env, **run)
        assert refused.returncode == 1
        assert "401" in refused.stderr
        env["CLIPWATCH_DISCORD_BOT_TOKEN"] = "sim-bot-token"
        done = subprocess.run(
            [CLIPWATCH, "discord", "register-commands", "--guild", "42"], env=env, **run
        )
        assert done.returncode == 0, done.stderr
        assert "registered 2 command(s) in guild 42" in done.stdout  # /clips, /clipwatch
    finally:
        sim.terminate()
        sim.wait(timeout=15)


async def test_interactions_are_rate_limited_per_address(discord_settings: Settings) -> None:
    limited = discord_settings.model_copy(update={"rate_limit_interactions": "3/minute"})
    async with app_client(limited) as client:
        answers = [await post(client, {"type": 1}) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        forged = await post(client, {"type": 1}, signer=SigningKey.generate())
        assert forged.status_code == 429  # counted before the signature is even checked
        assert int(forged.headers["retry-after"]) >= 1
        assert forged.headers["content-type"] == "application/problem+json"
