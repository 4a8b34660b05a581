"""Token and session secrets: how they look, how they are hashed, how CSRF proofs derive."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from typing import Literal

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
TOKEN_PREFIX = "cw_"
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
# cw_ + 8 public characters, "_", then 43 characters of secret (32 random bytes).
_TOKEN = re.compile(r"^(cw_[a-z0-9]{8})_[A-Za-z0-9_-]{43}$")


def digest(secret: str) -> str:
    """SHA-256, hex. The secrets are 256 random bits: a slow hash would add nothing."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A new API token and its public prefix."""
    prefix = TOKEN_PREFIX + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def token_prefix(token: str) -> str | None:
    """The public prefix of a well-formed token, or None."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


def new_session_secret() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(key: bytes, session_hash: str) -> str:
    """The proof a cookie-authenticated write must carry in `X-CSRF-Token`.

    Derived from the session, so it needs no storage, and a page on another origin cannot
    read it (the cookie is HttpOnly and the proof is only given in API answers).
    """
    return hmac.new(key, f"csrf:{session_hash}".encode(), hashlib.sha256).hexdigest()[:40]


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def parse_scopes(value: str) -> frozenset[str]:
    return frozenset(s for s in value.split() if s in SCOPES)


def format_scopes(scopes: frozenset[str] | set[str] | tuple[str, ...]) -> str:
    return " ".join(s for s in SCOPES if s in scopes)
