"""Token and session secrets: shapes, hashes, CSRF proofs."""

from __future__ import annotations

from clipwatch.accounts.credentials import (
    csrf_token,
    digest,
    format_scopes,
    new_token,
    parse_scopes,
    token_prefix,
)


def test_tokens_are_random_and_carry_their_public_prefix() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for plaintext, prefix in tokens:
        assert plaintext.startswith(prefix + "_")
        assert len(prefix) == 11
        assert token_prefix(plaintext) == prefix
        assert digest(plaintext) != plaintext
        assert len(digest(plaintext)) == 64


def test_malformed_tokens_have_no_prefix() -> None:
    plaintext, _ = new_token()
    for bad in [
        "",
        "cw_",
        plaintext[:-1],
        plaintext + "x",
        "xx" + plaintext[2:],
        plaintext.upper(),
    ]:
        assert token_prefix(bad) is None, bad


def test_csrf_proof_depends_on_session_and_key() -> None:
    a, b = digest("session-a"), digest("session-b")
    assert csrf_token(b"k1", a) == csrf_token(b"k1", a)
    assert csrf_token(b"k1", a) != csrf_token(b"k1", b)
    assert csrf_token(b"k1", a) != csrf_token(b"k2", a)


def test_scopes_round_trip_and_ignore_unknown_words() -> None:
    assert parse_scopes("write read bogus") == {"read", "write"}
    assert format_scopes({"admin", "read"}) == "read admin"
    assert parse_scopes(format_scopes({"read", "write", "admin"})) == {"read", "write", "admin"}
