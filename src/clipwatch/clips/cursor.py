"""Opaque keyset cursors: signed, bound to the query they came from, useless elsewhere."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from clipwatch.errors import BadRequest

T = TypeVar("T")
_SIG_BYTES = 16
MAX_CURSOR_LENGTH = 512


def fingerprint(parts: Any) -> str:
    """A short digest of the normalised query, so a cursor only continues its own query."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def encode_cursor(key: bytes, payload: dict[str, Any]) -> str:
    body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    sig = hmac.new(key, body, hashlib.sha256).digest()[:_SIG_BYTES]
    return base64.urlsafe_b64encode(sig + body).rstrip(b"=").decode()


def decode_cursor(key: bytes, cursor: str, *, query: str) -> dict[str, Any]:
    """The payload of a cursor made for `query` (a fingerprint); anything else is BadRequest."""
    invalid = BadRequest("cursor is not valid for this query")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    sig, body = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
    expected = hmac.new(key, body, hashlib.sha256).digest()[:_SIG_BYTES]
    if not hmac.compare_digest(sig, expected):
        raise invalid
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid from None
    if not isinstance(payload, dict) or payload.get("q") != query:
        raise invalid
    return payload


def keyset_of(
    key: bytes, cursor: str | None, *, query: str, read: Callable[[dict[str, Any]], T]
) -> T | None:
    """The keyset a cursor made for `query` carries, as `read` takes it out of the payload;
    None without a cursor. A payload `read` cannot take apart is BadRequest, as a bad cursor."""
    if cursor is None:
        return None
    payload = decode_cursor(key, cursor, query=query)
    try:
        return read(payload)
    except (KeyError, TypeError, ValueError):
        raise BadRequest("cursor is not valid for this query") from None
