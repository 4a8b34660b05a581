"""Moderation (docs/moderation.md): hide and unhide clips (moderators), the hidden clips
(moderators), the audit log and roles (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BeforeValidator

from clipwatch.accounts import service
from clipwatch.api.account_schemas import UserRead
from clipwatch.api.auth import Admin, Moderator
from clipwatch.api.deps import Session, State
from clipwatch.api.errors import problem_responses
from clipwatch.api.params import ClipId, Cursor
from clipwatch.api.routers.me import _whole_number
from clipwatch.api.schemas import (
    AuditPage,
    AuditRead,
    ClipRead,
    HiddenPage,
    HiddenRead,
    HideRequest,
    RoleUpdate,
)
from clipwatch.clips import moderation
from clipwatch.clips.cursor import encode_cursor, fingerprint, keyset_of
from clipwatch.db.repositories import catalog
from clipwatch.db.repositories import moderation as repo

router = APIRouter(tags=["moderation"])
GUARDED = problem_responses(
    {
        401: "No valid credentials",
        403: "Not a moderator (or admin) with the 'write' scope, or CSRF proof missing",
        404: "No such clip",
        422: "Invalid input",
        429: "Rate limited",
    }
)
ADMINS = problem_responses(
    {
        401: "No valid credentials",
        403: "Not an admin",
        404: "No such user",
        422: "Invalid input",
        429: "Rate limited",
    }
)
UserId = Annotated[int, Path(ge=1, le=2**53), BeforeValidator(_whole_number)]
Action = Literal["clip.hide", "clip.unhide", "user.role", "tag.create", "tag.update", "tag.delete"]


def _hidden_read(row: repo.HiddenRow) -> HiddenRead:
    hidden, clip, game = row
    return HiddenRead(
        hidden_at=hidden.hidden_at,
        hidden_by=hidden.hidden_by,
        reason=hidden.reason,
        clip=ClipRead.from_clip(clip, game),
    )


@router.put(
    "/clips/{clip_id}/hidden",
    response_model=HiddenRead,
    responses=GUARDED,
    summary="Hide a clip (moderators)",
    description="It leaves every public answer and stays in the archive; its pending Discord "
    "messages are cancelled and posted ones changed by each route's policy for removed clips. "
    "Idempotent: hiding a hidden clip changes nothing (the first reason stays).",
)
async def hide_clip(
    session: Session, principal: Moderator, clip_id: ClipId, body: HideRequest
) -> HiddenRead:
    done = await moderation.hide(session, principal, clip_id, body.reason)
    game = done.clip.game_id
    names = await catalog.game_names(session, [game] if game else [])
    return _hidden_read((done.row, done.clip, names.get(game or "")))


@router.delete(
    "/clips/{clip_id}/hidden",
    status_code=204,
    responses=GUARDED,
    summary="Unhide a clip (moderators)",
    description="It is back in every answer (within the cache's staleness bound). "
    "Idempotent: 204 for a clip that is not hidden.",
)
async def unhide_clip(session: Session, principal: Moderator, clip_id: ClipId) -> Response:
    await moderation.unhide(session, principal, clip_id)
    return Response(status_code=204)


@router.get(
    "/moderation/hidden",
    response_model=HiddenPage,
    responses=GUARDED,
    summary="Hidden clips (moderators)",
    description="Most recently hidden first. Keyset pagination: pass `next_cursor` back.",
)
async def list_hidden(
    state: State,
    session: Session,
    _principal: Moderator,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor | None = None,
) -> HiddenPage:
    query = fingerprint(["hidden"])
    after = keyset_of(
        state.settings.signing_key,
        cursor,
        query=query,
        read=lambda p: (datetime.fromisoformat(p["at"]), int(p["seq"])),
    )
    rows = await repo.hidden_page(session, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1][0]
        next_cursor = encode_cursor(
            state.settings.signing_key,
            {"q": query, "at": last.hidden_at.isoformat(), "seq": last.clip_seq},
        )
    return HiddenPage(data=[_hidden_read(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/audit",
    response_model=AuditPage,
    responses=ADMINS,
    summary="The audit log (admins)",
    description="Every moderation action and role change, newest first. Keyset pagination.",
)
async def audit_log(
    state: State,
    session: Session,
    _principal: Admin,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Cursor | None = None,
    action: Action | None = None,
    target: Annotated[
        str | None, Query(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
    ] = None,
) -> AuditPage:
    query = fingerprint(["audit", action, target])
    before = keyset_of(
        state.settings.signing_key, cursor, query=query, read=lambda p: int(p["before"])
    )
    rows, next_before = await moderation.audit_log(
        session, before=before, limit=limit, action=action, target=target
    )
    next_cursor = (
        encode_cursor(state.settings.signing_key, {"q": query, "before": next_before})
        if next_before is not None
        else None
    )
    return AuditPage(
        data=[
            AuditRead(
                id=r.id,
                at=r.at,
                actor=r.actor,
                actor_id=r.actor_id,
                action=r.action,
                target=r.target,
                reason=r.reason,
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )


@router.put(
    "/users/{user_id}/role",
    response_model=UserRead,
    responses=ADMINS,
    summary="Change a user's role (admins)",
    description="member, moderator (hides clips) or admin; written to the audit log.",
)
async def set_role(
    session: Session, principal: Admin, user_id: UserId, body: RoleUpdate
) -> UserRead:
    user = await service.visible_user(session, principal, user_id)
    if await service.set_role(session, user, body.role):
        await moderation.record_role(session, principal, user)
    return UserRead.from_user(user)
