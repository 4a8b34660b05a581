"""Unhandled errors grouped by type and place (admins): docs/monitoring.md, Error tracking."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from clipwatch.api.auth import Admin
from clipwatch.api.deps import Session
from clipwatch.api.error_schemas import ErrorGroupList, ErrorGroupRead
from clipwatch.api.errors import problem_responses
from clipwatch.db.repositories import error_groups

router = APIRouter(tags=["errors"])
ADMIN = problem_responses(
    {401: "No valid credentials", 403: "Admins only", 422: "Invalid input", 429: "Rate limited"}
)


@router.get(
    "/errors",
    response_model=ErrorGroupList,
    responses=ADMIN,
    summary="Unhandled errors by type and place, the most recently seen first",
)
async def list_errors(
    session: Session,
    _principal: Admin,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ErrorGroupList:
    """Each group counts the unhandled errors (500 answers, worker tasks that died) of one
    exception type at one place in clipwatch's code, with the latest message and trace id."""
    groups = await error_groups.list_error_groups(session, limit)
    return ErrorGroupList(
        data=[ErrorGroupRead.from_group(g) for g in groups],
        total=await error_groups.count_error_groups(session),
    )
