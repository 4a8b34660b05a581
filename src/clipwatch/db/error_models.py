"""Unexpected errors grouped by where they happen (issue #12's error tracking)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clipwatch.db.models import Base
from clipwatch.db.types import BigIntPK, UTCDateTime


class ErrorGroup(Base):
    """Every unhandled error of one kind at one place: the exception type and the innermost
    frame in clipwatch's own code (`clipwatch/clips/search.py:search_clips`). `fingerprint`
    is a hash of the two; the message and trace id are the latest occurrence's."""

    __tablename__ = "error_group"
    __table_args__ = (Index("ix_error_group_last_seen_at_id", "last_seen_at", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    error_type: Mapped[str] = mapped_column(String(200))
    place: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(64))  # `api` or `worker:<task>`, the latest
    message: Mapped[str] = mapped_column(Text)  # redacted, one line, bounded
    trace_id: Mapped[str] = mapped_column(String(128))  # the latest request or job id
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
