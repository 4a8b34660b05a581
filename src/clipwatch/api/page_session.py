"""Who is looking at a page, and the proofs a page's form must carry (docs/web.md, "Signed-in
pages").

- `page_viewer` reads the session cookie only (a browser's credential; a bearer token is the
  API's). A cookie that is unknown, expired or revoked makes the viewer anonymous: a page never
  answers 401 for a stale cookie. The viewer is kept on `request.state.viewer`, so every page
  and every error page shows the same header.
- `Member` pages need a viewer: without one the browser is sent (303) to `/login?next=...`.
  `AdminPage` pages answer 404 to anyone but an admin, as the API does for others' things.
- A form (`form_of`) is `application/x-www-form-urlencoded`, at most `FORM_MAX_BYTES`, from
  this site (an `Origin` or `Referer` of another origin is refused), and, for a signed-in
  viewer, carries the session's CSRF proof in the `csrf` field: the same proof the API wants in
  `X-CSRF-Token` for a cookie-authenticated write. Pages that call the API from script send it
  from `<meta name="csrf-token">`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from clipwatch.accounts import service
from clipwatch.accounts.credentials import same_secret
from clipwatch.accounts.service import Principal
from clipwatch.api.auth import session_cookie_name
from clipwatch.api.deps import Session, State
from clipwatch.errors import BadRequest, Forbidden, NotFound

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
CSRF_FIELD = "csrf"
FORM_MAX_BYTES = 64 * 1024
FORM_MAX_FIELDS = 500
FORM_TYPE = "application/x-www-form-urlencoded"


class LoginRequired(Exception):
    """A signed-in page asked for by nobody: answered by a 303 to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__("log in to see this page")
        self.next_path = next_path


async def page_viewer(request: Request, state: State, session: Session) -> Principal | None:
    cached: Principal | None = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached
    secret = request.cookies.get(session_cookie_name(state.settings))
    viewer = None
    if secret:
        viewer = await service.authenticate_session(session, secret, state.session_policy)
    request.state.viewer = viewer
    return viewer


Viewer = Annotated[Principal | None, Depends(page_viewer)]


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + ("?" + query if query else "")


async def member(request: Request, viewer: Viewer) -> Principal:
    if viewer is None:
        raise LoginRequired(_here(request) if request.method == "GET" else request.url.path)
    return viewer


async def admin_viewer(request: Request, viewer: Viewer) -> Principal:
    principal = await member(request, viewer)
    if not principal.is_admin:
        raise NotFound("no such page")
    return principal


Member = Annotated[Principal, Depends(member)]
AdminPage = Annotated[Principal, Depends(admin_viewer)]


def safe_next(value: str | None, default: str = "/") -> str:
    """Where to go after logging in: a path of this site only (never `//host` or a URL)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def login_url(next_path: str) -> str:
    return f"{LOGIN_PATH}?next={quote(safe_next(next_path), safe='/')}"


def see_other(path: str) -> RedirectResponse:
    """After a form's POST: the browser loads `path` with a GET (reload never resends)."""
    return RedirectResponse(safe_next(path), status_code=303)


@dataclass(frozen=True)
class Form:
    fields: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[-1] if values else default

    def all(self, name: str) -> list[str]:
        return list(self.fields.get(name, []))

    def has(self, name: str) -> bool:
        return name in self.fields


def _same_origin(request: Request, value: str) -> bool:
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return False
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


async def form_of(request: Request, viewer: Principal | None) -> Form:
    """The POSTed form, checked: type, size, origin and (for a viewer) the CSRF proof."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM_TYPE:
        raise BadRequest(f"a form must be sent as {FORM_TYPE}")
    origin = request.headers.get("origin")
    referer = request.headers.get("referer")
    if origin is not None and origin != "null" and not _same_origin(request, origin):
        raise Forbidden("this form was sent from another site")
    if origin is None and referer and not _same_origin(request, referer):
        raise Forbidden("this form was sent from another site")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            raise BadRequest(f"the form is larger than {FORM_MAX_BYTES // 1024} KiB")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the form is not UTF-8") from None
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, max_num_fields=FORM_MAX_FIELDS, errors="strict"
        )
    except UnicodeDecodeError:
        raise BadRequest("the form is not UTF-8") from None
    except ValueError:
        raise BadRequest(f"the form has more than {FORM_MAX_FIELDS} fields") from None
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise BadRequest(f"the field {name[:40]!r} holds a NUL character")
        fields.setdefault(name, []).append(value)
    form = Form(fields)
    if viewer is not None:
        proof = form.get(CSRF_FIELD)
        if viewer.csrf is None or not same_secret(proof, viewer.csrf):
            raise Forbidden("the form's proof is missing or old: reload the page and send it again")
    return form


def install_login_redirect(app: FastAPI) -> None:
    async def redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return RedirectResponse(login_url(exc.next_path), status_code=303)

    app.add_exception_handler(LoginRequired, redirect)
