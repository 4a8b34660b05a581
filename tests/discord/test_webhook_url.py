"""Webhook URLs: only Discord's hosts over https, only id and token kept, never echoed."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from clipwatch.config import load_settings
from clipwatch.discord.webhook_url import (
    MAX_URL_LENGTH,
    WEBHOOK_URL_PATTERN,
    parse_pasted_webhook,
    parse_webhook_url,
)
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


DEFAULT_HOSTS = load_settings(secret_key="x" * 32).webhook_allowed_hosts.split(",")


@given(st.from_regex(WEBHOOK_URL_PATTERN, fullmatch=True))
@settings(max_examples=300, deadline=None)
def test_every_url_the_documented_pattern_allows_is_taken(url: str) -> None:
    """The OpenAPI document's pattern (default hosts) and maxLength promise what the parser
    takes: the fuzzer found `?thread_id=…&` refused although the pattern allows it. (The
    pattern alone allows any length; the document bounds it at MAX_URL_LENGTH.)"""
    assume(len(url) <= MAX_URL_LENGTH)
    pasted = parse_pasted_webhook(url, DEFAULT_HOSTS)
    assert pasted.target.webhook_id in url
    if "thread_id=" in url:
        assert pasted.thread_id is not None
        assert f"thread_id={pasted.thread_id}" in url


def test_a_stray_ampersand_and_a_repeated_thread() -> None:
    base = "https://discord.com/api/webhooks/123456789012345678/" + "a" * 68
    assert parse_pasted_webhook(
        base + "?thread_id=223456789012345678&", DEFAULT_HOSTS
    ).thread_id == ("223456789012345678")
    twice = base + "?thread_id=223456789012345678&thread_id=323456789012345678"
    assert parse_pasted_webhook(twice, DEFAULT_HOSTS).thread_id == "323456789012345678"
