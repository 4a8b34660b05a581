"""The collection pages (issue 17): /collections (the public ones, and a member's own with the
create form), one collection with its clips in order and, for its owner, edit, arrange,
share, post to Discord and delete; and "Add to a collection" from a clip's page.
docs/web.md, "Collections".

Every rule is the service's (clips/collections.py), as the API calls it: who may see one (404
for anyone else, never 403), positions, limits, the share key. A form is read into the API's
own models (CollectionCreate, CollectionUpdate, ItemMove, CollectionPost), and each owner's
form carries the version the page showed, sent to the service as the API's If-Match: a form
from a page older than the collection changes nothing (412, the collection shown as it is).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.service import Principal
from clipwatch.api.collection_schemas import (
    CollectionCreate,
    CollectionDetail,
    CollectionPost,
    CollectionRead,
    CollectionUpdate,
    ItemAdd,
    ItemMove,
)
from clipwatch.api.deps import AppState, Session, State
from clipwatch.api.errors import _plain_message
from clipwatch.api.page_session import Form, Member, Viewer, form_of, see_other
from clipwatch.api.params import ClipId, Cursor, Key
from clipwatch.api.routers.me import Id
from clipwatch.api.routers.pages import PAGE_DEPENDENCIES, PAGE_TAG, _common, _html
from clipwatch.api.schemas import ClipRead
from clipwatch.clips import collections as service
from clipwatch.clips.collections import MAX_COLLECTIONS, Shown
from clipwatch.db.repositories import catalog, clip_search
from clipwatch.discord import routes as routes_service
from clipwatch.errors import Conflict, Forbidden, NotFound, PreconditionFailed
from clipwatch.web.render import PAGE_SIZE, render

router = APIRouter(include_in_schema=False, tags=[PAGE_TAG], dependencies=PAGE_DEPENDENCIES)

LIST_PATH = "/collections"
ADD_PATH = "/collections/add"
ListDone = Literal["deleted"]
LIST_NOTICES = {"deleted": "Collection deleted."}
Done = Literal[
    "created", "saved", "added", "removed", "moved", "rotated", "posted", "posted-before"
]
NOTICES = {
    "created": "Collection created. Add clips to it from their pages (“Add to a collection…”).",
    "saved": "Collection saved.",
    "added": "Clip added at the end.",
    "removed": "Clip taken out of the collection.",
    "moved": "Clip moved.",
    "rotated": "New share link made: the old one no longer opens this collection.",
    "posted": "Queued: the delivery worker posts this collection to the route shortly.",
    "posted-before": "This collection was posted (or queued) to that route before: "
    "nothing new was queued.",
}
VISIBILITY_CHOICES = (
    ("private", "Private: only you"),
    ("unlisted", "Unlisted: anyone with its link"),
    ("public", "Public: listed for everyone"),
)
STALE = (
    "This collection changed after this page was loaded (in another tab or window?), so "
    "nothing was changed: it is shown as it is now. Try again."
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_WHOLE = re.compile(r"[0-9]{1,16}")


@dataclass(frozen=True)
class Refusal:
    """A form refused for a reason the person can act on: told on the page, with its status."""

    status: int
    message: str


UNSAVED = Refusal(422, "Not saved: check the fields marked below.")


# --- Forms --------------------------------------------------------------------------------------
def _whole(text: str) -> int | str:
    """Digits as a number for the strict models; anything else stays text, which they refuse
    in their own words ("must be a whole number")."""
    text = text.strip()
    return int(text) if _WHOLE.fullmatch(text) else text


def _details(form: Form) -> dict[str, str]:
    """Title, description and visibility as the models read them. A description's line breaks
    (a textarea's Enter) become spaces: the API keeps a description to one paragraph."""
    return {
        "title": form.get("title").strip(),
        "description": _LINE_BREAK.sub(" ", form.get("description")).strip(),
        "visibility": form.get("visibility", "private"),
    }


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        names = [str(part) for part in error.get("loc", ()) if isinstance(part, str)]
        errors.setdefault(names[0] if names else "form", _plain_message(dict(error)))
    return errors


def _first_error(exc: ValidationError) -> str:
    return _plain_message(dict(exc.errors()[0]))


def _if_match(form: Form, collection_id: int) -> str | None:
    """The version the page showed, as the If-Match the service takes (none: any version)."""
    version = form.get("version").strip()
    if not version:
        return None
    if not _WHOLE.fullmatch(version):
        return '"stale"'  # names no version: refused as stale
    return f'"c{collection_id}-v{int(version)}"'


def _need_write(viewer: Principal) -> None:
    if "write" not in viewer.scopes:  # as the API's Writer: a read-only session changes nothing
        raise Forbidden("this needs the 'write' scope")


async def _attempt(session: AsyncSession, write: Callable[[], Awaitable[str]]) -> str | Refusal:
    """Run a write: where to go next, or, when the service refuses it, why (what it did is
    undone: a savepoint)."""
    try:
        async with session.begin_nested():
            return await write()
    except ValidationError as exc:  # a field of the form, read by the API's model
        error = exc.errors()[0]
        names = [str(part) for part in error.get("loc", ()) if isinstance(part, str)]
        refusal = Refusal(422, f"Not done: {'.'.join(names)}: {_plain_message(dict(error))}.")
    except PreconditionFailed:
        refusal = Refusal(412, STALE)
    except Conflict as exc:
        refusal = Refusal(409, f"Not done: {exc}.")
    except NotFound as exc:  # a clip or route of the owner's own collection: no secret
        refusal = Refusal(404, f"Not done: {exc}.")
    # The page that tells it reads the collection again as stored, not as the write saw it.
    session.expire_all()
    return refusal


# --- /collections -------------------------------------------------------------------------------
async def _list_page(
    request: Request,
    state: AppState,
    session: Session,
    viewer: Principal | None,
    cursor: str | None = None,
    *,
    notice: str | None = None,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    refusal: Refusal | None = None,
) -> Response:
    key = state.settings.signing_key
    public = await service.collections_page(
        session, viewer, public=True, key=key, limit=PAGE_SIZE, cursor=cursor
    )
    mine = None
    if viewer is not None and "read" in viewer.scopes:
        mine = await _own(state, session, viewer)
    body = render(
        "collections.html",
        **_common(state, request),
        notice=notice,
        public=[CollectionRead.build(c, owner, n, False) for c, owner, n in public.rows],
        next_url=f"{LIST_PATH}?cursor={public.next_cursor}" if public.next_cursor else None,
        mine=mine,
        can_write=viewer is not None and "write" in viewer.scopes,
        form=form or {"title": "", "description": "", "visibility": "private"},
        errors=errors or {},
        failed=refusal.message if refusal else None,
        visibilities=VISIBILITY_CHOICES,
    )
    return _html(body, refusal.status if refusal else 200, cache=viewer is None)


@router.get(LIST_PATH, response_class=HTMLResponse)
async def collections_list(
    request: Request,
    state: State,
    session: Session,
    viewer: Viewer,
    cursor: Cursor | None = None,
    done: ListDone | None = None,
) -> Response:
    notice = LIST_NOTICES[done] if done else None
    return await _list_page(request, state, session, viewer, cursor, notice=notice)


@router.post(LIST_PATH, response_class=HTMLResponse)
async def create_collection(
    request: Request, state: State, session: Session, viewer: Member
) -> Response:
    form = await form_of(request, viewer)
    _need_write(viewer)
    values = _details(form)
    try:
        body = CollectionCreate.model_validate(values)  # POST /api/v1/collections's model
    except ValidationError as exc:
        errors = _field_errors(exc)
        return await _list_page(
            request, state, session, viewer, form=values, errors=errors, refusal=UNSAVED
        )
    try:
        shown = await service.create_collection(session, viewer, body.model_dump())
    except Conflict as exc:  # at most MAX_COLLECTIONS: refused before anything is written
        full = Refusal(409, f"Not created: {exc}.")
        return await _list_page(request, state, session, viewer, form=values, refusal=full)
    return see_other(f"{LIST_PATH}/{shown.collection.id}?done=created")


# --- Add a clip (from its page) -----------------------------------------------------------------
async def _add_page(
    request: Request,
    state: AppState,
    session: Session,
    viewer: Principal,
    clip_id: str,
    *,
    chosen: str = "",
    refusal: Refusal | None = None,
) -> Response:
    row = await clip_search.get_clip(session, clip_id) if clip_id else None
    if row is None and refusal is None:
        raise NotFound(f"no clip with id {clip_id}")
    clip = None
    if row is not None:
        names = await catalog.game_names(session, [row.game_id] if row.game_id else [])
        clip = ClipRead.from_clip(row, names.get(row.game_id or ""))
    body = render(
        "collections_add.html",
        **_common(state, request),
        clip=clip,
        clip_id=clip_id,
        mine=await _own(state, session, viewer),
        chosen=chosen,
        can_write="write" in viewer.scopes,
        failed=refusal.message if refusal else None,
    )
    return _html(body, refusal.status if refusal else 200)


async def _own(state: AppState, session: Session, viewer: Principal) -> list[CollectionRead]:
    """Every collection of the viewer's, newest first (a member keeps at most 500)."""
    own = await service.collections_page(
        session,
        viewer,
        public=False,
        key=state.settings.signing_key,
        limit=MAX_COLLECTIONS,
        cursor=None,
    )
    return [CollectionRead.build(c, owner, n, True) for c, owner, n in own.rows]


@router.get(ADD_PATH, response_class=HTMLResponse)
async def add_clip_page(
    request: Request, state: State, session: Session, viewer: Member, clip: ClipId
) -> Response:
    return await _add_page(request, state, session, viewer, clip)


@router.post(ADD_PATH, response_class=HTMLResponse)
async def add_clip(request: Request, state: State, session: Session, viewer: Member) -> Response:
    """The clip page's "Add to a collection": at the end of the chosen one of mine."""
    form = await form_of(request, viewer)
    _need_write(viewer)
    clip_id, chosen = form.get("clip").strip(), form.get("collection").strip()
    try:
        ItemAdd.model_validate({"clip_id": clip_id})  # the API's clip id rule
    except ValidationError as exc:
        bad_clip = Refusal(422, f"The clip id {_first_error(exc)}.")
        return await _add_page(request, state, session, viewer, "", refusal=bad_clip)
    number = _whole(chosen)
    if not isinstance(number, int) or number < 1:
        unchosen = Refusal(422, "Choose one of your collections: its id is a whole number.")
        return await _add_page(
            request, state, session, viewer, clip_id, chosen=chosen, refusal=unchosen
        )

    async def add() -> str:
        await service.add_item(session, viewer, number, clip_id, None, None)
        return f"{LIST_PATH}/{number}?done=added"

    done = await _attempt(session, add)
    if isinstance(done, Refusal):
        return await _add_page(
            request, state, session, viewer, clip_id, chosen=chosen, refusal=done
        )
    return see_other(done)


# --- One collection -----------------------------------------------------------------------------
async def _collection_page(
    request: Request,
    state: AppState,
    session: Session,
    viewer: Principal | None,
    collection_id: int,
    key: str | None = None,
    *,
    notice: str | None = None,
    refusal: Refusal | None = None,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    shown = await service.shown_collection(session, viewer, collection_id, key)
    detail = CollectionDetail.from_shown(shown)
    owning = shown.is_owner and viewer is not None and "write" in viewer.scopes
    routes = []
    if owning and viewer is not None:
        mine = await routes_service.routes_of(session, viewer)  # an admin's: everyone's
        routes = [r for r in mine if r.user_id == viewer.user_id]
    body = render(
        "collections_show.html",
        **_common(state, request),
        notice=notice,
        failed=refusal.message if refusal else None,
        collection=detail,
        hidden_count=detail.item_count - len(detail.items),
        owning=owning,
        share_url=f"{state.settings.base_url.rstrip('/')}{LIST_PATH}/{detail.id}?key="
        f"{detail.share_key}"
        if shown.is_owner
        else None,
        routes=[(r.id, r.name) for r in routes],
        form=form
        or {
            "title": detail.title,
            "description": detail.description,
            "visibility": detail.visibility,
        },
        errors=errors or {},
        visibilities=VISIBILITY_CHOICES,
    )
    # Anyone's same public page may be kept (and revalidated); the rest are someone's own.
    shared = viewer is None and detail.visibility == "public"
    return _html(body, refusal.status if refusal else 200, cache=shared)


@router.get(LIST_PATH + "/{collection_id}", response_class=HTMLResponse)
async def collection_page(
    request: Request,
    state: State,
    session: Session,
    viewer: Viewer,
    collection_id: Id,
    key: Key | None = None,
    done: Done | None = None,
) -> Response:
    notice = NOTICES[done] if done else None
    return await _collection_page(
        request, state, session, viewer, collection_id, key, notice=notice
    )


async def _owners(session: Session, viewer: Principal, collection_id: int) -> Shown:
    shown = await service.shown_collection(session, viewer, collection_id)
    if not shown.is_owner:  # an admin reads any collection but changes none (as the API)
        raise NotFound(f"no collection {collection_id}")
    return shown


async def _owners_form(
    request: Request, session: Session, viewer: Principal, collection_id: int
) -> tuple[Form, str | None]:
    """An owner's form and its If-Match: anyone else's collection is 404 before the proof and
    the scope are looked at."""
    await _owners(session, viewer, collection_id)
    form = await form_of(request, viewer)
    _need_write(viewer)
    return form, _if_match(form, collection_id)


async def _write(
    request: Request,
    state: AppState,
    session: Session,
    viewer: Principal,
    collection_id: int,
    write: Callable[[], Awaitable[str]],
    form: dict[str, str] | None = None,
) -> Response:
    """An owner's write: on to where it says, or the collection again with why it was refused
    (and `form`, the edit form as typed)."""
    done = await _attempt(session, write)
    if isinstance(done, Refusal):
        return await _collection_page(
            request, state, session, viewer, collection_id, refusal=done, form=form
        )
    return see_other(done)


def _done(collection_id: int, code: str) -> str:
    return f"{LIST_PATH}/{collection_id}?done={code}"


@router.post(LIST_PATH + "/{collection_id}/edit", response_class=HTMLResponse)
async def edit_collection(
    request: Request, state: State, session: Session, viewer: Member, collection_id: Id
) -> Response:
    form, if_match = await _owners_form(request, session, viewer, collection_id)
    values = _details(form)
    try:
        changes = CollectionUpdate.model_validate(values).model_dump()  # the API's PATCH body
    except ValidationError as exc:
        return await _collection_page(
            request,
            state,
            session,
            viewer,
            collection_id,
            refusal=UNSAVED,
            form=values,
            errors=_field_errors(exc),
        )

    async def save() -> str:
        await service.update_collection(session, viewer, collection_id, changes, if_match)
        return _done(collection_id, "saved")

    return await _write(request, state, session, viewer, collection_id, save, form=values)


@router.post(LIST_PATH + "/{collection_id}/items/{clip_id}/move", response_class=HTMLResponse)
async def move_item(
    request: Request,
    state: State,
    session: Session,
    viewer: Member,
    collection_id: Id,
    clip_id: ClipId,
) -> Response:
    """The arrange table's Up and Down: to the place of the clip shown before or after it."""
    form, if_match = await _owners_form(request, session, viewer, collection_id)

    async def move() -> str:
        position = ItemMove.model_validate({"position": _whole(form.get("position"))}).position
        await service.move_item(session, viewer, collection_id, clip_id, position, if_match)
        return _done(collection_id, "moved")

    return await _write(request, state, session, viewer, collection_id, move)


@router.post(LIST_PATH + "/{collection_id}/items/{clip_id}/remove", response_class=HTMLResponse)
async def remove_item(
    request: Request,
    state: State,
    session: Session,
    viewer: Member,
    collection_id: Id,
    clip_id: ClipId,
) -> Response:
    _, if_match = await _owners_form(request, session, viewer, collection_id)

    async def remove() -> str:
        await service.remove_item(session, viewer, collection_id, clip_id, if_match)
        return _done(collection_id, "removed")

    return await _write(request, state, session, viewer, collection_id, remove)


@router.post(LIST_PATH + "/{collection_id}/share-key", response_class=HTMLResponse)
async def rotate_share_key(
    request: Request, state: State, session: Session, viewer: Member, collection_id: Id
) -> Response:
    _, if_match = await _owners_form(request, session, viewer, collection_id)

    async def rotate() -> str:
        await service.rotate_share_key(session, viewer, collection_id, if_match)
        return _done(collection_id, "rotated")

    return await _write(request, state, session, viewer, collection_id, rotate)


@router.post(LIST_PATH + "/{collection_id}/post", response_class=HTMLResponse)
async def post_collection(
    request: Request, state: State, session: Session, viewer: Member, collection_id: Id
) -> Response:
    """Post to one of the owner's Discord routes, once per route (as the API's POST .../post)."""
    form, _ = await _owners_form(request, session, viewer, collection_id)

    async def post() -> str:
        body = CollectionPost.model_validate({"route_id": _whole(form.get("route_id"))})
        route_id = body.route_id
        _, queued = await service.post_collection(session, viewer, collection_id, route_id)
        return _done(collection_id, "posted" if queued else "posted-before")

    return await _write(request, state, session, viewer, collection_id, post)


@router.get(LIST_PATH + "/{collection_id}/delete", response_class=HTMLResponse)
async def delete_page(
    request: Request, state: State, session: Session, viewer: Member, collection_id: Id
) -> Response:
    """The confirmation step (works without JavaScript): a page with one POST button."""
    detail = CollectionDetail.from_shown(await _owners(session, viewer, collection_id))
    return _html(render("collections_delete.html", **_common(state, request), collection=detail))


@router.post(LIST_PATH + "/{collection_id}/delete", response_class=HTMLResponse)
async def delete_collection(
    request: Request, state: State, session: Session, viewer: Member, collection_id: Id
) -> Response:
    _, if_match = await _owners_form(request, session, viewer, collection_id)

    async def delete() -> str:
        await service.delete_collection(session, viewer, collection_id, if_match)
        return f"{LIST_PATH}?done=deleted"

    return await _write(request, state, session, viewer, collection_id, delete)
