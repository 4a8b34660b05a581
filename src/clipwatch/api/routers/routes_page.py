"""The notification route pages: /routes (mine), create and edit with every filter, the
template picker and editor, the live preview as Discord shows it, send test, the route's last
error and deliveries. docs/web.md, "Routes".

The pages call what the API calls: the forms are read into the API's own models (RouteCreate,
RouteUpdate) and saved by discord/routes.py; "Send test" is the API's handler, rate limit
included; the preview is the delivery's message builder (`build_messages` with the route's
`template_of`) over the clip a test would show (`example_clip`), drawn by web/discord_render.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from clipwatch.accounts.service import Principal
from clipwatch.api.deps import AppState, Session, State
from clipwatch.api.errors import _plain_message
from clipwatch.api.page_session import Member, form_of, see_other
from clipwatch.api.route_schemas import (
    CustomTemplateIn,
    DeliveryRead,
    RouteCreate,
    RouteFilters,
    RouteRead,
    RouteUpdate,
)
from clipwatch.api.routers.me import Id
from clipwatch.api.routers.pages import PAGE_DEPENDENCIES, PAGE_TAG, _common, _html
from clipwatch.api.routers.route_options_form import (
    FORUM_MODES,
    KINDS,
    ON_DELETED,
    PERIODS,
    WEEKDAYS,
    OptionsForm,
    option_field,
    options_body,
    shown_options,
    typed_options,
)
from clipwatch.api.routers.route_options_form import LABELS as OPTION_LABELS
from clipwatch.api.routers.routes import create_route, update_route
from clipwatch.api.routers.routes import test_route as api_test_route
from clipwatch.db.models import NotificationRoute
from clipwatch.db.repositories import notifications
from clipwatch.discord import routes as service
from clipwatch.discord.delivery import template_of
from clipwatch.discord.messages import (
    DESCRIPTION_MAX,
    SAMPLE,
    TITLE_MAX,
    ClipView,
    CustomTemplate,
    Template,
    TemplateFailures,
    build_messages,
    validate_template,
)
from clipwatch.discord.templates import CONTROL, TemplateProblem, compile_template, render
from clipwatch.errors import Conflict, Forbidden, InvalidInput
from clipwatch.web.discord_render import render_message
from clipwatch.web.render import render as render_page

router = APIRouter(include_in_schema=False, tags=[PAGE_TAG], dependencies=PAGE_DEPENDENCIES)

CUSTOM = "custom"
TEMPLATES = (("card", "Card"), ("compact", "Compact"), ("link", "Link"), (CUSTOM, "Custom"))
TEMPLATE_NAMES = dict(TEMPLATES)
TEMPLATE_FIELDS = ("template", "custom_title", "custom_description")
DELIVERIES_SHOWN = 20
Done = Literal["created", "saved", "deleted"]
NOTICES: dict[str, str] = {
    "created": "Route created. New clips its filters let through will be posted.",
    "saved": "Route saved.",
    "deleted": "Route deleted.",
}
LABELS = {
    "name": "Name",
    "webhook_url": "Discord webhook URL",
    "channels": "Channels",
    "games": "Games",
    "languages": "Languages",
    "min_views": "Views at least",
    "title_keywords": "Words in the title",
    "excluded_creators": "Not clipped by",
    "featured_only": "Featured clips only",
    "template": "Template",
    "custom_title": "Custom title",
    "custom_description": "Custom template",
    "delay_seconds": "Wait before posting",
    "batching": "Up to 10 clips in one message",
    "notify_live": "Post when a channel goes live",
    "notify_stream_end": "Post when a stream ends",
    "enabled": "Enabled",
    **OPTION_LABELS,
}
_SEPARATORS = re.compile(r"[,\s]+")
_WHOLE = re.compile(r"[+-]?[0-9]+")


# --- The form as typed, and as the API's models read it ----------------------------------------
@dataclass(frozen=True)
class RouteForm:
    """What the form shows: the text as typed (never the webhook URL, a secret)."""

    name: str = ""
    channels: str = ""
    games: str = ""
    languages: str = ""
    min_views: str = "0"
    title_keywords: str = ""
    excluded_creators: str = ""
    featured_only: bool = False
    template: str = "card"
    custom_title: str = "{{ title }}"
    custom_description: str = "{{ channel }} · {{ game }} · {{ views }} views"
    delay_seconds: str = "0"
    batching: bool = True
    notify_live: bool = False
    notify_stream_end: bool = False
    enabled: bool = True
    options: OptionsForm = field(default_factory=OptionsForm)


LIST_FIELDS = ("channels", "games", "languages", "excluded_creators", "title_keywords")
CHECKBOXES = ("featured_only", "batching", "notify_live", "notify_stream_end", "enabled")


def _typed(fields: dict[str, list[str]]) -> RouteForm:
    """The form as sent: a repeated list field adds its values, any other keeps its last."""

    def text(name: str, default: str = "") -> str:
        values = fields.get(name)
        if not values:
            return default
        value = "\n".join(values) if name in LIST_FIELDS else values[-1]
        return value.replace("\r\n", "\n")

    return RouteForm(
        name=text("name"),
        channels=text("channels"),
        games=text("games"),
        languages=text("languages"),
        min_views=text("min_views"),
        title_keywords=text("title_keywords"),
        excluded_creators=text("excluded_creators"),
        template=text("template", "card"),
        custom_title=text("custom_title"),
        custom_description=text("custom_description"),
        delay_seconds=text("delay_seconds"),
        options=typed_options(fields),
        **{name: name in fields for name in CHECKBOXES},
    )


def _shown(route: RouteRead) -> RouteForm:
    f = route.filters
    custom = isinstance(route.template, CustomTemplateIn)
    form = RouteForm(
        name=route.name,
        channels=", ".join(f.channels),
        games=", ".join(f.games),
        languages=", ".join(f.languages),
        min_views=str(f.min_views),
        title_keywords="\n".join(f.title_keywords),
        excluded_creators=", ".join(f.excluded_creators),
        featured_only=f.featured_only,
        template=CUSTOM if custom else str(getattr(route.template, "name", "card")),
        delay_seconds=str(route.delay_seconds),
        batching=route.batching,
        notify_live=route.notify_live,
        notify_stream_end=route.notify_stream_end,
        enabled=route.enabled,
        options=shown_options(route),
    )
    if isinstance(route.template, CustomTemplateIn):
        form = replace(
            form,
            custom_title=route.template.title,
            custom_description=route.template.description,
        )
    return form


def _number(text: str) -> Any:
    """A whole number as the JSON body would carry it; anything else is left as text, which
    the strict models refuse with their own words ("must be a whole number")."""
    text = text.strip()
    if not text:
        return 0
    if _WHOLE.fullmatch(text):
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-").lstrip("0") or "0"
        # Past 18 digits it is over every limit anyway (and int() of 5,000 digits raises).
        return int(text) if len(digits) <= 18 else sign * 10**18
    return text


def _words(text: str) -> list[str]:
    return [w for w in _SEPARATORS.split(text) if w]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def _template_body(form: RouteForm) -> dict[str, Any]:
    if form.template == CUSTOM:
        return {"custom": True, "title": form.custom_title, "description": form.custom_description}
    return {"name": form.template}


def _body(
    form: RouteForm, webhook_url: str, *, editing: bool, here_allowed: bool = False
) -> dict[str, Any]:
    """The JSON body the API would be sent for this form."""
    body: dict[str, Any] = {
        "name": form.name.strip(),
        "filters": {
            "channels": _words(form.channels),
            "games": _words(form.games),
            "languages": _words(form.languages),
            "min_views": _number(form.min_views),
            "title_keywords": _lines(form.title_keywords),
            "excluded_creators": _words(form.excluded_creators),
            "featured_only": form.featured_only,
        },
        "template": _template_body(form),
        "delay_seconds": _number(form.delay_seconds),
        "batching": form.batching,
        "notify_live": form.notify_live,
        "notify_stream_end": form.notify_stream_end,
        **options_body(form.options, here_allowed=here_allowed),
    }
    if editing:
        body["enabled"] = form.enabled
    if webhook_url:
        body["webhook_url"] = webhook_url
    return body


def _field_of(loc: tuple[Any, ...] | list[Any], choice: str) -> str:
    """The form field a model error (or a domain error's dotted field) is about."""
    names = [str(part) for part in loc if isinstance(part, str)]
    if not names:
        return "form"
    if names[0] == "filters" and len(names) > 1:
        return names[1]
    option = option_field(names)
    if option is not None:
        return option
    if names[0] == "template":
        if "title" in names[1:]:
            return "custom_title"
        if "description" in names[1:] or (choice == CUSTOM and len(names) == 1):
            return "custom_description"
        return "template"
    return names[0]


def _model_errors(exc: ValidationError, choice: str) -> dict[str, str]:
    """The errors, one per form field, in the API's words."""
    other = "BuiltinTemplate" if choice == CUSTOM else "CustomTemplateIn"
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if other in loc:  # the union's other member: not what the form chose
            continue
        message = _plain_message(dict(error))
        if any(isinstance(part, int) for part in loc) and isinstance(error.get("input"), str):
            message = f"“{error['input'][:40]}” {message}"
        errors.setdefault(_field_of(loc, choice), message)
    return errors


def _domain_error(exc: InvalidInput, choice: str) -> dict[str, str]:
    return {_field_of((exc.field or "form").split("."), choice): str(exc)}


def _need_write(viewer: Principal) -> None:
    if "write" not in viewer.scopes:  # as the API's Writer: a read-only session changes nothing
        raise Forbidden("this needs the 'write' scope")


# --- The preview -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preview:
    html: Markup | None = None  # None: nothing to show (see errors)
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    clip_note: str = ""


def _overflows(template: Template, clip: ClipView) -> list[str]:
    """What a custom template made past Discord's limits on this clip (the builder cuts it).
    Measured by rendering the parts as the builder does; the message itself is the builder's."""
    if not isinstance(template, CustomTemplate):
        return []
    problems = []
    for part, source, limit in (
        ("title", template.title, TITLE_MAX),
        ("description", template.description, DESCRIPTION_MAX),
    ):
        try:
            text = render(compile_template(source), clip.variables())
        except TemplateProblem:
            continue  # told as the clip's failure
        size = len(CONTROL.sub("", text).strip())
        if size > limit:
            problems.append(
                f"The {part} came to {size:,} characters; Discord allows {limit:,}, "
                "so it is cut to fit, ending in “…”."
            )
    return problems


async def _preview(session: Session, form: RouteForm) -> tuple[Preview, dict[str, str]]:
    """The message a post of this route would be, for the clip a test would show; and the
    form's errors (the webhook aside: a preview needs none)."""
    errors: dict[str, str] = {}
    try:
        RouteUpdate.model_validate(_body(form, "", editing=True))
    except ValidationError as exc:
        errors = _model_errors(exc, form.template)
        errors.pop("name", None)  # a name is for saving; a preview needs none
    template_errors = [errors[name] for name in TEMPLATE_FIELDS if name in errors]
    if template_errors:
        return Preview(errors=template_errors), errors
    try:
        template_body = RouteUpdate.model_validate({"template": _template_body(form)}).template
    except ValidationError as exc:  # named on its field above; here for the types' sake
        return Preview(errors=[str(exc.errors()[0]["msg"])]), errors
    assert template_body is not None
    try:
        filters = RouteFilters.model_validate(_body(form, "", editing=False)["filters"])
    except ValidationError:
        filters = RouteFilters()  # told on their fields; the example ignores them
    route = NotificationRoute(filters=filters.model_dump(), template=template_body.model_dump())
    template = template_of(route)
    try:
        validate_template(template)  # what saving it would check
    except InvalidInput as exc:
        errors.update(_domain_error(exc, form.template))
        return Preview(errors=[str(exc)]), errors
    view = await service.example_clip(session, route)
    clip = view or SAMPLE
    failures: TemplateFailures = []
    message = build_messages(template, [clip], template_failures=failures)[0]
    shown = render_message(message)
    problems = _overflows(template, clip)
    problems += [
        f"On this clip the template fails ({problem}): a post would use the card template."
        for _, problem in failures
    ]
    problems += shown.problems
    note = (
        f"Shown with the newest stored clip these filters let through: {view.title} ({view.id})."
        if view
        else "No stored clip matches these filters yet: shown with a built-in example clip."
    )
    return Preview(html=shown.html, problems=problems, clip_note=note), errors


# --- Pages -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteRow:
    route: RouteRead
    template: str
    summary: list[str]
    counts: dict[str, int]
    mine: bool


def _template_name(route: RouteRead) -> str:
    if isinstance(route.template, CustomTemplateIn):
        return TEMPLATE_NAMES[CUSTOM]
    return TEMPLATE_NAMES.get(route.template.name, route.template.name)


def _summary(filters: RouteFilters) -> list[str]:
    parts = []
    for label, values in (
        ("Channels", filters.channels),
        ("Games", filters.games),
        ("Languages", filters.languages),
        ("Title has", filters.title_keywords),
        ("Not clipped by", filters.excluded_creators),
    ):
        if values:
            parts.append(f"{label}: {', '.join(values)}")
    if filters.min_views:
        parts.append(f"At least {filters.min_views:,} views")
    if filters.featured_only:
        parts.append("Featured clips only")
    return parts or ["Every new clip"]


def _form_page(
    state: AppState,
    request: Request,
    *,
    form: RouteForm,
    route: RouteRead | None,
    preview: Preview,
    errors: dict[str, str],
    webhook_typed: bool = False,
    saving: bool = False,
    status: int = 200,
) -> Response:
    action = f"/routes/{route.id}/edit" if route else "/routes/new"
    body = render_page(
        "route_form.html",
        **_common(state, request),
        form=form,
        route=route,
        action=action,
        templates=TEMPLATES,
        kinds=KINDS,
        periods=PERIODS,
        weekdays=WEEKDAYS,
        forum_modes=FORUM_MODES,
        on_deleted=ON_DELETED,
        preview=preview,
        errors=errors,
        labels=LABELS,
        saving=saving,
        webhook_typed=webhook_typed,
    )
    return _html(body, status)


async def _route_page(
    state: AppState,
    request: Request,
    session: Session,
    route: NotificationRoute,
    *,
    notice: str | None = None,
    failed: str | None = None,
    status: int = 200,
) -> Response:
    deliveries = await notifications.list_deliveries(session, [route.id], None, DELIVERIES_SHOWN)
    read = RouteRead.from_route(route)
    body = render_page(
        "route.html",
        **_common(state, request),
        route=read,
        template_name=_template_name(read),
        summary=_summary(read.filters),
        weekdays=WEEKDAYS,
        deliveries=[DeliveryRead.from_delivery(d) for d in deliveries],
        notice=notice,
        failed=failed,
    )
    return _html(body, status)


@router.get("/routes", response_class=HTMLResponse)
async def routes_list(
    request: Request, state: State, session: Session, viewer: Member, done: Done | None = None
) -> Response:
    routes = await service.routes_of(session, viewer)
    counts = await notifications.delivery_counts_by_route(session, [r.id for r in routes])
    rows = []
    for route in routes:
        read = RouteRead.from_route(route)
        rows.append(
            RouteRow(
                read,
                _template_name(read),
                _summary(read.filters),
                counts[route.id],
                route.user_id == viewer.user_id,
            )
        )
    body = render_page(
        "routes.html",
        **_common(state, request),
        rows=rows,
        notice=NOTICES.get(done or ""),
    )
    return _html(body)


@router.get("/routes/new", response_class=HTMLResponse)
async def new_route_page(
    request: Request, state: State, session: Session, viewer: Member
) -> Response:
    form = RouteForm()
    preview, _ = await _preview(session, form)
    return _form_page(state, request, form=form, route=None, preview=preview, errors={})


async def _save_or_preview(
    request: Request,
    state: AppState,
    session: AsyncSession,
    viewer: Principal,
    route: NotificationRoute | None,
    save: Callable[[dict[str, Any]], Awaitable[str]],
) -> Response:
    """The route form sent: "Preview" shows it (nothing saved); "Save route" hands the API's
    body to `save`, which answers where to go, or the form comes back with the errors."""
    sent = await form_of(request, viewer)
    _need_write(viewer)
    form = _typed(sent.fields)
    webhook_url = sent.get("webhook_url").strip()
    preview, errors = await _preview(session, form)
    saving = sent.get("action") != "preview"
    if saving:
        try:
            here = bool(route is not None and route.here_allowed)
            body = _body(form, webhook_url, editing=route is not None, here_allowed=here)
            return see_other(await save(body))
        except ValidationError as exc:
            errors = {**errors, **_model_errors(exc, form.template)}
        except InvalidInput as exc:
            if route is not None:
                # The service set some values before refusing: reload them, none is committed.
                await session.refresh(route)
            errors = {**errors, **_domain_error(exc, form.template)}
    return _form_page(
        state,
        request,
        form=form,
        route=RouteRead.from_route(route) if route is not None else None,
        preview=preview,
        errors=errors,
        webhook_typed=bool(webhook_url),
        saving=saving,
        status=422 if saving or preview.errors else 200,
    )


@router.post("/routes/new", response_class=HTMLResponse)
async def new_route(request: Request, state: State, session: Session, viewer: Member) -> Response:
    async def save(body: dict[str, Any]) -> str:
        created = await create_route(
            request, state, session, viewer, RouteCreate.model_validate(body)
        )
        return f"/routes/{created.id}?done=created"

    return await _save_or_preview(request, state, session, viewer, None, save)


@router.post("/routes/preview", response_class=HTMLResponse)
async def preview_fragment(request: Request, session: Session, viewer: Member) -> Response:
    """The preview alone (an HTML fragment), for the page's script as the user types."""
    sent = await form_of(request, viewer)
    preview, _ = await _preview(session, _typed(sent.fields))
    body = render_page("route_preview.html", preview=preview)
    return _html(body, 422 if preview.errors else 200)


@router.get("/routes/{route_id}", response_class=HTMLResponse)
async def route_page(
    request: Request,
    state: State,
    session: Session,
    viewer: Member,
    route_id: Id,
    done: Done | None = None,
) -> Response:
    route = await service.visible_route(session, viewer, route_id)
    return await _route_page(state, request, session, route, notice=NOTICES.get(done or ""))


@router.get("/routes/{route_id}/edit", response_class=HTMLResponse)
async def edit_route_page(
    request: Request, state: State, session: Session, viewer: Member, route_id: Id
) -> Response:
    read = RouteRead.from_route(await service.visible_route(session, viewer, route_id))
    form = _shown(read)
    preview, _ = await _preview(session, form)
    return _form_page(state, request, form=form, route=read, preview=preview, errors={})


@router.post("/routes/{route_id}/edit", response_class=HTMLResponse)
async def edit_route(
    request: Request, state: State, session: Session, viewer: Member, route_id: Id
) -> Response:
    route = await service.visible_route(session, viewer, route_id)  # another's: 404 first

    async def save(body: dict[str, Any]) -> str:
        await update_route(
            request, state, session, viewer, route_id, RouteUpdate.model_validate(body)
        )
        return f"/routes/{route_id}?done=saved"

    return await _save_or_preview(request, state, session, viewer, route, save)


@router.post("/routes/{route_id}/test", response_class=HTMLResponse)
async def test_route_page(
    request: Request, state: State, session: Session, viewer: Member, route_id: Id
) -> Response:
    await service.visible_route(session, viewer, route_id)
    await form_of(request, viewer)
    _need_write(viewer)
    try:
        # The API's handler: the same visibility check, per-user rate limit and service.
        result = await api_test_route(request, state, session, viewer, route_id)
    except Conflict as exc:
        route = await service.visible_route(session, viewer, route_id)
        return await _route_page(state, request, session, route, failed=str(exc), status=409)
    route = await service.visible_route(session, viewer, route_id)
    shown = f"clip {result.clip_id}" if result.clip_id else "the built-in example clip"
    if result.sent:
        notice = f"Test message sent, showing {shown} (Discord message {result.message_id})."
        return await _route_page(state, request, session, route, notice=notice)
    return await _route_page(
        state, request, session, route, failed=f"The test message was not sent: {result.detail}."
    )


@router.get("/routes/{route_id}/delete", response_class=HTMLResponse)
async def delete_route_page(
    request: Request, state: State, session: Session, viewer: Member, route_id: Id
) -> Response:
    read = RouteRead.from_route(await service.visible_route(session, viewer, route_id))
    return _html(render_page("route_delete.html", **_common(state, request), route=read))


@router.post("/routes/{route_id}/delete", response_class=HTMLResponse)
async def delete_route(
    request: Request, state: State, session: Session, viewer: Member, route_id: Id
) -> Response:
    await service.visible_route(session, viewer, route_id)
    await form_of(request, viewer)
    _need_write(viewer)
    await service.delete_route(session, viewer, route_id)
    return see_other("/routes?done=deleted")
