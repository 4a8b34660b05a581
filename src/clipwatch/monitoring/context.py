"""Ids bound to every log line of one request or one worker pass (structlog contextvars)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

# An id a client sends in X-Request-ID is kept when it is this plain; otherwise one is made.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID when sane (≤ 128 characters of A-Z a-z 0-9 . _ -), else a
    new one (32 hex digits)."""
    if header and SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def new_job_id(kind: str) -> str:
    """An id for one worker pass: its kind and 12 hex digits (`sync-3f2a9c01b2d4`)."""
    return f"{kind}-{uuid.uuid4().hex[:12]}"


@contextmanager
def job(kind: str) -> Iterator[str]:
    """Every line logged inside carries `job_id` (and `job`: the kind of pass)."""
    job_id = new_job_id(kind)
    with structlog.contextvars.bound_contextvars(job_id=job_id, job=kind):
        yield job_id


def start_job(kind: str) -> str:
    """Like `job`, for a loop whose every turn is one pass: from here on in this task (until
    the next turn's call), lines carry this pass's id."""
    job_id = new_job_id(kind)
    structlog.contextvars.bind_contextvars(job_id=job_id, job=kind)
    return job_id
