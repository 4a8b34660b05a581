"""The message builder: limits, packing, escaping, no pings, templates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from clipwatch.discord.messages import (
    EMBEDS_PER_MESSAGE,
    MESSAGE_EMBED_CHARS,
    SAMPLE,
    ClipView,
    CustomTemplate,
    build_messages,
    cut,
    embed_chars,
    escape,
    message_problems,
    validate_template,
)
from clipwatch.errors import InvalidInput


def clip(n: int, **changes: object) -> ClipView:
    base = replace(SAMPLE, id=f"Clip{n}", url=f"https://clips.twitch.tv/Clip{n}", title=f"clip {n}")
    return replace(base, created_at=datetime(2026, 1, 1, tzinfo=UTC), **changes)  # type: ignore[arg-type]


def test_everyone_renders_literally_and_pings_nobody() -> None:
    [message] = build_messages("card", [clip(1, title="@everyone **hi**")])
    assert message["allowed_mentions"] == {"parse": []}
    title = message["embeds"][0]["title"]
    assert title == "@\u200beveryone \\*\\*hi\\*\\*"
    assert "@everyone" not in str(message)


@pytest.mark.parametrize("template", ["card", "compact"])
def test_packing_respects_ten_embeds_and_6000_characters(template: str) -> None:
    long_title = "word " * 200  # cut to 256
    clips = [clip(i, title=long_title, broadcaster_name="c" * 3000) for i in range(25)]
    messages = build_messages(template, clips)
    assert sum(len(m["embeds"]) for m in messages) == 25
    for message in messages:
        assert len(message["embeds"]) <= EMBEDS_PER_MESSAGE
        assert sum(embed_chars(e) for e in message["embeds"]) <= MESSAGE_EMBED_CHARS
        assert message_problems(message) == []
    # Short clips fill messages of ten.
    assert [len(m["embeds"]) for m in build_messages(template, [clip(i) for i in range(23)])] == [
        10,
        10,
        3,
    ]


def test_cut_ends_cleanly() -> None:
    text = "alpha beta gamma delta"
    assert cut(text, 100) == text
    assert cut(text, 12) == "alpha beta…"
    assert len(cut("x" * 500, 256)) == 256
    assert not cut(escape("a" * 254 + "*"), 256).endswith("\\…")


def test_link_template_lets_discord_unfurl_the_player() -> None:
    messages = build_messages("link", [clip(1), clip(2)])
    assert [m["content"] for m in messages] == [
        "https://clips.twitch.tv/Clip1",
        "https://clips.twitch.tv/Clip2",
    ]
    assert all(m["allowed_mentions"] == {"parse": []} for m in messages)


def test_custom_templates_are_sandboxed_and_validated() -> None:
    good = CustomTemplate(title="{{ title }}", description="{{ channel }} · {{ views }} views")
    validate_template(good)
    [message] = build_messages(good, [clip(1, title="@here _x_")])
    assert message["embeds"][0]["title"] == "@\u200bhere \\_x\\_"
    for bad in [
        CustomTemplate(title="{{ title", description=""),  # syntax
        CustomTemplate(title="{{ ''.__class__.__mro__ }}", description=""),  # sandbox
    ]:
        with pytest.raises(InvalidInput):
            validate_template(bad)
    with pytest.raises(InvalidInput):
        build_messages("fancy", [clip(1)])
