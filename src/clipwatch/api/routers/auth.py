"""Web sessions: open one with an API token, close it. (Log in with Twitch joins later.)"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from clipwatch.accounts import service
from clipwatch.accounts.credentials import csrf_token, digest
from clipwatch.api.account_schemas import LoginRead, SessionRead, UserRead
from clipwatch.api.auth import SESSION_COOKIE, Caller, auth_endpoint_limit, client_ip
from clipwatch.api.deps import Session, State
from clipwatch.api.errors import problem_responses
from clipwatch.errors import Unauthenticated

router = APIRouter(prefix="/auth", tags=["auth"])


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
    user = await service.visible_user(session, principal, principal.user_id)
    row, secret = await service.open_session(
        session,
        user,
        scopes=principal.scopes,
        policy=state.session_policy,
        user_agent=request.headers.get("user-agent", ""),
        ip=client_ip(request),
    )
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(state.session_policy.absolute.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=state.settings.base_url.startswith("https://"),
    )
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
async def logout(session: Session, principal: Caller) -> Response:
    if principal is None or principal.via != "session":
        raise Unauthenticated("no session to close")
    await service.revoke_session(session, principal, principal.credential_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
