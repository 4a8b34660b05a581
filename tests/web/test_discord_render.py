"""Discord messages rendered as HTML: what we send looks right, anything else never raises,
and nothing from a payload becomes markup."""

from __future__ import annotations

from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clipwatch.discord.messages import (
    SAMPLE,
    CustomTemplate,
    StreamNoticeView,
    embed_for,
    stream_notice_message,
)
from clipwatch.web.discord_render import markdown, render_message

OURS = {
    "div", "span", "strong", "em", "u", "s", "code", "a", "img", "time", "br", "svg", "rect",
}  # fmt: skip
URL_ATTRS = {"href", "src"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser


def _classes(parsed: _Tags, name: str) -> list[dict[str, str | None]]:
    return [a for _, a in parsed.tags if name in (a.get("class") or "").split()]


def _assert_only_our_markup(html: str) -> None:
    for tag, attrs in _parse(html).tags:
        assert tag in OURS, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), name
            assert name != "style"
            if name in URL_ATTRS:
                assert value is not None
                assert value.lower().startswith(("http://", "https://")), value


def test_our_card_embed() -> None:
    payload = {"embeds": [embed_for("card", SAMPLE)], "allowed_mentions": {"parse": []}}
    rendered = render_message(payload)
    parsed = _parse(rendered.html)
    assert rendered.problems == []
    (title,) = _classes(parsed, "dc-title")
    assert title is not None
    links = [a["href"] for t, a in parsed.tags if t == "a"]
    assert SAMPLE.url in links
    # Our builder escapes markdown; the preview shows it literally, as Discord does.
    text = "".join(parsed.text)
    assert "@\u200beveryone **the** _clip_ of the year" in text
    assert [t for t, _ in parsed.tags if t in ("strong", "em")] == []
    # Three inline fields: one row.
    (row,) = _classes(parsed, "dc-field-row")
    assert row is not None
    assert len(_classes(parsed, "dc-inline")) == 3
    assert "Clipped by" in text
    assert "2026-01-01 12:00 UTC" in text
    (bar,) = [a for t, a in parsed.tags if t == "rect"]
    assert bar["fill"] == "#9146ff"
    (image,) = _classes(parsed, "dc-image")
    assert image["src"] == SAMPLE.thumbnail_url
    _assert_only_our_markup(rendered.html)


def test_stream_notice_and_custom_template() -> None:
    notice = StreamNoticeView(
        kind="stream_end",
        channel_name="Chewie",
        channel_login="chewie",
        title="long stream",
        game_name="Chess",
        started_at=datetime(2026, 1, 1, 10, 0),
        ended_at=datetime(2026, 1, 1, 13, 5),
        peak_viewers=1234,
        clips=3,
    )
    rendered = render_message(stream_notice_message(notice))
    text = "".join(_parse(rendered.html).text)
    assert "Chewie: stream ended: 3 clips" in text
    assert "3 h 05 min" in text
    assert "1,234" in text
    assert rendered.problems == []
    custom = embed_for(
        CustomTemplate(title="{{ channel }}!", description="**{{ views }}**"), SAMPLE
    )
    parsed = _parse(render_message({"embeds": [custom]}).html)
    assert ("strong", {}) in parsed.tags
    assert "ChewieMelodies!" in "".join(parsed.text)


def test_inline_fields_in_rows_of_three() -> None:
    fields = [{"name": f"f{i}", "value": "v", "inline": True} for i in range(5)]
    fields.insert(2, {"name": "wide", "value": "v"})
    fields.append({"name": "last", "value": "v", "inline": True})
    parsed = _parse(render_message({"embeds": [{"fields": fields}]}).html)
    html_rows = render_message({"embeds": [{"fields": fields}]}).html.split('class="dc-field-row"')
    names = [
        [chunk for chunk in ("f0", "f1", "wide", "f2", "f3", "f4", "last") if f">{chunk}<" in row]
        for row in html_rows[1:]
    ]
    # f0 f1 | wide | f2 f3 f4 | last
    assert names == [["f0", "f1"], ["wide"], ["f2", "f3", "f4"], ["last"]]
    assert len(_classes(parsed, "dc-inline")) == 6


def test_hostile_text_is_text() -> None:
    payload = {
        "content": "<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=y>",
        "username": "<b>bot</b>",
        "embeds": [
            {
                "title": "<script>alert('t')</script>",
                "url": "javascript:alert(1)",
                "description": '[click](https://ok.example/"onmouseover=x) **<i>b</i>**',
                "author": {"name": "<svg onload=x>", "url": "data:text/html,hi"},
                "image": {"url": "javascript:alert(1)"},
                "fields": [{"name": "<a href=x>", "value": "`<code>`"}],
            }
        ],
    }
    rendered = render_message(payload)
    _assert_only_our_markup(rendered.html)
    text = "".join(_parse(rendered.html).text)
    assert "<script>alert('t')</script>" in text
    assert "<script>alert(1)</script>" in text
    assert "<b>bot</b>" in text
    assert "javascript:" not in " ".join(str(a) for _, a in _parse(rendered.html).tags)
    assert "embeds[0].url: not an http(s) URL, left out" in rendered.problems


def test_markdown_basics() -> None:
    assert markdown("**b** *i* _j_ __u__ ~~s~~ `c`") == (
        "<strong>b</strong> <em>i</em> <em>j</em> <u>u</u> <s>s</s> <code>c</code>"
    )
    assert markdown("[site](https://a.example/x?q=1&r=2)") == (
        '<a href="https://a.example/x?q=1&amp;r=2" rel="noopener noreferrer nofollow" '
        'target="_blank">site</a>'
    )
    assert markdown("[bad](ftp://a.example)") == "[bad](ftp://a.example)"
    assert markdown("\\*not\\* a\nline") == "*not* a<br>line"
    assert markdown("**bold _and it_**") == "<strong>bold <em>and it</em></strong>"
    assert markdown("snake_case_name") == "snake_case_name"
    # A title (a link itself) and a link's label hold no links.
    assert (
        markdown("**a** https://x.example", links=False) == "<strong>a</strong> https://x.example"
    )
    assert markdown("[https://x.example](https://y.example)").count("<a ") == 1


def test_limits_cut_as_discord_counts_them() -> None:
    rendered = render_message(
        {
            "content": "c" * 2500,
            "embeds": [
                {"title": "  " + "t" * 300 + "  ", "fields": [{"name": "n", "value": "v"}] * 30}
            ],
        }
    )
    text = "".join(_parse(rendered.html).text)
    assert "c" * 1999 + "…" in text
    assert "c" * 2000 not in text
    assert "t" * 255 + "…" in text
    assert len(_classes(_parse(rendered.html), "dc-field")) == 25
    assert "content: 2,500 characters, over 2,000; cut" in rendered.problems
    assert "embeds[0].title: 300 characters, over 256; cut" in rendered.problems
    assert "embeds[0].fields: 30 fields, over 25; the rest left out" in rendered.problems
    # 6,000 embed characters in all: the fifth 1,500-character description is cut to nothing.
    many = render_message({"embeds": [{"description": "d" * 1500} for _ in range(5)]})
    assert sum(t.count("d") for t in _parse(many.html).text) <= 6000
    assert any("6,000 embed characters" in p for p in many.problems)


def test_same_url_embeds_show_once_and_wrong_types_are_skipped() -> None:
    one = {"title": "a", "url": "https://x.example/1"}
    rendered = render_message(
        {
            "embeds": [one, {**one, "title": "b"}, "nope", {"title": 5, "color": "red"}],
            "content": 7,
        }
    )
    text = "".join(_parse(rendered.html).text)
    assert "a" in text
    assert ">b<" not in rendered.html
    assert "embeds[2]: not an object, left out" in rendered.problems
    assert "embeds[3].title: not a string, left out" in rendered.problems
    assert "content: not a string, left out" in rendered.problems
    assert render_message(None).problems[0] == "the message is not a JSON object"
    assert render_message({}).problems == ["nothing to show: no content and no embeds"]


_hostile = st.sampled_from(
    [
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "[x](javascript:alert(1))",
        "[y](https://ok.example/\"onclick='z')",
        "**<b>**",
        "`</code><i>`",
        "https://a.example/<svg/onload=1>",
        "\x00\u202e&amp;&lt;",
    ]
)
_text = st.one_of(
    st.text(max_size=60), _hostile, st.builds(lambda a, b: a + b, st.text(max_size=20), _hostile)
)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), _text)
_junk = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=8,
)
_url = st.one_of(_text, st.just("https://ok.example/a.png"), st.just("javascript:alert(1)"), _junk)
_field = st.fixed_dictionaries(
    {},
    optional={"name": st.one_of(_text, _junk), "value": st.one_of(_text, _junk), "inline": _junk},
)
_embed = st.fixed_dictionaries(
    {},
    optional={
        "title": st.one_of(_text, _junk),
        "url": _url,
        "description": st.one_of(_text, _junk),
        "color": st.one_of(st.integers(-5, 0x1FFFFFF), _junk),
        "timestamp": st.one_of(
            st.just("2026-01-01T00:00:00Z"), st.just("0001-01-01T00:00:00+14:00"), _text, _junk
        ),
        "fields": st.one_of(st.lists(st.one_of(_field, _junk), max_size=30), _junk),
        "author": st.one_of(
            st.fixed_dictionaries({}, optional={"name": _text, "url": _url, "icon_url": _url}),
            _junk,
        ),
        "footer": st.one_of(
            st.fixed_dictionaries({}, optional={"text": _text, "icon_url": _url}), _junk
        ),
        "image": st.one_of(st.fixed_dictionaries({}, optional={"url": _url}), _junk),
        "thumbnail": st.one_of(st.fixed_dictionaries({}, optional={"url": _url}), _junk),
    },
)
_payload = st.one_of(
    _junk,
    st.fixed_dictionaries(
        {},
        optional={
            "content": st.one_of(_text, _junk),
            "username": st.one_of(_text, _junk),
            "embeds": st.one_of(st.lists(st.one_of(_embed, _junk), max_size=12), _junk),
        },
    ),
)


@settings(max_examples=300, deadline=None)
@given(payload=_payload)
def test_any_payload_renders_without_raising_or_injecting(payload: Any) -> None:
    rendered = render_message(payload)
    _assert_only_our_markup(rendered.html)
    assert rendered.html.startswith('<div class="dc-message">')
    assert all(isinstance(p, str) for p in rendered.problems)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(_text, st.text(alphabet="*_~`[]()\\<>&\"' \nhtps:/.", max_size=80)))
def test_markdown_never_injects(text: str) -> None:
    html = markdown(text)
    _assert_only_our_markup(html)
    # No markup of the input's own survives as markup: every "<" in the output is one of ours.
    assert html.count("<") == len(_parse(html).tags) + html.count("</")


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_characters="*_~`[]\\\n\r:"), max_size=80))
def test_plain_text_shows_exactly_as_written(text: str) -> None:
    # Without markdown syntax or links, the page shows the text as is (escaped, not altered).
    assert "".join(_parse(markdown(text)).text) == text
