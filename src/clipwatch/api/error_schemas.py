"""Error groups (error tracking) as the API shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from clipwatch.db.error_models import ErrorGroup


class ErrorGroupRead(BaseModel):
    id: int
    fingerprint: str = Field(description="a hash of the error's type and place")
    error_type: str = Field(description="the exception's class, with its module unless built in")
    place: str = Field(
        description="the innermost frame in clipwatch's code: clipwatch/<file>:<function>"
    )
    source: str = Field(description="where it last happened: api, or worker:<task>")
    message: str = Field(description="the latest occurrence's first line, secrets redacted")
    trace_id: str = Field(
        description="the latest occurrence's request id (X-Request-ID) or worker job id, "
        "as in the log lines"
    )
    count: int = Field(description="occurrences since the first")
    first_seen_at: datetime
    last_seen_at: datetime

    @classmethod
    def from_group(cls, group: ErrorGroup) -> ErrorGroupRead:
        return cls(
            id=group.id,
            fingerprint=group.fingerprint,
            error_type=group.error_type,
            place=group.place,
            source=group.source,
            message=group.message,
            trace_id=group.trace_id,
            count=group.count,
            first_seen_at=group.first_seen_at,
            last_seen_at=group.last_seen_at,
        )


class ErrorGroupList(BaseModel):
    data: list[ErrorGroupRead] = Field(description="the most recently seen first")
    total: int = Field(description="every group stored (the list holds at most `limit`)")
