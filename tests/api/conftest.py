"""A real `clipwatch serve` process over a seeded database, for the API fuzz test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from clipwatch.accounts import service
from clipwatch.clips.importer import import_clips
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine, create_sessionmaker, session_scope
from clipwatch.twitch.synthetic import World
from tests.conftest import TEST_SECRET, empty_tables
from tests.processes import serving, simulator, twitch_simulator

SEED_CLIPS = 400


# The fuzz token's id is far from the small ids a fuzzer tries first on DELETE /me/tokens/{id}.
FUZZ_TOKEN_ID = 987_654_321_987


@dataclass(frozen=True)
class LiveServer:
    base: str
    token: str  # an admin's token with every scope


async def seed(url: str) -> str:
    """Clips, and an admin with a token; returns the token."""
    engine = create_engine(load_settings(database_url=url, secret_key=TEST_SECRET))
    try:
        await empty_tables(engine)
        world = World(seed=3, channels=8, games=10, vocabulary=300, creators=50)
        lines = [orjson.dumps(c) for c in world.clips(SEED_CLIPS)]
        sessionmaker = create_sessionmaker(engine)
        await import_clips(sessionmaker, lines)
        async with session_scope(sessionmaker) as session:
            admin = await service.create_user(session, "fuzzadmin", admin=True)
            token, plaintext = await service.create_token(
                session, admin, name="fuzz", scopes=frozenset({"read", "write", "admin"})
            )
            token.id = FUZZ_TOKEN_ID
        return plaintext
    finally:
        await engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server running on a freshly seeded database of the given kind."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    token = asyncio.run(seed(url))
    workdir: Path = tmp_path_factory.mktemp("server")
    twitch_args = (
        "--channel",
        "fuzzchannel:20",
        "--years",
        "0.1",
        "--points-per-minute",
        "1000000",
    )
    with (
        # Twitch is the simulator: POST /channels really resolves logins.
        twitch_simulator(*twitch_args) as twitch,
        simulator("discord") as (discord_base, _discord),
    ):
        env = {
            **twitch.env(url),
            "CLIPWATCH_DISCORD_API_URL": f"{discord_base}/api/v10",
            "CLIPWATCH_LOG_LEVEL": "warning",
            "CLIPWATCH_LOG_FORMAT": "json",
            # The fuzzer must reach the handlers; the limiter has its own tests.
            "CLIPWATCH_RATE_LIMIT_ANONYMOUS": "1000000/minute",
            "CLIPWATCH_RATE_LIMIT_AUTH": "1000000/minute",
            "CLIPWATCH_RATE_LIMIT_TOKEN": "1000000/minute",
            "CLIPWATCH_RATE_LIMIT_USER": "1000000/minute",
            # The Alertmanager receiver takes the fuzzer's token too, so it is fuzzed on.
            "CLIPWATCH_ALERTMANAGER_TOKEN": token,
            # Every made-up webhook would be a 404 from Discord, and Discord (as its
            # simulator) bans an address that earns many: then every save is a 503. The check
            # has its own tests against the simulator (tests/discord/test_webhook_check.py).
            "CLIPWATCH_WEBHOOK_CHECK": "false",
        }
        # The fuzzer is for the API: the worker (syncing the simulator) is left out.
        with serving(workdir, env, "--no-access-log", "--no-worker", log_name="server.log") as (
            base,
            _server,
        ):
            yield LiveServer(base, token)
        errors = (workdir / "server.log").read_text()
        assert "unhandled_error" not in errors, errors
