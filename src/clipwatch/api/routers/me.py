"""The caller's own account: /me, its tokens, sessions, preferences and favourites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BeforeValidator

from clipwatch.accounts import preferences, service
from clipwatch.api.account_schemas import (
    MeRead,
    PreferencesPatch,
    PreferencesPut,
    PreferencesRead,
    SessionRead,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserRead,
    UserUpdate,
)
from clipwatch.api.auth import Reader, Writer, auth_endpoint_limit
from clipwatch.api.deps import Session, State
from clipwatch.api.errors import problem_responses
from clipwatch.api.params import ClipId, Cursor
from clipwatch.api.schemas import ClipRead, FavouritePage, FavouriteRead, ListOf
from clipwatch.clips import favourites
from clipwatch.db.repositories import tags as tag_repo

router = APIRouter(prefix="/me", tags=["me"])


def _whole_number(value: object) -> object:
    """Path ids are written as digits only: `1.0`, ` 1`, `+1` or `01` name nothing."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and value[0] != "0"):
        raise ValueError("must be a whole number written with digits only, like 42")
    return value


Id = Annotated[int, Path(ge=1, le=2**53), BeforeValidator(_whole_number)]
AUTH = problem_responses({401: "No valid credentials", 422: "Invalid input", 429: "Rate limited"})
WRITE = problem_responses(
    {
        401: "No valid credentials",
        403: "Scope or CSRF proof missing",
        422: "Invalid input",
        429: "Rate limited",
    }
)
MINE = problem_responses(
    {
        401: "No valid credentials",
        403: "Scope or CSRF proof missing",
        404: "Not yours or absent",
        422: "Invalid input",
        429: "Rate limited",
    }
)


@router.get("", response_model=MeRead, responses=AUTH, summary="Who am I")
async def read_me(session: Session, principal: Reader) -> MeRead:
    user = await service.visible_user(session, principal, principal.user_id)
    return MeRead(
        **UserRead.from_user(user).model_dump(),
        via=principal.via,
        scopes=sorted(principal.scopes),
        csrf_token=principal.csrf,
    )


@router.patch("", response_model=UserRead, responses=WRITE, summary="Rename myself")
async def update_me(session: Session, principal: Writer, body: UserUpdate) -> UserRead:
    return UserRead.from_user(await service.rename_user(session, principal, body.name))


@router.get("/tokens", response_model=ListOf[TokenRead], responses=AUTH, summary="My API tokens")
async def list_my_tokens(session: Session, principal: Reader) -> ListOf[TokenRead]:
    tokens = await service.tokens_of(session, principal, principal.user_id)
    return ListOf[TokenRead](data=[TokenRead.from_token(t) for t in tokens])


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=201,
    responses=WRITE,
    dependencies=[Depends(auth_endpoint_limit)],
    summary="Create an API token (its value is shown once)",
)
async def create_my_token(session: Session, principal: Writer, body: TokenCreate) -> TokenCreated:
    user = await service.visible_user(session, principal, principal.user_id)
    expires = (
        datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    )
    token, plaintext = await service.create_token(
        session,
        user,
        name=body.name,
        scopes=frozenset(body.scopes),
        expires_at=expires,
        granted_by=principal,
    )
    return TokenCreated(**TokenRead.from_token(token).model_dump(), token=plaintext)


@router.delete("/tokens/{token_id}", status_code=204, responses=MINE, summary="Revoke a token")
async def revoke_my_token(session: Session, principal: Writer, token_id: Id) -> Response:
    await service.revoke_token(session, principal, token_id)
    return Response(status_code=204)


@router.get(
    "/sessions", response_model=ListOf[SessionRead], responses=AUTH, summary="My open sessions"
)
async def list_my_sessions(session: Session, principal: Reader) -> ListOf[SessionRead]:
    rows = await service.sessions_of(session, principal, principal.user_id)
    current = principal.credential_id if principal.via == "session" else None
    return ListOf[SessionRead](data=[SessionRead.from_session(r, current_id=current) for r in rows])


@router.delete(
    "/sessions/{session_id}", status_code=204, responses=MINE, summary="Revoke a session"
)
async def revoke_my_session(session: Session, principal: Writer, session_id: Id) -> Response:
    await service.revoke_session(session, principal, session_id)
    return Response(status_code=204)


@router.get(
    "/preferences", response_model=PreferencesRead, responses=AUTH, summary="My preferences"
)
async def read_my_preferences(session: Session, principal: Reader) -> PreferencesRead:
    row = await preferences.preferences_of(session, principal, principal.user_id)
    return PreferencesRead.from_row(row)


@router.put("/preferences", response_model=PreferencesRead, responses=WRITE, summary="Replace them")
async def replace_my_preferences(
    session: Session, principal: Writer, body: PreferencesPut
) -> PreferencesRead:
    row = await preferences.replace_preferences(
        session, principal, principal.user_id, body.model_dump()
    )
    return PreferencesRead.from_row(row)


@router.patch(
    "/preferences", response_model=PreferencesRead, responses=WRITE, summary="Change some"
)
async def update_my_preferences(
    session: Session, principal: Writer, body: PreferencesPatch
) -> PreferencesRead:
    row = await preferences.update_preferences(
        session, principal, principal.user_id, body.model_dump(exclude_unset=True)
    )
    return PreferencesRead.from_row(row)


@router.get(
    "/favourites",
    response_model=FavouritePage,
    responses=AUTH,
    summary="My favourite clips",
    description="Newest kept first. Keyset pagination: pass `next_cursor` back as `cursor`.",
)
async def list_my_favourites(
    state: State,
    session: Session,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor | None = None,
) -> FavouritePage:
    page = await favourites.kept(
        session, principal, key=state.settings.signing_key, limit=limit, cursor=cursor
    )
    on_clips = await tag_repo.community_names(session, [c.seq for _, c, _ in page.rows])
    return FavouritePage(
        data=[
            FavouriteRead(
                favourited_at=f.created_at, clip=ClipRead.from_clip(c, name, on_clips.get(c.seq))
            )
            for f, c, name in page.rows
        ],
        next_cursor=page.next_cursor,
    )


@router.put(
    "/favourites/{clip_id}",
    status_code=204,
    responses=MINE,
    summary="Keep a clip",
    description="Idempotent. 404 when the archive has no such clip.",
)
async def keep_favourite(session: Session, principal: Writer, clip_id: ClipId) -> Response:
    await favourites.keep(session, principal, clip_id)
    return Response(status_code=204)


@router.delete(
    "/favourites/{clip_id}",
    status_code=204,
    responses=WRITE,
    summary="Let a clip go",
    description="Idempotent: a clip that was not kept answers 204 too.",
)
async def drop_favourite(session: Session, principal: Writer, clip_id: ClipId) -> Response:
    await favourites.drop(session, principal, clip_id)
    return Response(status_code=204)
