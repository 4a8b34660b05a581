"""The worker's tests drive it against the Twitch simulator of tests/twitch."""

from tests.twitch.conftest import make_sim, sim, twitch_settings  # noqa: F401
