"""Request and answer bodies of /api/v1/collections (docs/collections.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from clipwatch.api.params import ClipId
from clipwatch.api.schemas import ClipRead, StrictBody
from clipwatch.clips.collections import MAX_ITEMS, CollectionPage, Shown
from clipwatch.db.models import Collection
from clipwatch.db.repositories.collections import ShownItem

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Title = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=_PRINTABLE)]
Visibility = Literal["private", "unlisted", "public"]
Position = Annotated[int, Field(ge=0, le=MAX_ITEMS)]


class CollectionCreate(StrictBody):
    title: Title
    description: Description = ""
    visibility: Visibility = "private"


class CollectionUpdate(StrictBody):
    """The fields named change; null or absent leaves one as it is."""

    title: Title | None = None
    description: Description | None = None
    visibility: Visibility | None = None


class ItemAdd(StrictBody):
    clip_id: ClipId
    position: Position | None = Field(
        default=None, description="Where it goes (0 first); absent or past the end: at the end."
    )


class ItemMove(StrictBody):
    position: Position = Field(description="Its new place (0 first); past the end: the last.")


class CollectionPost(StrictBody):
    route_id: int = Field(ge=1, le=2**53)


class CollectionRead(BaseModel):
    id: int
    title: str
    description: str
    visibility: Visibility
    owner: str
    item_count: int = Field(description="Every item, those not shown (hidden clips) too.")
    version: int = Field(description="Grows with every change; the ETag holds it.")
    share_key: str | None = Field(
        description="The owner's only: the `key` that opens an unlisted collection."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def build(
        cls, collection: Collection, owner: str, item_count: int, mine: bool
    ) -> CollectionRead:
        return cls(
            id=collection.id,
            title=collection.title,
            description=collection.description,
            visibility=collection.visibility,
            owner=owner,
            item_count=item_count,
            version=collection.version,
            share_key=collection.share_key if mine else None,
            created_at=collection.created_at,
            updated_at=collection.updated_at,
        )


class CollectionItemRead(BaseModel):
    position: int = Field(description="Its place among all items (hidden clips hold theirs).")
    added_at: datetime
    clip: ClipRead

    @classmethod
    def from_shown(cls, shown: ShownItem, tags: list[str] | None = None) -> CollectionItemRead:
        item, clip, game_name = shown
        return cls(
            position=item.position,
            added_at=item.added_at,
            clip=ClipRead.from_clip(clip, game_name, tags),
        )


class CollectionDetail(CollectionRead):
    items: list[CollectionItemRead] = Field(
        description="In order; clips hidden by moderators or not in the archive are left out."
    )

    @classmethod
    def from_shown(cls, shown: Shown) -> CollectionDetail:
        read = CollectionRead.build(shown.collection, shown.owner, shown.item_count, shown.is_owner)
        items = [CollectionItemRead.from_shown(i, shown.tags.get(i[1].seq)) for i in shown.items]
        return cls(**read.model_dump(), items=items)


class CollectionList(BaseModel):
    data: list[CollectionRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )

    @classmethod
    def from_page(cls, page: CollectionPage, user_id: int | None) -> CollectionList:
        return cls(
            data=[
                CollectionRead.build(c, owner, n, c.user_id == user_id) for c, owner, n in page.rows
            ],
            next_cursor=page.next_cursor,
        )


class CollectionPosted(BaseModel):
    route_id: int
    queued: bool = Field(description="False: this route has it queued or posted already.")
