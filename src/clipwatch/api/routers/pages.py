"""The web page's routes: server-rendered HTML over the same search and cached reads as the
API. Rendering lives in clipwatch.web (no FastAPI there); docs/web.md."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date
from importlib.metadata import version
from typing import Any
from urllib.parse import parse_qsl, urlencode

import fastapi_offline
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from clipwatch.accounts.service import Principal
from clipwatch.api.auth import client_ip
from clipwatch.api.cached import cache_key
from clipwatch.api.clip_filters import ClipFilters, clip_answer, clip_read, clips_answer
from clipwatch.api.deps import AppState, Session, State, reads_only
from clipwatch.api.page_session import Member, Viewer, form_of, see_other
from clipwatch.api.params import ClipId, Cursor
from clipwatch.api.schemas import ClipPage, ClipRead
from clipwatch.clips import favourites, moderation, tags
from clipwatch.clips.search import Sort, check_ranges
from clipwatch.db.models import Tag
from clipwatch.db.repositories import favourites as favourites_repo
from clipwatch.db.repositories import moderation as moderation_repo
from clipwatch.errors import ClipwatchError, InvalidInput, NotFound, RateLimited
from clipwatch.web.render import PAGE_SIZE, STATIC_DIR, render

PAGE_TAG = "page"
VERSION = version("clipwatch")  # read once: importlib.metadata costs ~130 µs a call


async def page_limit(request: Request, state: State, viewer: Viewer) -> None:
    """Pages count against the caller's rate limit as the API's reads do: a signed-in viewer's
    against their user's limit (one bucket with their API calls), anyone else's against the
    anonymous limit of their address (one bucket with the API's anonymous reads). The viewer
    comes from the session cookie (page_session.page_viewer); an expired one makes the viewer
    anonymous: never a 401 on a page."""
    settings = state.settings
    if viewer is None:
        decision = await state.limiter.hit(settings.rate_limit_anonymous, "ip", client_ip(request))
    else:
        decision = await state.limiter.hit(settings.rate_limit_user, "user", str(viewer.user_id))
    request.state.rate_limit = decision
    if not decision.allowed:
        raise RateLimited(
            f"too many requests; try again in {decision.reset_after} s",
            retry_after=max(decision.reset_after, 1),
            headers=decision.headers(),
        )


# Every page router: counted, and the viewer read (page_session.page_viewer).
PAGE_DEPENDENCIES = [Depends(page_limit)]  # page_limit reads the viewer first
router = APIRouter(include_in_schema=False, tags=[PAGE_TAG], dependencies=PAGE_DEPENDENCIES)
HTML = "text/html; charset=utf-8"
SEARCH_PATH = "/"
# The form's fields, in the order a shared link shows them.
FORM_FIELDS = (
    "q",
    "broadcaster",
    "game",
    "creator",
    "tag",
    "language",
    "min_views",
    "max_views",
    "created_after",
    "created_before",
    "min_duration",
    "max_duration",
    "sort",
)
SORTS = (
    ("relevance", "Best match"),
    ("newest", "Newest"),
    ("oldest", "Oldest"),
    ("views", "Most viewed"),
)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _common(state: AppState, request: Request) -> dict[str, Any]:
    """What base.html needs: the demo banner, the header's search and who is signed in (read
    by page_session.page_viewer, a dependency of every page router; None on an error page
    raised before it ran)."""
    viewer: Principal | None = getattr(request.state, "viewer", None)
    return {
        "demo_mode": state.settings.demo_mode,
        "version": VERSION,
        "header_q": request.query_params.get("q", ""),
        "viewer": viewer,
        "csrf": viewer.csrf if viewer is not None else "",
        "current_path": request.url.path,
    }


def _form(request: Request) -> dict[str, str]:
    """What the form shows: the query as sent (a date-time bound shown as its day)."""
    form = {name: request.query_params.get(name, "") for name in FORM_FIELDS}
    for name in ("created_after", "created_before"):
        form[name] = form[name][:10] if _DAY.match(form[name]) else ""
    return form


def _html(body: str, status: int = 200, *, cache: bool = False) -> HTMLResponse:
    headers = {"Cache-Control": "no-cache" if cache else "no-store"}
    return HTMLResponse(body, status_code=status, headers=headers)


async def _cached_read(
    state: AppState, path: str, params: list[tuple[str, str]], compute: Callable[[], Awaitable[Any]]
) -> bytes:
    """The API's cached answer for `path?params`: the page and GET /api/v1/... share one entry."""
    key = cache_key(path, urlencode(params).encode())

    async def compute_bytes() -> tuple[bytes, Any]:
        model, deps = await compute()
        return model.__pydantic_serializer__.to_json(model), deps

    entry = await state.cache.get_or_compute(key, compute_bytes)
    return entry.body


@router.get(SEARCH_PATH, response_class=HTMLResponse)
@reads_only
async def search_page(
    request: Request,
    state: State,
    session: Session,
    filters: ClipFilters,
    sort: Sort | None = None,
    cursor: Cursor | None = None,
) -> Response:
    search = replace(filters, sort=sort, limit=PAGE_SIZE, cursor=cursor)
    check_ranges(search)

    async def compute() -> tuple[ClipPage, set[str]]:
        return await clips_answer(session, state, search)

    params = [*request.query_params.multi_items(), ("limit", str(PAGE_SIZE))]
    body = await _cached_read(state, "/api/v1/clips", params, compute)
    page = ClipPage.model_validate_json(body)
    next_url = None
    if page.next_cursor:
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        next_url = "/?" + urlencode([*kept, ("cursor", page.next_cursor)])
    filtered = any(k != "cursor" for k in request.query_params)
    # "Export these results": the same query, the first 1,000 (what anyone may export; the
    # page is the same for everyone, so it cannot offer more to the logged in).
    asked = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "limit")]
    export_query = urlencode([*asked, ("max_rows", "1000")])
    return _html(
        render(
            "search.html",
            **_common(state, request),
            form=_form(request),
            sorts=SORTS,
            clips=page.data,
            next_url=next_url,
            filtered=filtered,
            error=None,
            export_query=export_query,
        ),
        cache=True,
    )


@router.get("/clips/{clip_id}", response_class=HTMLResponse)
@reads_only
async def clip_page(
    request: Request, state: State, session: Session, clip_id: ClipId, viewer: Viewer
) -> Response:
    if viewer is not None and viewer.is_moderator:  # their own page: hidden clips too, uncached
        return await _moderators_clip_page(request, state, session, clip_id, viewer)

    async def compute() -> tuple[ClipRead, set[str]]:
        return await clip_answer(session, clip_id)

    body = await _cached_read(state, f"/api/v1/clips/{clip_id}", [], compute)
    clip = ClipRead.model_validate_json(body)
    kept = await _kept(session, viewer, clip.id)
    return _html(
        render(
            "clip.html",
            **_common(state, request),
            clip=clip,
            base_url=state.settings.base_url,
            moderating=False,
            hidden=None,
            favourite=kept,
            tagging=await _tagging(session, viewer, clip.id),
        ),
        cache=kept is None,  # a signed-in page holds the viewer's own star: never stored
    )


@dataclass(frozen=True)
class Tagging:
    """The clip page's tag box for a signed-in member: the tags they see on the clip (and
    whether they may take each off), and the ones they may put on."""

    on: list[tuple[Tag, bool]]
    available: list[Tag]


async def _tagging(session: Session, viewer: Principal | None, clip_id: str) -> Tagging | None:
    if viewer is None or "write" not in viewer.scopes:
        return None
    rows = await tags.clip_tags(session, viewer, clip_id)
    on = [
        (tag, tag.owner_id is not None or link.added_by_id == viewer.user_id or viewer.is_moderator)
        for tag, link in rows
    ]
    carried = {tag.id for tag, _ in rows}
    available = [tag for tag, _ in await tags.listed(session, viewer) if tag.id not in carried]
    return Tagging(on, available)


async def _kept(session: Session, viewer: Principal | None, clip_id: str) -> bool | None:
    """Whether the viewer keeps the clip; None for nobody signed in (no star shown)."""
    if viewer is None:
        return None
    return await favourites_repo.is_kept(session, viewer.user_id, clip_id)


async def _moderators_clip_page(
    request: Request, state: State, session: Session, clip_id: str, viewer: Principal
) -> Response:
    clip = await clip_read(session, clip_id, include_hidden=True)
    if clip is None:
        raise NotFound(f"no clip with id {clip_id}")
    hidden = await moderation_repo.find(session, clip.id)
    page = render(
        "clip.html",
        **_common(state, request),
        clip=clip,
        base_url=state.settings.base_url,
        moderating=True,
        hidden=hidden,
        favourite=await _kept(session, viewer, clip.id),
        tagging=None if hidden else await _tagging(session, viewer, clip.id),
    )
    return _html(page)


@router.post("/clips/{clip_id}/hide", response_class=HTMLResponse)
async def hide_clip(
    request: Request, session: Session, clip_id: ClipId, viewer: Member
) -> Response:
    form = await form_of(request, viewer)
    if not viewer.is_moderator:
        raise NotFound("no such page")
    await moderation.hide(session, viewer, clip_id, form.get("reason"))
    return see_other(f"/clips/{clip_id}")


@router.post("/clips/{clip_id}/favourite", response_class=HTMLResponse)
async def star_clip(
    request: Request, session: Session, clip_id: ClipId, viewer: Member
) -> Response:
    """The star on a clip page: `keep=1` keeps it, `keep=0` lets it go (both idempotent)."""
    form = await form_of(request, viewer)
    if form.get("keep") == "0":
        await favourites.drop(session, viewer, clip_id)
    else:
        await favourites.keep(session, viewer, clip_id)
    return see_other(f"/clips/{clip_id}")


def _tag_id(form: Any) -> int:
    value = str(form.get("tag") or "")
    if not (value.isascii() and value.isdigit() and value[0] != "0" and len(value) <= 16):
        raise InvalidInput("choose a tag", field="tag")
    return int(value)


@router.post("/clips/{clip_id}/tags", response_class=HTMLResponse)
async def tag_clip(request: Request, session: Session, clip_id: ClipId, viewer: Member) -> Response:
    """The clip page's tag box: put the chosen tag on the clip (idempotent)."""
    form = await form_of(request, viewer)
    await tags.tag_clip(session, viewer, clip_id, _tag_id(form))
    return see_other(f"/clips/{clip_id}")


@router.post("/clips/{clip_id}/tags/remove", response_class=HTMLResponse)
async def untag_clip(
    request: Request, session: Session, clip_id: ClipId, viewer: Member
) -> Response:
    form = await form_of(request, viewer)
    await tags.untag_clip(session, viewer, clip_id, _tag_id(form))
    return see_other(f"/clips/{clip_id}")


@router.post("/clips/{clip_id}/unhide", response_class=HTMLResponse)
async def unhide_clip(
    request: Request, session: Session, clip_id: ClipId, viewer: Member
) -> Response:
    await form_of(request, viewer)
    if not viewer.is_moderator:
        raise NotFound("no such page")
    await moderation.unhide(session, viewer, clip_id)
    return see_other(f"/clips/{clip_id}")


# --- Errors as pages -------------------------------------------------------------------------
ADVICE = {
    400: "Check the link, or start a new search.",
    429: "Too many pages in a short time from your address: wait a moment, then reload.",
    404: "It may never have been archived, or the link is mistyped.",
    422: "Change the value named above and try again.",
}


def _is_page(request: Request) -> bool:
    route = request.scope.get("route")
    return PAGE_TAG in (getattr(route, "tags", None) or [])


def _page_error(request: Request, answer: Response) -> Response:
    """The API's problem answer for a page route, told as a page with the same words."""
    try:
        problem = orjson.loads(bytes(answer.body))
    except orjson.JSONDecodeError:
        problem = {}
    status = answer.status_code
    detail = str(problem.get("detail") or "Something went wrong.")
    errors = problem.get("errors") if isinstance(problem.get("errors"), list) else []
    state: AppState = request.app.state.clipwatch
    route = request.scope.get("route")
    if getattr(route, "name", "") == "search_page" and status in (400, 422):
        body = render(
            "search.html",
            **_common(state, request),
            form=_form(request),
            sorts=SORTS,
            clips=[],
            next_url=None,
            filtered=True,
            error={"detail": detail, "errors": errors},
        )
    else:
        body = render(
            "error.html",
            **_common(state, request),
            title=str(problem.get("title") or f"Error {status}"),
            detail=detail,
            errors=errors,
            advice=ADVICE.get(status, "Try again in a moment."),
        )
    html = _html(body, status)
    for name in ("Retry-After", "Allow"):
        if name in answer.headers:
            html.headers[name] = answer.headers[name]
    return html


def install_page_errors(app: FastAPI) -> None:
    """Wrap the API's error handlers: page routes get the same status and words as HTML."""
    for kind in (RequestValidationError, ClipwatchError, StarletteHTTPException, Exception):
        original = app.exception_handlers[kind]

        async def handler(request: Request, exc: Exception, original: Any = original) -> Response:
            answer = original(request, exc)
            if inspect.isawaitable(answer):
                answer = await answer
            if not _is_page(request) or not hasattr(answer, "body"):
                return answer  # type: ignore[no-any-return]
            return _page_error(request, answer)

        app.add_exception_handler(kind, handler)


# --- Static assets and the form's query ------------------------------------------------------
class StaticAssets(StaticFiles):
    """Static files with a cache lifetime: browsers revalidate (ETag) after an hour."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response


def vendor_dir() -> str:
    """Swagger UI's assets, shipped by the fastapi-offline package (no CDN)."""
    return str(fastapi_offline.__path__[0]) + "/static"


def mount_static(app: FastAPI) -> None:
    app.mount("/static/vendor", StaticAssets(directory=vendor_dir()), name="vendor")
    app.mount("/static", StaticAssets(directory=STATIC_DIR), name="static")


class SearchQuery:
    """A GET form sends every field, blank or not, and a date field sends a day. Before the
    search page's strict reading: redirect to the same search without the blank fields and
    with days as RFC 3339 bounds (the URL a person shares is then the short, exact one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != SEARCH_PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        raw = scope.get("query_string", b"").decode("latin-1")
        pairs = parse_qsl(raw, keep_blank_values=True)
        cleaned = [(k, _bound(k, v.strip())) for k, v in pairs if v.strip() != ""]
        if cleaned == pairs:
            await self.app(scope, receive, send)
            return
        location = SEARCH_PATH + ("?" + urlencode(cleaned) if cleaned else "")
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _bound(name: str, value: str) -> str:
    if name in ("created_after", "created_before") and _DAY.fullmatch(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            return value  # the strict reading tells what is wrong with it
        return f"{value}T00:00:00Z" if name == "created_after" else f"{value}T23:59:59Z"
    return value


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(request: Request) -> Response:
    """Swagger UI from this app's own files: works offline and under the strict CSP."""
    title = request.app.title
    return _html(render("docs.html", title=title, openapi_url=request.app.openapi_url), cache=True)
