"""The message builder: limits, packing, escaping, no pings, templates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from clipwatch.discord import messages, template_budget
from clipwatch.discord.messages import (
    EMBEDS_PER_MESSAGE,
    MESSAGE_EMBED_CHARS,
    SAMPLE,
    TEXT_VARIABLE_MAX,
    ClipView,
    CustomTemplate,
    TemplateFailures,
    build_messages,
    cut,
    embed_chars,
    embed_for,
    escape,
    iter_messages,
    message_problems,
    validate_template,
)
from clipwatch.discord.templates import TemplateProblem
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
    for bad, field, reason in [
        (CustomTemplate(title="{{ title", description=""), "template.title", "Syntax"),
        (CustomTemplate(title="{{ ''.__class__ }}", description=""), "template.title", "attrib"),
        (CustomTemplate(title="", description="{{ range(9) }}"), "template.description", "call"),
        (CustomTemplate(title="{{ views / duration }}", description=""), "template.title", "0 s"),
        (CustomTemplate(title="", description="a\x00b"), "template.description", "control"),
    ]:
        with pytest.raises(InvalidInput) as raised:
            validate_template(bad)
        assert raised.value.field == field
        assert reason in str(raised.value)
    with pytest.raises(InvalidInput):
        build_messages("fancy", [clip(1)])
    escaped = CustomTemplate(title="{{ '\\x00\\x1b' ~ title }}", description="")
    assert build_messages(escaped, [clip(1)])[0]["embeds"][0]["title"] == "clip 1"


def test_a_template_failing_on_a_clip_gives_that_clip_a_card() -> None:
    template = CustomTemplate(title="{{ title }}", description="{{ 100 // views }}%")
    clips = [clip(1, view_count=0), clip(2, view_count=50), clip(3, view_count=0)]
    with pytest.raises(TemplateProblem):
        build_messages(template, clips)
    failures: TemplateFailures = []
    [message] = build_messages(template, clips, template_failures=failures)
    assert [c.id for c, _ in failures] == ["Clip1", "Clip3"]
    assert all("ZeroDivisionError" in str(problem) for _, problem in failures)
    embeds = message["embeds"]
    assert [e["description"] for e in embeds[1:2]] == ["2%"]
    assert [e == embed_for("card", c) for e, c in zip(embeds, clips, strict=True)] == [
        True,
        False,
        True,
    ]


def test_a_messages_renders_share_one_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "MESSAGE_RENDER_SECONDS", -1.0)  # spent before it starts
    template = CustomTemplate(title="{{ title }}", description="{{ views }}")
    failures: TemplateFailures = []
    [message] = build_messages(template, [clip(1), clip(2)], template_failures=failures)
    assert [str(problem) for _, problem in failures] == [
        "template: title: ran out of time (at most 20 ms a render)"
    ] * 2
    assert message["embeds"] == [embed_for("card", clip(1)), embed_for("card", clip(2))]


def test_what_a_template_sees_of_a_clip_is_bounded_and_always_renders() -> None:
    huge = clip(1, title="@everyone " * 10_000, duration=float("nan"), view_count=2**60)
    variables = huge.variables()
    assert len(variables["title"]) <= TEXT_VARIABLE_MAX
    assert variables["title"].endswith("…")
    assert variables["duration"] == 0
    for name in ("card", "compact", "link"):
        assert message_problems(build_messages(name, [huge])[0]) == []


def test_unbatched_messages_hold_one_clip_each() -> None:
    sizes = [n for _, n in iter_messages("card", [clip(i) for i in range(3)], batching=False)]
    assert sizes == [1, 1, 1]
    assert [n for _, n in iter_messages("compact", [clip(i) for i in range(12)])] == [10, 2]


def test_each_message_gets_its_own_render_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages are rendered lazily, just before each is sent: the time the caller spent
    sending one is not taken from the next one's budget (a whole second message's clips ran
    out of time after a slow send)."""
    now = [1000.0]

    class Clock:
        @staticmethod
        def thread_time() -> float:  # the render budgets' clock (template_budget.render_clock)
            return now[0]

    monkeypatch.setattr(template_budget, "time", Clock)
    template = CustomTemplate(title="{{ title }}", description="{{ views }} views")
    clips = [replace(SAMPLE, id=f"c{n}", url=f"https://clips.twitch.tv/c{n}") for n in range(15)]
    failures: TemplateFailures = []
    sizes = []
    for _message, count in iter_messages(template, clips, template_failures=failures):
        sizes.append(count)
        now[0] += 60.0  # the send took a minute
    assert sizes == [10, 5]
    assert failures == []
