"""Secrets clipwatch must keep and use again (webhook tokens): sealed with the secret key.

PyNaCl's SecretBox (XSalsa20-Poly1305) under a key derived from CLIPWATCH_SECRET_KEY: a
database dump alone does not reveal them, and a tampered value fails to open.
"""

from __future__ import annotations

import base64
import hashlib

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from clipwatch.errors import ConfigError


def _box(key: bytes) -> SecretBox:
    return SecretBox(hashlib.sha256(b"clipwatch-secrets:" + key).digest())


def seal(key: bytes, plaintext: str) -> str:
    return base64.urlsafe_b64encode(bytes(_box(key).encrypt(plaintext.encode()))).decode()


def unseal(key: bytes, sealed: str) -> str:
    try:
        return _box(key).decrypt(base64.urlsafe_b64decode(sealed.encode())).decode()
    except (CryptoError, ValueError) as exc:
        raise ConfigError(
            "a stored secret does not open: was CLIPWATCH_SECRET_KEY changed?"
        ) from exc
