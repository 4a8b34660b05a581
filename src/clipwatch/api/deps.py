"""Request dependencies: settings, one transaction scope per request, strict query strings."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from clipwatch.accounts.ratelimit import RateLimiter
from clipwatch.accounts.service import SessionPolicy
from clipwatch.cache.manager import CacheManager
from clipwatch.config import Settings
from clipwatch.db.engine import session_scope
from clipwatch.runtime.worker import WorkerStats
from clipwatch.twitch.client import HelixClient


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    limiter: RateLimiter
    session_policy: SessionPolicy
    twitch: HelixClient | None = None  # None without Twitch credentials
    worker: WorkerStats | None = None  # the worker in this process (`serve`), if any
    demo_sink: str | None = None  # demo mode: where the simulated Discord's messages are read
    cache: CacheManager = field(default_factory=CacheManager)
    # Sessions for the handlers marked `reads_only` (db.engine.create_reading_sessionmaker);
    # None: they use `sessionmaker` like the rest.
    reader: async_sessionmaker[AsyncSession] | None = None


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.clipwatch
    return state


_READS_ONLY = "_clipwatch_reads_only"
_READING_METHODS = frozenset({"GET", "HEAD"})
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def reads_only(endpoint: Endpoint) -> Endpoint:
    """Marks a GET handler that writes nothing (bar the sign-in touch of its caller, which
    then commits by itself): its session is a reading one, without a transaction of its own
    on PostgreSQL (db.engine.create_reading_sessionmaker). Put it under `@router.get`."""
    setattr(endpoint, _READS_ONLY, True)
    return endpoint


def is_reads_only(endpoint: object) -> bool:
    return bool(getattr(endpoint, _READS_ONLY, False))


async def get_session(
    request: Request,
    state: Annotated[AppState, Depends(get_state)],
) -> AsyncIterator[AsyncSession]:
    sessionmaker = state.sessionmaker
    if (
        state.reader is not None
        and request.method in _READING_METHODS
        and is_reads_only(request.scope.get("endpoint"))
    ):
        sessionmaker = state.reader
    async with session_scope(sessionmaker) as session:
        yield session


State = Annotated[AppState, Depends(get_state)]
# The transaction commits when the handler returns, before the answer leaves: a client never
# reads a 2xx for a write that is not yet committed (or that then fails to commit).
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]


# --- Query strings read strictly ---------------------------------------------------------------
# Every route declares its query parameters; anything else is a mistake the caller wants to hear
# about (`period=week` on /clips used to answer unfiltered). Scalars are read in the spelling the
# OpenAPI document gives them: pydantic alone would take `1.0` or `+1` as an integer, `yes` or
# `0` as a boolean and `0.5` as a date-time (Unix seconds).
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")  # JSON's
_DATE_TIME = re.compile(  # RFC 3339
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# Each scalar's accepted spelling, and the pydantic error type that names a wrong one.
_SPELLINGS: dict[type, tuple[Callable[[str], bool], str]] = {
    bool: (lambda value: value in ("true", "false"), "bool_parsing"),
    int: (lambda value: _INTEGER.fullmatch(value) is not None, "int_parsing"),
    float: (lambda value: _NUMBER.fullmatch(value) is not None, "float_parsing"),
    datetime: (lambda value: _DATE_TIME.fullmatch(value) is not None, "datetime_parsing"),
}


_CACHE_ATTRIBUTE = "_clipwatch_declared_query"


def _scalar(annotation: Any) -> type | None:
    """The bool, int, float or datetime a parameter's annotation reads its value as, if any."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType, list):
        kinds = {_scalar(arg) for arg in get_args(annotation) if arg is not type(None)}
        return kinds.pop() if len(kinds) == 1 else None
    return annotation if annotation in _SPELLINGS else None


def declared_query(route: APIRoute) -> dict[str, type | None]:
    """A route's query parameters (their names as sent) and the scalar each reads as."""
    cached: dict[str, type | None] | None = route.__dict__.get(_CACHE_ATTRIBUTE)
    if cached is not None:
        return cached
    declared: dict[str, type | None] = {}
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        for param in dependant.query_params:
            declared[param.alias] = _scalar(param.field_info.annotation)
        pending.extend(dependant.dependencies)
    setattr(route, _CACHE_ATTRIBUTE, declared)  # routes are unhashable: kept on the route
    return declared


def strict_query(request: Request) -> None:
    """Applied to every route: unknown query parameters and loosely spelled scalars are 422,
    told as validation errors are (api/errors.py words them)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = declared_query(route)
    known = ", ".join(sorted(declared)) or "none"
    errors: list[dict[str, Any]] = []
    for name, value in request.query_params.multi_items():
        if name not in declared:
            kind = "unknown_query_parameter"
            errors.append({"type": kind, "loc": ("query", name), "ctx": {"known": known}})
            continue
        scalar = declared[name]
        if scalar is not None:
            accepts, kind = _SPELLINGS[scalar]
            if not accepts(value):
                errors.append({"type": kind, "loc": ("query", name), "input": value})
    if errors:
        raise RequestValidationError(errors)
