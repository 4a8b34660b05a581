"""Web sessions: log in with Twitch (authorization code) or with an API token; log out."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts import service
from clipwatch.accounts.credentials import csrf_token, digest, same_secret
from clipwatch.accounts.service import Principal
from clipwatch.api.account_schemas import LoginRead, SessionRead, UserRead
from clipwatch.api.auth import Caller, auth_endpoint_limit, client_ip, session_cookie_name
from clipwatch.api.deps import AppState, Session, State
from clipwatch.api.errors import problem_responses
from clipwatch.db.models import User, UserSession
from clipwatch.errors import BadRequest, Unauthenticated, UpstreamUnavailable
from clipwatch.twitch import user_tokens
from clipwatch.twitch.client import TwitchAuthError

router = APIRouter(prefix="/auth", tags=["auth"])
STATE_COOKIE = "cw_oauth_state"
EVENTSUB_COOKIE = "cw_oauth_eventsub"  # /auth/login?eventsub=true: keep the admin's token
STATE_MAX_AGE = 600  # seconds to finish the consent


def _set_session_cookie(response: Response, state: AppState, secret: str) -> None:
    response.set_cookie(
        session_cookie_name(state.settings),
        secret,
        max_age=int(state.session_policy.absolute.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=state.settings.base_url.startswith("https://"),
    )


def _clear_session_cookie(response: Response, state: AppState) -> None:
    # Secure as it was set: a browser ignores a `__Host-` cookie without it, deletion too.
    response.delete_cookie(
        session_cookie_name(state.settings),
        path="/",
        secure=state.settings.base_url.startswith("https://"),
        httponly=True,
        samesite="lax",
    )


def _callback_url(state: AppState) -> str:
    return f"{state.settings.base_url}/auth/callback"


@router.get(
    "/login",
    status_code=302,
    response_class=RedirectResponse,
    responses=problem_responses({503: "Twitch is not configured"}),
    summary="Log in with Twitch: redirects to Twitch's consent page",
)
async def login(
    state: State,
    eventsub: Annotated[
        bool,
        Query(description="An admin's login also connects its Twitch token for EventSub"),
    ] = False,
) -> RedirectResponse:
    if state.twitch is None:
        raise UpstreamUnavailable("Twitch is not configured (CLIPWATCH_TWITCH_CLIENT_ID/SECRET)")
    nonce = secrets.token_urlsafe(24)
    response = RedirectResponse(
        state.twitch.authorize_url(redirect_uri=_callback_url(state), state=nonce),
        status_code=302,
    )
    if eventsub:  # docs/eventsub.md: the callback keeps the token if the user is an admin
        response.set_cookie(
            EVENTSUB_COOKIE,
            "1",
            max_age=STATE_MAX_AGE,
            path="/auth",
            httponly=True,
            samesite="lax",
            secure=state.settings.base_url.startswith("https://"),
        )
    # Samesite=Lax: the cookie comes back on Twitch's top-level redirect to the callback.
    response.set_cookie(
        STATE_COOKIE,
        nonce,
        max_age=STATE_MAX_AGE,
        path="/auth",
        httponly=True,
        samesite="lax",
        secure=state.settings.base_url.startswith("https://"),
    )
    return response


@router.get(
    "/callback",
    status_code=302,
    response_class=RedirectResponse,
    responses=problem_responses(
        {
            400: "State missing or wrong, or consent refused",
            401: "Twitch refused the code",
            503: "Twitch is not configured or does not answer",
        }
    ),
    summary="Where Twitch sends the browser back: checks `state`, opens a session",
    dependencies=[Depends(auth_endpoint_limit)],
)
async def callback(
    request: Request,
    state: State,
    session: Session,
    oauth_state: Annotated[str, Query(alias="state", min_length=1, max_length=200)],
    code: Annotated[str | None, Query(max_length=200)] = None,  # absent when `error` is given
    error: Annotated[str | None, Query(max_length=200)] = None,
    # Twitch sends it beside `error` (docs/reference/twitch-api.md §1.3); read only to be accepted.
    error_description: Annotated[str | None, Query(max_length=500)] = None,
) -> RedirectResponse:
    if state.twitch is None:
        raise UpstreamUnavailable("Twitch is not configured (CLIPWATCH_TWITCH_CLIENT_ID/SECRET)")
    expected = request.cookies.get(STATE_COOKIE, "")
    if not expected or not oauth_state or not same_secret(expected, oauth_state):
        raise BadRequest("the login state does not match; start again at /auth/login")
    if error or not code:
        raise BadRequest(f"Twitch login did not complete ({error or 'no code'})")
    keep = request.cookies.get(EVENTSUB_COOKIE) == "1"
    try:
        if keep:
            owner, access, refresh = await user_tokens.exchange_login_code(
                state.settings, code, _callback_url(state)
            )
            twitch_id, twitch_login = owner.user_id, owner.login
        else:
            twitch_id, twitch_login = await state.twitch.identify_login(
                code=code, redirect_uri=_callback_url(state)
            )
    except TwitchAuthError:
        raise Unauthenticated("Twitch refused the login") from None
    user = await service.user_for_twitch(session, twitch_id, twitch_login)
    if keep and user.role == "admin":
        await user_tokens.store_user_token(
            session, state.settings, owner, access, refresh, connected_by=user.id
        )
    elif keep:
        await user_tokens.revoke_token(state.settings, access)  # not an admin: not kept
    scopes = {"read", "write", "admin"} if user.role == "admin" else {"read", "write"}
    _row, secret = await service.open_session(
        session,
        user,
        scopes=frozenset(scopes),
        policy=state.session_policy,
        user_agent=request.headers.get("user-agent", ""),
        ip=client_ip(request),
    )
    response = RedirectResponse("/", status_code=302)
    _set_session_cookie(response, state, secret)
    response.delete_cookie(STATE_COOKIE, path="/auth")
    if keep:
        response.delete_cookie(EVENTSUB_COOKIE, path="/auth")
    return response


async def open_token_session(
    request: Request, state: AppState, session: AsyncSession, principal: Principal
) -> tuple[User, UserSession, str]:
    """A web session for a token's holder (POST /auth/token-login and the login page): it gets
    the token's scopes and ends with the token."""
    user = await service.visible_user(session, principal, principal.user_id)
    row, secret = await service.open_session(
        session,
        user,
        scopes=principal.scopes,
        policy=state.session_policy,
        user_agent=request.headers.get("user-agent", ""),
        ip=client_ip(request),
        token=await service.token_of(session, principal),
    )
    return user, row, secret


@router.post(
    "/token-login",
    response_model=LoginRead,
    responses=problem_responses({401: "No valid token", 429: "Rate limited"}),
    dependencies=[Depends(auth_endpoint_limit)],
    summary="Open a web session with an API token (the session gets the token's scopes)",
)
async def token_login(
    request: Request, response: Response, state: State, session: Session, principal: Caller
) -> LoginRead:
    if principal is None or principal.via != "token":
        raise Unauthenticated("send an API token as 'Authorization: Bearer <token>'")
    user, row, secret = await open_token_session(request, state, session, principal)
    _set_session_cookie(response, state, secret)
    return LoginRead(
        user=UserRead.from_user(user),
        session=SessionRead.from_session(row, current_id=row.id),
        csrf_token=csrf_token(state.session_policy.key, digest(secret)),
    )


@router.post(
    "/logout",
    status_code=204,
    responses=problem_responses({401: "Not logged in", 403: "CSRF proof missing"}),
    summary="Close the current web session (it stops working at once)",
)
async def logout(session: Session, state: State, principal: Caller) -> Response:
    if principal is None or principal.via != "session":
        raise Unauthenticated("no session to close")
    await service.revoke_session(session, principal, principal.credential_id)
    response = Response(status_code=204)
    _clear_session_cookie(response, state)
    return response
