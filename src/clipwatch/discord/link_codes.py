"""One-time codes that link a Discord server to a clipwatch account (`/clipwatch link`).

Only a code's HMAC (under the service's key) is stored; a code lasts 10 minutes and is used
once; an account has one live code at a time (a new one replaces it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.db.repositories import discord_links as repo

LINK_CODE_TTL = timedelta(minutes=10)
# No 0/O, 1/I/L, U: read aloud or copied by eye without doubt. 12 characters: ~59 bits.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
CODE_LENGTH = 12


@dataclass(frozen=True)
class LinkCode:
    code: str
    expires_at: datetime


def normalize_code(text: str) -> str:
    return "".join(c for c in text.upper() if c.isalnum())


def code_hash(key: bytes, code: str) -> str:
    return hmac.new(key, normalize_code(code).encode(), hashlib.sha256).hexdigest()


async def new_link_code(session: AsyncSession, user_id: int, *, key: bytes) -> LinkCode:
    """A one-time code that links a server to this account (replacing the account's last)."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    code = "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))
    now = datetime.now(UTC)
    expires_at = now + LINK_CODE_TTL
    await repo.replace_link_code(session, user_id, code_hash(key, code), expires_at, now)
    return LinkCode(code, expires_at)
