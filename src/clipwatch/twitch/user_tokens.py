"""The Twitch user token EventSub needs (app tokens get 401 on WebSocket subscriptions).

Stored in `twitch_user_token` (purpose `eventsub`), access and refresh token sealed with
the secret key. Rules (reference/twitch-api.md §1.2, §1.4): validated at start and every
hour; refreshed a few minutes before it expires and on a 401; a refresh answers a NEW
refresh token, which is stored. A refresh Twitch refuses (400/401) marks the token failed
(`last_error`, a status problem): EventSub stops until an admin connects a token again.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from clipwatch.accounts.secrets import seal, unseal
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.db.repositories import eventsub as rows
from clipwatch.errors import ConfigError, InvalidInput
from clipwatch.monitoring import metrics
from clipwatch.outbound import http_client
from clipwatch.twitch.client import TwitchAuthError, TwitchError
from clipwatch.twitch.helix import clean_text, usable_id

log = structlog.get_logger("clipwatch.eventsub")
VALIDATE_EVERY = timedelta(hours=1)
REFRESH_BEFORE = timedelta(minutes=5)  # refresh this long before Twitch says it expires


def _now() -> datetime:
    return datetime.now(UTC)


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class UserTokenFailed(TwitchAuthError):
    """Twitch refused the user token and its refresh: someone must connect a new one."""


@dataclass(frozen=True)
class TokenOwner:
    user_id: str
    login: str
    client_id: str
    scopes: list[str]
    expires_in: int | None


def _expiry(now: datetime, expires_in: Any) -> datetime | None:
    if isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0:
        return now + timedelta(seconds=expires_in)
    return None


async def validate_token(http: httpx.AsyncClient, auth_url: str, token: str) -> TokenOwner | None:
    """Who the token belongs to; None when Twitch refuses it (401). TwitchError when Twitch
    cannot tell now (no answer, 5xx)."""
    try:
        answer = await http.get(f"{auth_url}/validate", headers={"Authorization": f"OAuth {token}"})
    except httpx.TransportError as exc:
        metrics.count_twitch_request("/validate", None)
        raise TwitchError(f"Twitch did not answer /validate ({type(exc).__name__})") from None
    metrics.count_twitch_request("/validate", answer.status_code)
    if answer.status_code in (400, 401, 403):
        return None
    if answer.status_code != 200:
        raise TwitchError(f"Twitch answered {answer.status_code} on /validate")
    body = _json(answer)
    scopes = body.get("scopes")
    expires_in = body.get("expires_in")
    return TokenOwner(
        user_id=usable_id(body.get("user_id"), 64) or "",
        login=clean_text(body["login"], 64) if isinstance(body.get("login"), str) else "",
        client_id=body["client_id"] if isinstance(body.get("client_id"), str) else "",
        scopes=[s for s in scopes if isinstance(s, str)][:50] if isinstance(scopes, list) else [],
        expires_in=expires_in if isinstance(expires_in, int) else None,
    )


async def refresh_grant(
    http: httpx.AsyncClient, settings: Settings, refresh_token: str
) -> tuple[str, str | None, int | None]:
    """A new access token (and the new refresh token) for `refresh_token`. UserTokenFailed
    when Twitch refuses the grant (400/401), TwitchError when it does not answer."""
    try:
        answer = await http.post(
            f"{settings.twitch_auth_url}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": settings.twitch_client_id,
                "client_secret": settings.twitch_client_secret,
            },
        )
    except httpx.TransportError as exc:
        metrics.count_twitch_request("/token", None)
        raise TwitchError(f"Twitch did not answer the refresh ({type(exc).__name__})") from None
    metrics.count_twitch_request("/token", answer.status_code)
    if answer.status_code in (400, 401, 403):
        raise UserTokenFailed(
            f"Twitch refused to refresh the user token ({answer.status_code})",
            status=answer.status_code,
        )
    body = _json(answer)
    access = body.get("access_token")
    if answer.status_code != 200 or not isinstance(access, str) or not access:
        raise TwitchError(f"Twitch answered {answer.status_code} on the refresh, with no token")
    new_refresh = body.get("refresh_token")
    expires_in = body.get("expires_in")
    return (
        access,
        new_refresh if isinstance(new_refresh, str) and new_refresh else None,
        expires_in if isinstance(expires_in, int) else None,
    )


async def check_user_token(
    settings: Settings, access_token: str, *, http: httpx.AsyncClient | None = None
) -> TokenOwner:
    """Whose token this is, by /validate; InvalidInput when it is no user token of our
    client id."""
    if not settings.twitch_client_id:
        raise ConfigError("Twitch is not configured (CLIPWATCH_TWITCH_CLIENT_ID/SECRET)")
    own = http is None
    http = http or http_client(timeout=10.0)
    try:
        owner = await validate_token(http, settings.twitch_auth_url, access_token)
    finally:
        if own:
            await http.aclose()
    if owner is None:
        raise InvalidInput("Twitch refused the token (/oauth2/validate answered 401)")
    if not owner.user_id:
        raise InvalidInput("this is an app token: EventSub over WebSocket needs a user token")
    if owner.client_id and owner.client_id != settings.twitch_client_id:
        raise InvalidInput("the token belongs to another client id than CLIPWATCH_TWITCH_CLIENT_ID")
    return owner


async def store_user_token(
    session: AsyncSession,
    settings: Settings,
    owner: TokenOwner,
    access_token: str,
    refresh_token: str | None,
    *,
    connected_by: int | None = None,
) -> None:
    """Store a checked token sealed for EventSub (replacing any other, its error cleared);
    what the old token lost by revocation may be tried again."""
    now = _now()
    key = settings.signing_key
    await rows.save_user_token(
        session,
        twitch_user_id=owner.user_id,
        login=owner.login or owner.user_id,
        access_token_sealed=seal(key, access_token),
        refresh_token_sealed=seal(key, refresh_token) if refresh_token else None,
        scopes=owner.scopes,
        expires_at=_expiry(now, owner.expires_in),
        validated_at=now,
        connected_by=connected_by,
        now=now,
    )
    await rows.forget_revoked(session)
    log.info("eventsub_token_connected", login=owner.login, user_id=owner.user_id)


async def connect_user_token(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    access_token: str,
    refresh_token: str | None,
    *,
    connected_by: int | None = None,
    http: httpx.AsyncClient | None = None,
) -> TokenOwner:
    """Check a user token with /validate, then store it (its own transaction)."""
    owner = await check_user_token(settings, access_token, http=http)
    async with session_scope(sessionmaker) as session:
        await store_user_token(
            session, settings, owner, access_token, refresh_token, connected_by=connected_by
        )
    return owner


async def exchange_login_code(
    settings: Settings, code: str, redirect_uri: str, *, http: httpx.AsyncClient | None = None
) -> tuple[TokenOwner, str, str | None]:
    """The login's code exchanged for its user token, kept (`/auth/login?eventsub=true`): the
    owner, the access token and the refresh token. TwitchAuthError when Twitch refuses."""
    own = http is None
    http = http or http_client(timeout=10.0)
    try:
        try:
            answer = await http.post(
                f"{settings.twitch_auth_url}/token",
                data={
                    "client_id": settings.twitch_client_id,
                    "client_secret": settings.twitch_client_secret,
                    "code": code,
                    "grant_type": "authorization_code",
                    "redirect_uri": redirect_uri,
                },
            )
        except httpx.TransportError as exc:
            metrics.count_twitch_request("/token", None)
            raise TwitchError(f"Twitch did not answer ({type(exc).__name__})") from None
        metrics.count_twitch_request("/token", answer.status_code)
        body = _json(answer)
        access = body.get("access_token")
        if answer.status_code != 200 or not isinstance(access, str) or not access:
            raise TwitchAuthError("Twitch refused the login code", status=answer.status_code)
        refresh = body.get("refresh_token")
        try:
            owner = await check_user_token(settings, access, http=http)
        except InvalidInput as exc:
            raise TwitchAuthError(str(exc)) from None
        return owner, access, refresh if isinstance(refresh, str) and refresh else None
    finally:
        if own:
            await http.aclose()


async def revoke_token(settings: Settings, token: str) -> None:
    """Give a user token back to Twitch (best effort: one we will not keep)."""
    async with http_client(timeout=10.0) as http:
        with contextlib.suppress(httpx.TransportError):
            await http.post(
                f"{settings.twitch_auth_url}/revoke",
                data={"client_id": settings.twitch_client_id, "token": token},
            )


class UserTokenKeeper:
    """The stored token as the socket's holder uses it: validated hourly, refreshed before
    expiry and on a 401, the refreshed pair stored at once."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.http = http
        self.failed: str | None = None
        self.login: str | None = None
        self.user_id: str | None = None
        self.expires_at: datetime | None = None
        self.refreshes = 0
        self.generation = 0  # counts tokens connected (not our own refreshes)
        self._access: str | None = None
        self._refresh: str | None = None
        self._sealed: str | None = None
        self._validated_at: datetime | None = None
        self._lock = asyncio.Lock()  # one refresh at a time: the socket's and the renewal's

    @property
    def loaded(self) -> bool:
        return self._access is not None and self.failed is None

    async def load(self) -> bool:
        """Read the stored token; False when there is none or it failed."""
        async with session_scope(self.sessionmaker) as session:
            row = await rows.user_token(session)
            if row is None:
                self._access = None
                self.failed = None
                return False
            self.failed = row.last_error
            if row.access_token_sealed == self._sealed and self.failed is None:
                return True  # unchanged
            try:
                self._access = unseal(self.settings.signing_key, row.access_token_sealed)
                self._refresh = (
                    unseal(self.settings.signing_key, row.refresh_token_sealed)
                    if row.refresh_token_sealed
                    else None
                )
            except ConfigError as exc:
                self.failed = str(exc)
                return False
            self._sealed = row.access_token_sealed
            self.generation += 1  # another token than the one we used (a connect)
            self.login, self.user_id = row.login, row.twitch_user_id
            self.expires_at = row.expires_at
            self._validated_at = row.validated_at
        return self.failed is None

    def revalidate_soon(self) -> None:
        """Ask Twitch about the token at the next use (an authorization was revoked)."""
        self._validated_at = None

    async def access_token(self) -> str:
        """The token to use now: validated within the hour and not about to expire."""
        async with self._lock:
            return await self._access_token()

    async def refresh(self, reason: str, used: str | None = None) -> str:
        """A new access token by the refresh grant (on a 401: `used` is the token refused;
        if another caller refreshed it meanwhile, theirs is the answer: a refresh token
        works once)."""
        async with self._lock:
            if used is not None and self._access is not None and used != self._access:
                return self._access
            return await self._refresh_now(reason)

    async def _access_token(self) -> str:
        if self._access is None or self.failed is not None:
            raise UserTokenFailed(self.failed or "no user token is connected")
        now = _now()
        if self._validated_at is None or now - self._validated_at >= VALIDATE_EVERY:
            owner = await validate_token(self.http, self.settings.twitch_auth_url, self._access)
            if owner is None:
                return await self._refresh_now("validate answered 401")
            self._validated_at = now
            self.expires_at = _expiry(now, owner.expires_in) or self.expires_at
            async with session_scope(self.sessionmaker) as session:
                await rows.mark_validated(session, expires_at=self.expires_at, now=now)
        if self.expires_at is not None and self.expires_at - now <= REFRESH_BEFORE:
            return await self._refresh_now("about to expire")
        return self._access

    async def _refresh_now(self, reason: str) -> str:
        if self._refresh is None:
            await self._fail(f"the user token was refused ({reason}) and there is no refresh token")
        assert self._refresh is not None
        try:
            access, new_refresh, expires_in = await refresh_grant(
                self.http, self.settings, self._refresh
            )
        except UserTokenFailed as exc:
            await self._fail(str(exc))
            raise
        now = _now()
        refresh = new_refresh or self._refresh
        sealed = seal(self.settings.signing_key, access)
        async with session_scope(self.sessionmaker) as session:
            stored = await rows.update_user_token(
                session,
                expected_access_sealed=self._sealed or "",
                access_token_sealed=sealed,
                refresh_token_sealed=seal(self.settings.signing_key, refresh),
                expires_at=_expiry(now, expires_in),
                validated_at=now,
                now=now,
            )
        if not stored:
            # Someone connected another token meanwhile: that one wins.
            log.info("eventsub_token_replaced")
            if not await self.load():
                raise UserTokenFailed(self.failed or "the user token was removed")
            assert self._access is not None
            return self._access
        self.refreshes += 1
        metrics.TWITCH_TOKEN_RENEWALS.inc()
        self._access, self._refresh, self._sealed = access, refresh, sealed
        self._validated_at = now
        self.expires_at = _expiry(now, expires_in)
        log.info("eventsub_token_refreshed", reason=reason, login=self.login)
        return access

    async def mark_failed(self, error: str) -> None:
        """Twitch refused the token for good: stored, so status shows it and EventSub stays
        off until a token is connected again."""
        if self.failed == error:
            return
        self.failed = error
        log.warning("eventsub_token_failed", error=error, login=self.login)
        metrics.TWITCH_AUTH_FAILURES.inc()
        async with session_scope(self.sessionmaker) as session:
            await rows.mark_token_failed(session, error=error, now=_now())

    async def _fail(self, error: str) -> None:
        await self.mark_failed(error)
        raise UserTokenFailed(error)
