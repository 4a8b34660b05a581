"""Users by id: admins see everyone; anyone else sees only themselves (others are 404)."""

from __future__ import annotations

from fastapi import APIRouter

from clipwatch.accounts import preferences, service
from clipwatch.api.account_schemas import (
    PreferencesPatch,
    PreferencesRead,
    SessionRead,
    TokenRead,
    UserRead,
)
from clipwatch.api.auth import Admin, Reader, Writer
from clipwatch.api.deps import Session
from clipwatch.api.routers.me import AUTH, MINE, Id
from clipwatch.api.schemas import ListOf
from clipwatch.db.repositories import accounts as repo

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", response_model=ListOf[UserRead], responses=MINE, summary="All users (admin)")
async def list_users(session: Session, _principal: Admin) -> ListOf[UserRead]:
    return ListOf[UserRead](data=[UserRead.from_user(u) for u in await repo.list_users(session)])


@router.get("/{user_id}", response_model=UserRead, responses=MINE, summary="One user")
async def read_user(session: Session, principal: Reader, user_id: Id) -> UserRead:
    return UserRead.from_user(await service.visible_user(session, principal, user_id))


@router.get(
    "/{user_id}/tokens", response_model=ListOf[TokenRead], responses=MINE, summary="Their tokens"
)
async def list_user_tokens(session: Session, principal: Reader, user_id: Id) -> ListOf[TokenRead]:
    tokens = await service.tokens_of(session, principal, user_id)
    return ListOf[TokenRead](data=[TokenRead.from_token(t) for t in tokens])


@router.get(
    "/{user_id}/sessions",
    response_model=ListOf[SessionRead],
    responses=MINE,
    summary="Their open sessions",
)
async def list_user_sessions(
    session: Session, principal: Reader, user_id: Id
) -> ListOf[SessionRead]:
    rows = await service.sessions_of(session, principal, user_id)
    current = principal.credential_id if principal.via == "session" else None
    return ListOf[SessionRead](data=[SessionRead.from_session(r, current_id=current) for r in rows])


@router.get(
    "/{user_id}/preferences", response_model=PreferencesRead, responses=MINE, summary="Theirs"
)
async def read_user_preferences(
    session: Session, principal: Reader, user_id: Id
) -> PreferencesRead:
    return PreferencesRead.from_row(await preferences.preferences_of(session, principal, user_id))


@router.patch(
    "/{user_id}/preferences",
    response_model=PreferencesRead,
    responses=MINE,
    summary="Change theirs",
)
async def update_user_preferences(
    session: Session, principal: Writer, user_id: Id, body: PreferencesPatch
) -> PreferencesRead:
    row = await preferences.update_preferences(
        session, principal, user_id, body.model_dump(exclude_unset=True)
    )
    return PreferencesRead.from_row(row)


__all__ = ["AUTH", "router"]
