"""Who is calling: bearer tokens, session cookies with CSRF proofs, scopes, rate limits.

Every `/api/v1` and `/auth` route depends on `caller`, which authenticates (a bad token is a
401, never a silent downgrade to anonymous), checks the CSRF proof of cookie-authenticated
writes, and counts the request against its limits: per token and per user when
authenticated, per client IP otherwise. The decision goes on `request.state` for the
headers middleware; a refusal is a 429 with `Retry-After`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from clipwatch.accounts import service
from clipwatch.accounts.credentials import same_secret
from clipwatch.accounts.ratelimit import Decision, stricter
from clipwatch.accounts.service import Principal
from clipwatch.api.deps import Session, State
from clipwatch.config import Settings
from clipwatch.errors import Forbidden, RateLimited, Unauthenticated

SESSION_COOKIE = "cw_session"
# Over https the cookie is `__Host-cw_session`: a browser keeps a `__Host-` cookie only when it
# is Secure, for Path=/ and without Domain, so no other host (a sibling subdomain) can set one
# that shadows it, and no plain-http answer can overwrite it.
HOST_ONLY_SESSION_COOKIE = f"__Host-{SESSION_COOKIE}"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_cookie_name(settings: Settings) -> str:
    https = settings.base_url.startswith("https://")
    return HOST_ONLY_SESSION_COOKIE if https else SESSION_COOKIE


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _authenticate(request: Request, state: State, session: Session) -> Principal | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("use 'Authorization: Bearer <token>'")
        return await service.authenticate_token(session, value.strip())
    secret = request.cookies.get(session_cookie_name(state.settings))
    if not secret:
        return None
    principal = await service.authenticate_session(session, secret, state.session_policy)
    if principal is not None and request.method not in SAFE_METHODS:
        proof = request.headers.get(CSRF_HEADER, "")
        if principal.csrf is None or not same_secret(proof, principal.csrf):
            raise Forbidden(
                f"a cookie-authenticated {request.method} needs the {CSRF_HEADER} header"
            )
    return principal


async def _limit(request: Request, state: State, decisions: list[Decision]) -> None:
    decision = decisions[0]
    for other in decisions[1:]:
        decision = stricter(decision, other)
    request.state.rate_limit = decision
    if not decision.allowed:
        raise RateLimited(
            f"too many requests; try again in {decision.reset_after} s",
            retry_after=max(decision.reset_after, 1),
            headers=decision.headers(),
        )


async def caller(request: Request, state: State, session: Session) -> Principal | None:
    settings, limiter = state.settings, state.limiter
    try:
        principal = await _authenticate(request, state, session)
    except Unauthenticated:
        # Failed credentials count against the caller's address at the strict rate.
        await _limit(
            request,
            state,
            [await limiter.hit(settings.rate_limit_auth, "auth", client_ip(request))],
        )
        raise
    if principal is None:
        # Counted already when the cache layer in front of the app saw this request.
        counted: Decision | None = getattr(request.state, "rate_limit", None)
        decisions = [
            counted or await limiter.hit(settings.rate_limit_anonymous, "ip", client_ip(request))
        ]
    else:
        decisions = [await limiter.hit(settings.rate_limit_user, "user", str(principal.user_id))]
        if principal.via == "token":
            decisions.append(
                await limiter.hit(settings.rate_limit_token, "token", str(principal.credential_id))
            )
    await _limit(request, state, decisions)
    return principal


async def auth_endpoint_limit(request: Request, state: State) -> None:
    """The stricter limit of endpoints that mint credentials, per client address."""
    decision = await state.limiter.hit(state.settings.rate_limit_auth, "auth", client_ip(request))
    previous: Decision | None = getattr(request.state, "rate_limit", None)
    await _limit(request, state, [decision] if previous is None else [previous, decision])


async def interactions_limit(request: Request, state: State) -> None:
    """Discord's slash-command callbacks, per client address."""
    limit = state.settings.rate_limit_interactions
    await _limit(
        request, state, [await state.limiter.hit(limit, "interactions", client_ip(request))]
    )


Caller = Annotated[Principal | None, Depends(caller)]


def _require(scope: str) -> object:
    async def dependency(principal: Caller) -> Principal:
        if principal is None:
            raise Unauthenticated("this needs an API token or a session")
        if scope not in principal.scopes or (scope == "admin" and not principal.is_admin):
            raise Forbidden(f"this needs the {scope!r} scope")
        return principal

    return Depends(dependency)


async def _moderator(principal: Caller) -> Principal:
    if principal is None:
        raise Unauthenticated("this needs an API token or a session")
    if not principal.is_moderator:
        raise Forbidden("this needs a moderator (or an admin) with the 'write' scope")
    return principal


Reader = Annotated[Principal, _require("read")]
Moderator = Annotated[Principal, Depends(_moderator)]
Writer = Annotated[Principal, _require("write")]
Admin = Annotated[Principal, _require("admin")]
