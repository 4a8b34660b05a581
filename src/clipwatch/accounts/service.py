"""Users, API tokens and sessions: creating them, checking them, revoking them.

Ownership rule: a caller sees and changes only their own things; admins (with the `admin`
scope) see all. Another user's object is NotFound, never Forbidden, so ids cannot be probed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.credentials import (
    csrf_token,
    digest,
    format_scopes,
    new_session_secret,
    new_token,
    parse_scopes,
    same_secret,
    token_prefix,
)
from clipwatch.db.models import ApiToken, User, UserSession
from clipwatch.db.repositories import accounts as repo
from clipwatch.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated

Role = Literal["admin", "moderator", "member"]
ROLES: tuple[Role, ...] = ("member", "moderator", "admin")  # each can do what the one before can
USER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# last_used_at / last_seen_at are written at most this often: not a write per request.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling, and with what."""

    user_id: int
    name: str
    role: str
    scopes: frozenset[str]
    via: Literal["token", "session"]
    credential_id: int
    csrf: str | None = None  # the proof cookie-authenticated writes must carry

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and "admin" in self.scopes

    @property
    def is_moderator(self) -> bool:
        """Hides and unhides clips (docs/moderation.md): a moderator or an admin, with `write`."""
        return self.role in ("moderator", "admin") and "write" in self.scopes

    def can_see(self, user_id: int) -> bool:
        return user_id == self.user_id or self.is_admin


def operator(name: str) -> Principal:
    """The service acting on its own behalf (the CLI, demo mode): an admin with every scope,
    no user or credential behind it."""
    return Principal(0, name, "admin", frozenset({"read", "write", "admin"}), "token", 0)


def _now() -> datetime:
    return datetime.now(UTC)


# --- users ------------------------------------------------------------------------------------


async def create_user(session: AsyncSession, name: str, *, admin: bool = False) -> User:
    if not USER_NAME.match(name):
        raise InvalidInput("a user name is 1-64 letters, digits, '_', '.' or '-'", field="name")
    if await repo.find_user_by_name(session, name):
        raise Conflict(f"a user named {name!r} exists")
    user = User(name=name, role="admin" if admin else "member", created_at=_now())
    user.updated_at = user.created_at
    await repo.add(session, user)
    return user


async def user_for_twitch(session: AsyncSession, twitch_id: str, login: str) -> User:
    """The user linked to this Twitch account, created (as a member) on first login."""
    user = await repo.find_user_by_twitch_id(session, twitch_id)
    if user is not None:
        return user
    name = login if USER_NAME.match(login) else f"twitch-{twitch_id}"
    if await repo.find_user_by_name(session, name):
        name = f"{name[:50]}-{twitch_id}"[:64]
    user = User(name=name, role="member", twitch_id=twitch_id, created_at=_now())
    user.updated_at = user.created_at
    await repo.add(session, user)
    return user


async def set_role(session: AsyncSession, user: User, role: str) -> bool:
    """Make `user` a member, moderator or admin; whether it changed. Their tokens keep their
    scopes, and what a scope allows follows the role: an admin made a member keeps no admin
    power (`Principal.is_admin` asks both)."""
    if role not in ROLES:
        raise InvalidInput(f"a role is one of: {', '.join(ROLES)}", field="role")
    if user.role == role:
        return False
    user.role = role
    user.updated_at = _now()
    await session.flush()
    return True


async def user_by_name(session: AsyncSession, name: str) -> User:
    user = await repo.find_user_by_name(session, name)
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


async def visible_user(session: AsyncSession, principal: Principal, user_id: int) -> User:
    user = await repo.get_user(session, user_id) if principal.can_see(user_id) else None
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


async def rename_user(session: AsyncSession, principal: Principal, name: str) -> User:
    user = await visible_user(session, principal, principal.user_id)
    if name != user.name:
        if not USER_NAME.match(name):
            raise InvalidInput("a user name is 1-64 letters, digits, '_', '.' or '-'", field="name")
        if await repo.find_user_by_name(session, name):
            raise Conflict(f"a user named {name!r} exists")
        user.name = name
        user.updated_at = _now()
        await session.flush()
    return user


# --- API tokens -------------------------------------------------------------------------------


async def create_token(
    session: AsyncSession,
    user: User,
    *,
    name: str,
    scopes: frozenset[str],
    expires_at: datetime | None = None,
    granted_by: Principal | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its plaintext (shown once). A token never exceeds its creator."""
    if not scopes:
        raise InvalidInput("a token needs at least one scope", field="scopes")
    if "admin" in scopes and user.role != "admin":
        raise Forbidden("only admins can hold admin-scoped tokens")
    if granted_by is not None and not scopes <= granted_by.scopes:
        raise Forbidden("a token cannot have scopes its creator's credentials lack")
    now = _now()
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("expiry must be in the future", field="expires_at")
    plaintext, prefix = new_token()
    token = ApiToken(
        user_id=user.id,
        name=name,
        prefix=prefix,
        secret_hash=digest(plaintext),
        scopes=format_scopes(scopes),
        created_at=now,
        expires_at=expires_at,
    )
    await repo.add(session, token)
    return token, plaintext


def _expired(token: ApiToken, now: datetime) -> bool:
    return token.expires_at is not None and token.expires_at <= now


async def authenticate_token(session: AsyncSession, plaintext: str) -> Principal:
    prefix = token_prefix(plaintext)
    token = await repo.find_token_by_prefix(session, prefix) if prefix else None
    if token is None or not same_secret(token.secret_hash, digest(plaintext)):
        raise Unauthenticated("invalid token")
    now = _now()
    if token.revoked_at is not None:
        raise Unauthenticated("token revoked")
    if _expired(token, now):
        raise Unauthenticated("token expired")
    user = await repo.get_user(session, token.user_id)
    if user is None:
        raise Unauthenticated("invalid token")
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        await repo.touch_token(session, token.id, now)
    return Principal(user.id, user.name, user.role, parse_scopes(token.scopes), "token", token.id)


async def tokens_of(
    session: AsyncSession, principal: Principal, user_id: int
) -> Sequence[ApiToken]:
    await visible_user(session, principal, user_id)
    return await repo.list_tokens(session, user_id)


async def revoke_token(session: AsyncSession, principal: Principal, token_id: int) -> ApiToken:
    token = await repo.get_token(session, token_id)
    if token is None or not principal.can_see(token.user_id):
        raise NotFound(f"no token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = _now()
        await session.flush()
    return token


async def token_of(session: AsyncSession, principal: Principal) -> ApiToken | None:
    """The API token a request authenticated with (None for a session)."""
    if principal.via != "token":
        return None
    return await repo.get_token(session, principal.credential_id)


async def revoke_token_by_prefix(session: AsyncSession, prefix: str) -> ApiToken:
    """For the operator's CLI: revoke whatever token this public prefix names."""
    token = await repo.find_token_by_prefix(session, prefix)
    if token is None:
        raise NotFound(f"no token with prefix {prefix}")
    if token.revoked_at is None:
        token.revoked_at = _now()
        await session.flush()
    return token


# --- sessions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta
    key: bytes  # derives CSRF proofs


async def open_session(
    session: AsyncSession,
    user: User,
    *,
    scopes: frozenset[str],
    policy: SessionPolicy,
    user_agent: str = "",
    ip: str = "",
    token: ApiToken | None = None,
) -> tuple[UserSession, str]:
    """A new session (always a new id: never reuse one from before the login). Opened with
    `token`, it has at most the token's scopes and ends when the token ends (expiry or
    revocation)."""
    now = _now()
    secret = new_session_secret()
    expires_at = now + policy.absolute
    if token is not None:
        scopes = scopes & parse_scopes(token.scopes)
        if token.expires_at is not None:
            expires_at = min(expires_at, token.expires_at)
    row = UserSession(
        user_id=user.id,
        secret_hash=digest(secret),
        scopes=format_scopes(scopes),
        created_at=now,
        last_seen_at=now,
        expires_at=expires_at,
        user_agent=user_agent[:256],
        ip=ip[:64],
        token_id=None if token is None else token.id,
    )
    await repo.add(session, row)
    return row, secret


async def authenticate_session(
    session: AsyncSession, secret: str, policy: SessionPolicy
) -> Principal | None:
    """The principal behind a session cookie, or None when it is unknown, revoked or expired."""
    if not 20 <= len(secret) <= 100:
        return None
    row = await repo.find_session_by_hash(session, digest(secret))
    now = _now()
    if (
        row is None
        or row.revoked_at is not None
        or row.expires_at <= now
        or row.last_seen_at + policy.idle <= now
    ):
        return None
    if row.token_id is not None:  # opened with a token: it lives no longer than the token
        token = await repo.get_token(session, row.token_id)
        if token is None or token.revoked_at is not None or _expired(token, now):
            return None
    user = await repo.get_user(session, row.user_id)
    if user is None:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        await repo.touch_session(session, row.id, now)
    return Principal(
        user.id,
        user.name,
        user.role,
        parse_scopes(row.scopes),
        "session",
        row.id,
        csrf=csrf_token(policy.key, row.secret_hash),
    )


async def sessions_of(
    session: AsyncSession, principal: Principal, user_id: int
) -> Sequence[UserSession]:
    await visible_user(session, principal, user_id)
    return await repo.list_sessions(session, user_id, _now())


async def revoke_session(
    session: AsyncSession, principal: Principal, session_id: int
) -> UserSession:
    row = await repo.get_session(session, session_id)
    if row is None or not principal.can_see(row.user_id):
        raise NotFound(f"no session {session_id}")
    if row.revoked_at is None:
        row.revoked_at = _now()
        await session.flush()
    return row
