"""Typed, tolerant shapes of Helix objects: unknown fields ignored, empty strings and nulls handled.

Field facts: reference/twitch-api.md §3.2.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator


def _empty_to_none(value: Any) -> Any:
    return None if value == "" else value


def _none_to_zero(value: Any) -> Any:
    return 0 if value is None or value == "" else value


OptionalId = Annotated[str | None, BeforeValidator(_empty_to_none)]


class HelixClip(BaseModel):
    """One element of Get Clips' `data` array."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False, frozen=True)

    id: str = Field(min_length=1, max_length=128)
    url: str = ""
    embed_url: str = ""
    broadcaster_id: str = Field(min_length=1, max_length=64)
    broadcaster_name: str = Field(default="", max_length=128)
    creator_id: str = Field(default="", max_length=64)
    creator_name: str = Field(default="", max_length=128)
    video_id: OptionalId = None  # Twitch sends "" when there is no VOD
    game_id: OptionalId = None
    language: str = Field(default="other", max_length=16)
    title: str = ""
    view_count: Annotated[int, BeforeValidator(_none_to_zero)] = Field(default=0, ge=0)
    created_at: datetime
    thumbnail_url: str = ""
    duration: Annotated[float, BeforeValidator(_none_to_zero)] = Field(default=0.0, ge=0)
    vod_offset: int | None = None  # null without a VOD, and for minutes after creation
    is_featured: bool = False

    @field_validator("created_at")
    @classmethod
    def _needs_timezone(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created_at must carry a timezone (RFC3339)")
        return value

    @field_validator("language", "title", "broadcaster_name", "creator_name", mode="before")
    @classmethod
    def _null_to_empty(cls, value: Any) -> Any:
        return "" if value is None else value
