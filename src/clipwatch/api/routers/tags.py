"""Tags (docs/tags.md): the community's vocabulary (admins), members' private tags, tags on
clips, and one tag on many clips at once."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Response

from clipwatch.api.auth import Caller, Writer
from clipwatch.api.clip_filters import ClipFilters, Feed, apply_preferences
from clipwatch.api.deps import Session, reads_only
from clipwatch.api.errors import problem_responses
from clipwatch.api.params import ClipId
from clipwatch.api.routers.me import Id
from clipwatch.api.tag_schemas import (
    BulkByIds,
    BulkRead,
    ClipTagList,
    TagCreate,
    TagList,
    TagRead,
    TagUpdate,
)
from clipwatch.clips import tags
from clipwatch.clips.search import check_ranges

router = APIRouter(tags=["tags"])
READ = problem_responses({404: "No such tag (or not yours)", 422: "Invalid input"})
WRITE = problem_responses(
    {
        401: "No valid credentials",
        403: "The 'write' scope or CSRF proof missing; the community's tags need an admin",
        404: "No such tag (or not yours) or clip",
        409: "The name is taken, or a limit is reached",
        422: "Invalid input",
        429: "Rate limited",
    }
)


@router.get(
    "/tags",
    response_model=TagList,
    responses=problem_responses({422: "Invalid input"}),
    summary="The tags you may use",
    description="The community's vocabulary, then your private tags (signed in), by name.",
)
@reads_only
async def list_tags(session: Session, principal: Caller) -> TagList:
    rows = await tags.listed(session, principal)
    return TagList(data=[TagRead.of(tag, n) for tag, n in rows])


@router.post(
    "/tags",
    response_model=TagRead,
    status_code=201,
    responses=WRITE,
    summary="Add a tag to the vocabulary (admins), or a private one of your own",
)
async def create_tag(session: Session, principal: Writer, body: TagCreate) -> TagRead:
    tag = await tags.create(session, principal, body.name, body.description, private=body.private)
    return TagRead.of(tag, 0)


@router.get("/tags/{tag_id}", response_model=TagRead, responses=READ, summary="One tag")
@reads_only
async def get_tag(session: Session, principal: Caller, tag_id: Id) -> TagRead:
    tag = await tags.visible_tag(session, principal, tag_id)
    return TagRead.of(tag, await tags.clip_count(session, tag))


@router.patch(
    "/tags/{tag_id}",
    response_model=TagRead,
    responses=WRITE,
    summary="Rename a tag or change its description",
    description="The community's tags: admins; a private tag: its owner. Clips keep it.",
)
async def update_tag(session: Session, principal: Writer, tag_id: Id, body: TagUpdate) -> TagRead:
    tag = await tags.update(
        session, principal, tag_id, name=body.name, description=body.description
    )
    return TagRead.of(tag, await tags.clip_count(session, tag))


@router.delete(
    "/tags/{tag_id}",
    status_code=204,
    responses=WRITE,
    summary="Delete a tag",
    description="It comes off every clip. The community's tags: admins; a private tag: its owner.",
)
async def delete_tag(session: Session, principal: Writer, tag_id: Id) -> Response:
    await tags.delete(session, principal, tag_id)
    return Response(status_code=204)


@router.get(
    "/clips/{clip_id}/tags",
    response_model=ClipTagList,
    responses=problem_responses({404: "No such clip", 422: "Invalid input"}),
    summary="The tags on a clip",
    description="The community's, then your private ones (signed in), with who put each on.",
)
@reads_only
async def clip_tags(session: Session, principal: Caller, clip_id: ClipId) -> ClipTagList:
    return ClipTagList.of(await tags.clip_tags(session, principal, clip_id))


@router.put(
    "/clips/{clip_id}/tags/{tag_id}",
    response_model=ClipTagList,
    responses=WRITE,
    summary="Put a tag on a clip",
    description="Idempotent. A clip carries at most 20 community tags, and 20 of yours.",
)
async def tag_clip(session: Session, principal: Writer, clip_id: ClipId, tag_id: Id) -> ClipTagList:
    await tags.tag_clip(session, principal, clip_id, tag_id)
    return ClipTagList.of(await tags.clip_tags(session, principal, clip_id))


@router.delete(
    "/clips/{clip_id}/tags/{tag_id}",
    status_code=204,
    responses=WRITE,
    summary="Take a tag off a clip",
    description="Idempotent. A community tag comes off by who put it on, or a moderator.",
)
async def untag_clip(session: Session, principal: Writer, clip_id: ClipId, tag_id: Id) -> Response:
    await tags.untag_clip(session, principal, clip_id, tag_id)
    return Response(status_code=204)


@router.post(
    "/tags/{tag_id}/clips",
    response_model=BulkRead,
    responses=WRITE,
    summary="Put a tag on many clips",
    description="Up to 1,000 clips by id, in one transaction; unknown ids are listed back.",
)
async def bulk_tag(session: Session, principal: Writer, tag_id: Id, body: BulkByIds) -> BulkRead:
    return BulkRead.of(await tags.bulk_by_ids(session, principal, tag_id, body.clip_ids))


@router.post(
    "/tags/{tag_id}/clips/from-search",
    response_model=BulkRead,
    responses=WRITE,
    summary="Put a tag on every clip a search finds",
    description="The `/clips` filters (and `feed=mine`); at most 1,000 clips, in one "
    "transaction. A search that finds more is refused (422) and nothing is tagged.",
)
async def bulk_tag_search(
    session: Session, principal: Writer, tag_id: Id, filters: ClipFilters, feed: Feed = None
) -> BulkRead:
    search = replace(filters, tag_viewer=tags.viewer(principal))
    check_ranges(search)
    if feed == "mine":
        search = await apply_preferences(session, principal, search)
    return BulkRead.of(await tags.bulk_by_search(session, principal, tag_id, search))
