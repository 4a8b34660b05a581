"""The signed-in person's pages: /login (with a token, or with Twitch), /logout, /me
(preferences, my API tokens, my sessions), /me/feed. docs/web.md, "Me pages".

Every read and write goes through the services the API's /me routes call, with the same
pydantic models; a form's mistakes come back on the form, next to their field."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from clipwatch.accounts import preferences, service
from clipwatch.accounts.service import Principal
from clipwatch.api.account_schemas import (
    PreferencesPut,
    PreferencesRead,
    SessionRead,
    TokenCreate,
    TokenRead,
)
from clipwatch.api.auth import _limit, auth_endpoint_limit, client_ip
from clipwatch.api.clip_filters import apply_preferences, clips_answer
from clipwatch.api.deps import AppState, Session, State
from clipwatch.api.errors import _plain_message
from clipwatch.api.page_session import LOGIN_PATH, LOGOUT_PATH, Member, Viewer, form_of, see_other
from clipwatch.api.page_session import safe_next as _safe_next
from clipwatch.api.params import Cursor
from clipwatch.api.routers.auth import (
    _clear_session_cookie,
    _set_session_cookie,
    open_token_session,
)
from clipwatch.api.routers.me import Id
from clipwatch.api.routers.pages import PAGE_DEPENDENCIES, PAGE_TAG, _common, _html
from clipwatch.clips.search import ClipSearch
from clipwatch.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from clipwatch.web.render import PAGE_SIZE, render

router = APIRouter(include_in_schema=False, tags=[PAGE_TAG], dependencies=PAGE_DEPENDENCIES)
ME_PATH = "/me"
FEED_PATH = "/me/feed"
# Notices after a POST-redirect-GET: `?done=<code>`.
LoginDone = Literal["token-revoked", "session-revoked"]
LOGIN_NOTICES: dict[str, str] = {
    "token-revoked": "You revoked the API token this session was opened with, so you are "
    "signed out. Log in again with another token.",
    "session-revoked": "You revoked this browser's session, so you are signed out.",
}
MeDone = Literal["prefs", "token-revoked", "session-revoked"]
ME_NOTICES: dict[str, str] = {
    "prefs": "Preferences saved.",
    "token-revoked": "Token revoked: it no longer works.",
    "session-revoked": "Session revoked: that browser is signed out.",
}
SORTS = (
    ("relevance", "Best match"),
    ("newest", "Newest"),
    ("oldest", "Oldest"),
    ("views", "Most viewed"),
)
PREFERENCE_FIELDS = ("channels", "games", "languages", "min_views", "default_sort", "time_zone")
Next = Annotated[str | None, Query(alias="next", max_length=2000)]


def safe_next(value: str | None) -> str:
    return _safe_next(value, ME_PATH)


def _needs(viewer: Principal, scope: str) -> None:
    """The API's scope rule (auth._require) for a session opened with a narrower token."""
    if scope not in viewer.scopes:
        raise Forbidden(f"this needs the {scope!r} scope; log in with a token that has it")


def _number(value: str) -> int | str | None:
    """A form's whole number for a strict model: blank is None; digits are an int; anything
    else stays text, so the model names the field ('must be a whole number')."""
    value = value.strip()
    if value == "":
        return None
    if value.isascii() and value.isdigit() and len(value) <= 30:
        return int(value)
    return value


def _items(text: str, *, commas: bool) -> list[str]:
    """One entry a line (and, where names never hold one, a comma or a space)."""
    if commas:
        text = text.replace(",", "\n").replace(" ", "\n")
    return [line.strip() for line in text.splitlines() if line.strip()]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _shown(value: str) -> str:
    """A field's text as the form shows it back: control characters (which the model
    refuses anyway) never reach the HTML."""
    return _CONTROL.sub("\N{REPLACEMENT CHARACTER}", value)


def _field_errors(exc: ValidationError) -> dict[str, str]:
    """The model's errors in the API's words, the first per field ('entry 3: ...' in lists)."""
    errors: dict[str, str] = {}
    for err in exc.errors():
        location = err.get("loc", ())
        field = str(location[0]) if location else "form"
        message = _plain_message(dict(err))
        if len(location) > 1 and isinstance(location[1], int):
            message = f"entry {location[1] + 1}: {message}"
        errors.setdefault(field, message)
    return errors


def _logged_out(path: str, state: AppState) -> Response:
    response = see_other(path)
    _clear_session_cookie(response, state)
    return response


# --- Log in, log out ------------------------------------------------------------------------


def _login_page(
    state: AppState,
    request: Request,
    *,
    next_path: str,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    body = render(
        "login.html",
        **_common(state, request),
        next=next_path,
        error=error,
        notice=notice,
        twitch=state.twitch is not None,
    )
    return _html(body, status)


@router.get(LOGIN_PATH, response_class=HTMLResponse)
async def login_page(
    request: Request,
    state: State,
    viewer: Viewer,
    next_path: Next = None,
    done: LoginDone | None = None,
) -> Response:
    target = safe_next(next_path)
    if viewer is not None:
        return see_other(target)
    notice = LOGIN_NOTICES[done] if done else None
    return _login_page(state, request, next_path=target, notice=notice)


@router.post(LOGIN_PATH, response_class=HTMLResponse)
async def log_in(request: Request, state: State, session: Session, viewer: Viewer) -> Response:
    # No proof to check: there is no session yet (form_of still checks type, size, origin).
    form = await form_of(request, None)
    target = safe_next(form.get("next"))
    if viewer is not None:
        return see_other(target)
    try:
        principal = await service.authenticate_token(session, form.get("token").strip())
    except Unauthenticated as exc:
        # As the API counts a bad credential: the caller's address, at the strict rate.
        limit = state.settings.rate_limit_auth
        await _limit(request, state, [await state.limiter.hit(limit, "auth", client_ip(request))])
        reason = "enter a token" if not form.get("token").strip() else str(exc)
        return _login_page(
            state,
            request,
            next_path=target,
            error=f"That did not log you in ({reason}). Paste the whole token.",
            status=401,
        )
    # As POST /auth/token-login: the session gets the token's scopes and ends with the token.
    _user, _row, secret = await open_token_session(request, state, session, principal)
    response = see_other(target)
    _set_session_cookie(response, state, secret)
    return response


@router.post(LOGOUT_PATH, response_class=HTMLResponse)
async def log_out(request: Request, state: State, session: Session, viewer: Viewer) -> Response:
    await form_of(request, viewer)
    if viewer is not None:
        await service.revoke_session(session, viewer, viewer.credential_id)
    return _logged_out("/", state)


# --- /me ------------------------------------------------------------------------------------


def _preferences_form(prefs: PreferencesRead) -> dict[str, str]:
    return {
        "channels": "\n".join(prefs.channels),
        "games": "\n".join(prefs.games),
        "languages": " ".join(prefs.languages),
        "min_views": "" if prefs.min_views is None else str(prefs.min_views),
        "default_sort": prefs.default_sort or "",
        "time_zone": prefs.time_zone,
    }


async def _me_page(
    request: Request,
    state: AppState,
    session: Session,
    viewer: Principal,
    *,
    notice: str | None = None,
    prefs_form: dict[str, str] | None = None,
    prefs_errors: dict[str, str] | None = None,
    token_form: dict[str, Any] | None = None,
    token_errors: dict[str, str] | None = None,
    created: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    user = await service.visible_user(session, viewer, viewer.user_id)
    tokens = [TokenRead.from_token(t) for t in await service.tokens_of(session, viewer, user.id)]
    rows = await service.sessions_of(session, viewer, user.id)
    current = next((r for r in rows if r.id == viewer.credential_id), None)
    via_token = next((t for t in tokens if current is not None and t.id == current.token_id), None)
    if prefs_form is None:
        row = await preferences.preferences_of(session, viewer, user.id)
        prefs_form = _preferences_form(PreferencesRead.from_row(row))
    now = datetime.now(UTC)
    body = render(
        "me.html",
        **_common(state, request),
        notice=notice,
        user=user,
        scopes=sorted(viewer.scopes),
        via_token=via_token,
        session_ends=current.expires_at if current is not None else None,
        prefs=prefs_form,
        prefs_errors=prefs_errors or {},
        sorts=SORTS,
        tokens=[t for t in tokens if t.revoked_at is None],
        revoked_count=sum(1 for t in tokens if t.revoked_at is not None),
        now=now,
        can_write="write" in viewer.scopes,
        scope_choices=["read", "write", *(["admin"] if viewer.is_admin else [])],
        token_form=token_form or {"name": "", "scopes": ["read"], "expires_in_days": ""},
        token_errors=token_errors or {},
        created=created,
        sessions=[SessionRead.from_session(r, current_id=viewer.credential_id) for r in rows],
    )
    return _html(body, status)


@router.get(ME_PATH, response_class=HTMLResponse)
async def me_page(
    request: Request, state: State, session: Session, viewer: Member, done: MeDone | None = None
) -> Response:
    _needs(viewer, "read")
    notice = ME_NOTICES[done] if done else None
    return await _me_page(request, state, session, viewer, notice=notice)


@router.post(ME_PATH + "/preferences", response_class=HTMLResponse)
async def save_preferences(
    request: Request, state: State, session: Session, viewer: Member
) -> Response:
    form = await form_of(request, viewer)
    _needs(viewer, "write")
    sent = {name: form.get(name) for name in PREFERENCE_FIELDS}
    values = {
        "channels": _items(sent["channels"], commas=True),
        "games": _items(sent["games"], commas=False),
        "languages": _items(sent["languages"], commas=True),
        "min_views": _number(sent["min_views"]),
        "default_sort": sent["default_sort"] or None,
        "time_zone": sent["time_zone"].strip() or "UTC",
    }
    try:
        body = PreferencesPut.model_validate(values)  # PUT /api/v1/me/preferences's model
    except ValidationError as exc:
        return await _me_page(
            request,
            state,
            session,
            viewer,
            prefs_form={name: _shown(value) for name, value in sent.items()},
            prefs_errors=_field_errors(exc),
            status=422,
        )
    await preferences.replace_preferences(session, viewer, viewer.user_id, body.model_dump())
    return see_other(ME_PATH + "?done=prefs")


@router.post(
    ME_PATH + "/tokens", response_class=HTMLResponse, dependencies=[Depends(auth_endpoint_limit)]
)
async def create_token(
    request: Request, state: State, session: Session, viewer: Member
) -> Response:
    form = await form_of(request, viewer)
    _needs(viewer, "write")
    values: dict[str, Any] = {
        "name": form.get("name"),
        "scopes": form.all("scopes"),
        "expires_in_days": _number(form.get("expires_in_days")),
    }
    shown = {
        "name": _shown(form.get("name")),
        "scopes": form.all("scopes"),
        "expires_in_days": _shown(form.get("expires_in_days")),
    }
    errors: dict[str, str] = {}
    status = 422
    try:
        body = TokenCreate.model_validate(values)  # POST /api/v1/me/tokens's model
    except ValidationError as exc:
        errors = _field_errors(exc)
    else:
        user = await service.visible_user(session, viewer, viewer.user_id)
        days = body.expires_in_days
        try:
            token, plaintext = await service.create_token(
                session,
                user,
                name=body.name,
                scopes=frozenset(body.scopes),
                expires_at=datetime.now(UTC) + timedelta(days=days) if days else None,
                granted_by=viewer,
            )
        except (InvalidInput, Forbidden) as exc:
            status = 403 if isinstance(exc, Forbidden) else 422
            errors = {"scopes": str(exc)}
        else:
            return await _me_page(
                request,
                state,
                session,
                viewer,
                created={"name": token.name, "token": plaintext},
            )
    if "expires_in_days" in errors:  # say it in the form's unit
        errors["expires_in_days"] = errors["expires_in_days"].replace("must be", "days must be")
    return await _me_page(
        request, state, session, viewer, token_form=shown, token_errors=errors, status=status
    )


async def _own_token(session: Session, viewer: Principal, token_id: int) -> TokenRead:
    for token in await service.tokens_of(session, viewer, viewer.user_id):
        if token.id == token_id and token.revoked_at is None:
            return TokenRead.from_token(token)
    raise NotFound(f"no token {token_id}")


@router.get(ME_PATH + "/tokens/{token_id}/revoke", response_class=HTMLResponse)
async def confirm_revoke_token(
    request: Request, state: State, session: Session, viewer: Member, token_id: Id
) -> Response:
    """The confirmation step (works without JavaScript): a page with one POST button."""
    _needs(viewer, "read")
    token = await _own_token(session, viewer, token_id)
    rows = await service.sessions_of(session, viewer, viewer.user_id)
    current = next((r for r in rows if r.id == viewer.credential_id), None)
    body = render(
        "me_revoke.html",
        **_common(state, request),
        token=token,
        signs_out=current is not None and current.token_id == token.id,
    )
    return _html(body)


@router.post(ME_PATH + "/tokens/{token_id}/revoke", response_class=HTMLResponse)
async def revoke_token(
    request: Request, state: State, session: Session, viewer: Member, token_id: Id
) -> Response:
    await form_of(request, viewer)
    _needs(viewer, "write")
    rows = await service.sessions_of(session, viewer, viewer.user_id)
    current = next((r for r in rows if r.id == viewer.credential_id), None)
    await service.revoke_token(session, viewer, token_id)  # as DELETE /api/v1/me/tokens/{id}
    if current is not None and current.token_id == token_id:
        # This session was opened with that token and dies with it (service.open_session).
        return _logged_out(LOGIN_PATH + "?done=token-revoked", state)
    return see_other(ME_PATH + "?done=token-revoked#tokens")


@router.post(ME_PATH + "/sessions/{session_id}/revoke", response_class=HTMLResponse)
async def revoke_session(
    request: Request, state: State, session: Session, viewer: Member, session_id: Id
) -> Response:
    await form_of(request, viewer)
    _needs(viewer, "write")
    await service.revoke_session(session, viewer, session_id)  # as DELETE /api/v1/me/sessions
    if session_id == viewer.credential_id:
        return _logged_out(LOGIN_PATH + "?done=session-revoked", state)
    return see_other(ME_PATH + "?done=session-revoked#sessions")


# --- /me/feed ---------------------------------------------------------------------------------


@router.get(FEED_PATH, response_class=HTMLResponse)
async def feed_page(
    request: Request,
    state: State,
    session: Session,
    viewer: Member,
    cursor: Cursor | None = None,
) -> Response:
    # GET /api/v1/clips?feed=mine: the same preferences applied, the same page; never cached
    # (a feed is one person's).
    search = await apply_preferences(session, viewer, ClipSearch(limit=PAGE_SIZE, cursor=cursor))
    page, _generations = await clips_answer(session, state, search)
    next_url = None
    if page.next_cursor:
        next_url = FEED_PATH + "?" + urlencode({"cursor": page.next_cursor})
    body = render(
        "me_feed.html",
        **_common(state, request),
        clips=page.data,
        next_url=next_url,
        follows=bool(search.follow_channels or search.follow_games),
        languages=list(search.languages),
        min_views=search.min_views,
        first_page=cursor is None,
    )
    return _html(body)
