"""Webhook URLs: only Discord's hosts over https, only id and token kept, never echoed."""

from __future__ import annotations

import pytest

from clipwatch.config import load_settings
from clipwatch.discord.webhook_url import parse_webhook_url
from clipwatch.errors import InvalidInput

HOSTS = load_settings(secret_key="x").webhook_allowed_hosts.split(",")
ID = "123456789012345678"
TOKEN = "Ab-_." + "x" * 63


@pytest.mark.parametrize(
    "url",
    [
        f"https://discord.com/api/webhooks/{ID}/{TOKEN}",
        f"https://discordapp.com/api/webhooks/{ID}/{TOKEN}/",
        f"https://ptb.discord.com/api/v10/webhooks/{ID}/{TOKEN}",
        f"https://canary.discord.com:443/api/webhooks/{ID}/{TOKEN}?wait=true",
        f"  https://DISCORD.com/api/webhooks/{ID}/{TOKEN}  ",
    ],
)
def test_good_urls_yield_id_and_token(url: str) -> None:
    target = parse_webhook_url(url, HOSTS)
    assert (target.webhook_id, target.token) == (ID, TOKEN)
    assert TOKEN not in repr(target)


@pytest.mark.parametrize(
    "url",
    [
        f"http://discord.com/api/webhooks/{ID}/{TOKEN}",  # not https
        f"https://evil.example/api/webhooks/{ID}/{TOKEN}",  # not an allowed host
        f"https://discord.com.evil.example/api/webhooks/{ID}/{TOKEN}",
        f"https://127.0.0.1/api/webhooks/{ID}/{TOKEN}",  # loopback
        f"https://10.0.0.8/api/webhooks/{ID}/{TOKEN}",  # private
        f"https://[::1]/api/webhooks/{ID}/{TOKEN}",
        f"https://169.254.169.254/api/webhooks/{ID}/{TOKEN}",  # cloud metadata
        f"https://user:pw@discord.com/api/webhooks/{ID}/{TOKEN}",
        f"https://discord.com:8443/api/webhooks/{ID}/{TOKEN}",
        f"https://discord.com/api/webhooks/{ID}",  # no token
        f"https://discord.com/api/webhooks/12345/{TOKEN}",  # id too short
        f"https://discord.com/api/channels/{ID}/{TOKEN}",
        f"https://discord.com/api/webhooks/{ID}/{TOKEN}/../../x",
        "not a url",
        "",
        "https://discord.com/" + "a" * 400,
    ],
)
def test_everything_else_is_refused_without_echoing_the_url(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_webhook_url(url, HOSTS)
    assert refused.value.field == "webhook_url"
    assert TOKEN not in str(refused.value)
