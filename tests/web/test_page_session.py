"""page_session: where a login may send the browser, and what a page's form must carry."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from clipwatch.accounts.service import Principal
from clipwatch.api.page_session import FORM_MAX_BYTES, Form, form_of, safe_next
from clipwatch.errors import BadRequest, Forbidden

VIEWER = Principal(1, "ann", "member", frozenset({"read", "write"}), "session", 9, csrf="proof-1")


def _request(body: bytes, headers: dict[str, str]) -> Request:
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "path": "/me/tokens",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        + [(b"host", b"127.0.0.1:8000")],
    }
    return Request(scope, receive)


FORM = {"content-type": "application/x-www-form-urlencoded"}


async def _form(body: bytes, viewer: Principal | None = VIEWER, **headers: str) -> Form:
    return await form_of(_request(body, {**FORM, **headers}), viewer)


async def test_a_form_with_its_proof_is_read() -> None:
    form = await _form(
        urlencode([("csrf", "proof-1"), ("name", "a b"), ("s", "1"), ("s", "2")]).encode()
    )
    assert form.get("name") == "a b"
    assert form.all("s") == ["1", "2"]
    assert form.get("missing", "x") == "x"
    assert form.has("csrf")
    assert not form.has("missing")


@pytest.mark.parametrize("proof", ["", "proof-2", "proof-1x"])
async def test_a_form_without_the_sessions_proof_is_refused(proof: str) -> None:
    with pytest.raises(Forbidden, match="proof"):
        await _form(urlencode({"csrf": proof}).encode())


async def test_no_proof_is_needed_before_a_session_exists() -> None:
    form = await _form(b"token=abc", viewer=None)
    assert form.get("token") == "abc"


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "http://127.0.0.1:8001"},
        {"referer": "https://evil.example/page"},
    ],
)
async def test_a_form_from_another_site_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(Forbidden, match="another site"):
        await _form(b"csrf=proof-1", viewer=None, **headers)


async def test_a_form_from_this_site_is_taken() -> None:
    form = await _form(
        b"csrf=proof-1", origin="http://127.0.0.1:8000", referer="http://127.0.0.1:8000/me"
    )
    assert form.get("csrf") == "proof-1"


@pytest.mark.parametrize(
    ("body", "headers", "words"),
    [
        (b"csrf=proof-1", {"content-type": "application/json"}, "must be sent as"),
        (b"csrf=proof-1&x=" + b"a" * FORM_MAX_BYTES, {}, "larger than"),
        (b"csrf=proof-1&x=%ff", {}, "not UTF-8"),
        (b"csrf=proof-1&x=a%00b", {}, "NUL"),
        (b"&".join(b"f%d=1" % n for n in range(600)), {}, "more than"),
    ],
)
async def test_bad_forms_are_a_clear_400(body: bytes, headers: dict[str, str], words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        await form_of(_request(body, {**FORM, **headers}), VIEWER)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/me", "/me"),
        ("/?q=a&sort=views", "/?q=a&sort=views"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("me", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_safe_next(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


@given(st.text(max_size=200))
def test_safe_next_never_leaves_the_site(value: str) -> None:
    target = safe_next(value)
    parts = urlsplit(target)
    assert target.startswith("/")
    assert not target.startswith("//")
    assert not parts.scheme
    assert not parts.netloc
    assert "\\" not in target
