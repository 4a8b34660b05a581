"""Request and answer bodies of /api/v1/tags and a clip's tags (docs/tags.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from clipwatch.api.params import ClipId, TagName
from clipwatch.api.schemas import StrictBody
from clipwatch.clips.tags import BULK_MAX, DESCRIPTION_MAX, Bulk
from clipwatch.db.models import ClipTag, Tag

Description = Annotated[
    str, StringConstraints(max_length=DESCRIPTION_MAX, pattern=r"^[^\x00-\x1f\x7f]*$")
]
Scope = Literal["community", "private"]


class TagCreate(StrictBody):
    name: TagName = Field(description="Words of letters and digits joined by hyphens; any case")
    description: Description = ""
    private: bool = Field(
        default=False,
        description="A tag of your own that nobody else sees; false: the community's "
        "vocabulary (admins only)",
    )


class TagUpdate(StrictBody):
    """The fields named change; null or absent leaves one as it is."""

    name: TagName | None = None
    description: Description | None = None


class TagRead(BaseModel):
    id: int
    name: str
    description: str
    scope: Scope
    clip_count: int = Field(description="Clips carrying it")
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, tag: Tag, clip_count: int) -> TagRead:
        return cls(
            id=tag.id,
            name=tag.name,
            description=tag.description,
            scope="community" if tag.owner_id is None else "private",
            clip_count=clip_count,
            created_at=tag.created_at,
            created_by=tag.created_by,
        )


class TagList(BaseModel):
    data: list[TagRead]


class ClipTagRead(BaseModel):
    id: int
    name: str
    scope: Scope
    added_at: datetime
    added_by: str


class ClipTagList(BaseModel):
    data: list[ClipTagRead]

    @classmethod
    def of(cls, rows: list[tuple[Tag, ClipTag]]) -> ClipTagList:
        return cls(
            data=[
                ClipTagRead(
                    id=tag.id,
                    name=tag.name,
                    scope="community" if tag.owner_id is None else "private",
                    added_at=link.added_at,
                    added_by=link.added_by,
                )
                for tag, link in rows
            ]
        )


class BulkByIds(StrictBody):
    clip_ids: list[ClipId] = Field(min_length=1, max_length=BULK_MAX)


class BulkRead(BaseModel):
    tagged: int = Field(description="Clips that got the tag")
    already: int = Field(description="Clips that carried it already")
    full: list[str] = Field(description="Clips left out: they carry 20 such tags already")
    not_found: list[str] = Field(description="Ids not in the archive")

    @classmethod
    def of(cls, bulk: Bulk) -> BulkRead:
        return cls(
            tagged=bulk.tagged, already=bulk.already, full=bulk.full, not_found=bulk.not_found
        )
