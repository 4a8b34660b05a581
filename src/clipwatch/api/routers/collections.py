"""Collections: a member's ordered lists of clips, shared privately, by link or publicly.

Writes take `If-Match` (the ETag of a read; a stale one answers 412, none means the last
writer wins) and answer the new ETag. Nothing here goes through the shared answer cache:
who asks changes the answer. docs/collections.md
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from clipwatch.api.auth import Caller, Writer
from clipwatch.api.collection_schemas import (
    CollectionCreate,
    CollectionDetail,
    CollectionList,
    CollectionPost,
    CollectionPosted,
    CollectionUpdate,
    ItemAdd,
    ItemMove,
)
from clipwatch.api.deps import Session, State, reads_only
from clipwatch.api.errors import problem_responses
from clipwatch.api.params import ClipId, Cursor, Key
from clipwatch.api.routers.me import Id
from clipwatch.clips import collections as service
from clipwatch.clips.collections import Shown
from clipwatch.errors import Forbidden, Unauthenticated

router = APIRouter(prefix="/collections", tags=["collections"])

# Not in the OpenAPI document: a made-up ETag is a refused precondition (412) that no schema
# can tell from a right one. Described in each write's description instead.
IfMatch = Annotated[str | None, Header(alias="If-Match", include_in_schema=False)]
IF_MATCH = (
    " Send `If-Match` with the ETag of your last read: if the collection changed since, "
    "nothing is done and the answer is 412. Without it, the last writer wins."
)
READ = problem_responses(
    {400: "Cursor not of this query", 401: "No valid credentials", 403: "Scope missing"}
)
ONE = problem_responses({404: "Not yours, not shared with you, or absent"})
WRITE = problem_responses(
    {
        401: "No valid credentials",
        403: "Scope or CSRF proof missing",
        404: "Not yours, not shared with you, or absent",
        412: "If-Match names an older version: read it again",
    }
)
FULL = problem_responses({409: "Already in it, or it is full"})
OWNER_ONLY = "private, no-store"  # the share key is in it
SHARED = "private, no-cache"


def _send(response: Response, shown: Shown) -> CollectionDetail:
    response.headers["ETag"] = service.etag_of(shown.collection)
    response.headers["Cache-Control"] = OWNER_ONLY if shown.is_owner else SHARED
    return CollectionDetail.from_shown(shown)


@router.post(
    "",
    response_model=CollectionDetail,
    status_code=201,
    responses=WRITE | problem_responses({409: "Too many collections"}),
    summary="Create a collection",
)
async def create_collection(
    response: Response, session: Session, principal: Writer, body: CollectionCreate
) -> CollectionDetail:
    shown = await service.create_collection(session, principal, body.model_dump())
    response.headers["Location"] = f"/api/v1/collections/{shown.collection.id}"
    return _send(response, shown)


@router.get(
    "",
    response_model=CollectionList,
    responses=READ,
    summary="My collections, or everyone's public ones",
    description="Newest first. `public=true`: everyone's public collections (no token "
    "needed); otherwise the caller's own. Keyset pagination: pass `next_cursor` as `cursor`.",
)
@reads_only
async def list_collections(
    response: Response,
    state: State,
    session: Session,
    principal: Caller,
    public: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor | None = None,
) -> CollectionList:
    if not public:
        if principal is None:
            raise Unauthenticated("this needs an API token or a session (or public=true)")
        if "read" not in principal.scopes:
            raise Forbidden("this needs the 'read' scope")
    page = await service.collections_page(
        session,
        principal,
        public=public,
        key=state.settings.signing_key,
        limit=limit,
        cursor=cursor,
    )
    response.headers["Cache-Control"] = SHARED if public else OWNER_ONLY
    return CollectionList.from_page(page, principal.user_id if principal else None)


@router.get(
    "/{collection_id}",
    response_model=CollectionDetail,
    responses=ONE,
    summary="One collection with its clips in order",
    description="Its owner's always (admins' too); a public one for anyone; an unlisted one "
    "with its `key`. Anything else is 404. Its ETag is what writes send as If-Match.",
)
@reads_only
async def read_collection(
    response: Response,
    session: Session,
    principal: Caller,
    collection_id: Id,
    key: Key | None = None,
) -> CollectionDetail:
    shown = await service.shown_collection(session, principal, collection_id, key)
    return _send(response, shown)


@router.patch(
    "/{collection_id}",
    response_model=CollectionDetail,
    responses=WRITE,
    summary="Change a collection's title, description or visibility",
    description="The fields named change." + IF_MATCH,
)
async def update_collection(
    response: Response,
    session: Session,
    principal: Writer,
    collection_id: Id,
    body: CollectionUpdate,
    if_match: IfMatch = None,
) -> CollectionDetail:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    shown = await service.update_collection(session, principal, collection_id, changes, if_match)
    return _send(response, shown)


@router.delete(
    "/{collection_id}",
    status_code=204,
    responses=WRITE,
    summary="Delete a collection",
    description="Its items go with it; its Discord posts stay." + IF_MATCH,
)
async def delete_collection(
    session: Session, principal: Writer, collection_id: Id, if_match: IfMatch = None
) -> Response:
    await service.delete_collection(session, principal, collection_id, if_match)
    return Response(status_code=204)


@router.post(
    "/{collection_id}/share-key",
    response_model=CollectionDetail,
    responses=WRITE,
    summary="Give a collection a new share key (the old link stops working)",
    description=IF_MATCH.strip(),
)
async def rotate_share_key(
    response: Response,
    session: Session,
    principal: Writer,
    collection_id: Id,
    if_match: IfMatch = None,
) -> CollectionDetail:
    shown = await service.rotate_share_key(session, principal, collection_id, if_match)
    return _send(response, shown)


@router.post(
    "/{collection_id}/items",
    response_model=CollectionDetail,
    status_code=201,
    responses=WRITE | FULL,
    summary="Add a clip to a collection",
    description="At `position` (0 first), the clips from there on moving down one; at the "
    "end without one. 409 when the archive has no such clip (or moderators hid it), "
    "when it is in the collection already or the collection holds 1,000 clips." + IF_MATCH,
)
async def add_item(
    response: Response,
    session: Session,
    principal: Writer,
    collection_id: Id,
    body: ItemAdd,
    if_match: IfMatch = None,
) -> CollectionDetail:
    shown = await service.add_item(
        session, principal, collection_id, body.clip_id, body.position, if_match
    )
    return _send(response, shown)


@router.put(
    "/{collection_id}/items/{clip_id}",
    response_model=CollectionDetail,
    responses=WRITE,
    summary="Move a clip within a collection",
    description="The clips between its old and new place close up." + IF_MATCH,
)
async def move_item(
    response: Response,
    session: Session,
    principal: Writer,
    collection_id: Id,
    clip_id: ClipId,
    body: ItemMove,
    if_match: IfMatch = None,
) -> CollectionDetail:
    shown = await service.move_item(
        session, principal, collection_id, clip_id, body.position, if_match
    )
    return _send(response, shown)


@router.delete(
    "/{collection_id}/items/{clip_id}",
    status_code=204,
    responses=WRITE,
    summary="Take a clip out of a collection",
    description="The clips after it move up one; the answer's ETag is the new one." + IF_MATCH,
)
async def remove_item(
    session: Session,
    principal: Writer,
    collection_id: Id,
    clip_id: ClipId,
    if_match: IfMatch = None,
) -> Response:
    taken = await service.remove_item(session, principal, collection_id, clip_id, if_match)
    return Response(status_code=204, headers={"ETag": service.etag_of(taken)})


@router.post(
    "/{collection_id}/post",
    response_model=CollectionPosted,
    status_code=202,
    responses=WRITE
    | problem_responses(
        {404: "Collection not yours, or absent", 409: "The body's route is not yours, or absent"}
    )
    | {200: {"model": CollectionPosted, "description": "Posted (or queued) there before"}},
    summary="Post a collection to one of my Discord routes (once per route)",
    description="One message listing its clips in order, sent by the delivery worker as "
    "they are then. A second post to the same route queues nothing (200, queued false).",
)
async def post_collection(
    response: Response, session: Session, principal: Writer, collection_id: Id, body: CollectionPost
) -> CollectionPosted:
    collection, queued = await service.post_collection(
        session, principal, collection_id, body.route_id
    )
    response.headers["ETag"] = service.etag_of(collection)
    if not queued:
        response.status_code = 200
    return CollectionPosted(route_id=body.route_id, queued=queued)
