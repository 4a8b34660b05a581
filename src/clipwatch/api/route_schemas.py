"""Request and response shapes of notification routes and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from clipwatch.api.params import Key, Language
from clipwatch.api.schemas import StrictBody
from clipwatch.db.models import Delivery, NotificationRoute
from clipwatch.discord.webhook_url import EXAMPLE_WEBHOOK_URL, MAX_URL_LENGTH, WEBHOOK_URL_PATTERN

Text = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
]
WebhookUrl = Annotated[
    str,
    # The default CLIPWATCH_WEBHOOK_ALLOWED_HOSTS; the server's setting has the last word.
    StringConstraints(max_length=MAX_URL_LENGTH, pattern=WEBHOOK_URL_PATTERN),
    Field(
        description="A Discord webhook URL (https, an allowed Discord host). Stored encrypted; "
        "never shown in full again",
        examples=[EXAMPLE_WEBHOOK_URL],
    ),
]


class RouteFilters(StrictBody):
    channels: list[Key] = Field(default_factory=list, max_length=200)
    games: list[Key] = Field(default_factory=list, max_length=200)
    languages: list[Language] = Field(default_factory=list, max_length=50)
    min_views: int = Field(default=0, ge=0, le=10**12)
    title_keywords: list[Text] = Field(default_factory=list, max_length=50)
    excluded_creators: list[Key] = Field(default_factory=list, max_length=200)
    featured_only: bool = False


class BuiltinTemplate(StrictBody):
    name: Literal["card", "compact", "link"] = "card"


class CustomTemplateIn(StrictBody):
    custom: Literal[True]
    title: Annotated[str, StringConstraints(max_length=500)]
    description: Annotated[str, StringConstraints(max_length=2000)]


class RouteCreate(StrictBody):
    name: Text
    webhook_url: WebhookUrl
    filters: RouteFilters = Field(default_factory=RouteFilters)
    template: BuiltinTemplate | CustomTemplateIn = Field(default_factory=BuiltinTemplate)
    delay_seconds: int = Field(default=0, ge=0, le=3600, description="Wait before posting")
    batching: bool = Field(default=True, description="Up to 10 clips in one message")
    notify_live: bool = Field(
        default=False, description="Post when a channel the filters let through goes live"
    )
    notify_stream_end: bool = Field(
        default=False, description='Post "stream ended: N clips" after its final sync'
    )


class RouteUpdate(StrictBody):
    name: Text | None = None
    webhook_url: WebhookUrl | None = None
    filters: RouteFilters | None = None
    template: BuiltinTemplate | CustomTemplateIn | None = None
    delay_seconds: int | None = Field(default=None, ge=0, le=3600)
    batching: bool | None = None
    notify_live: bool | None = None
    notify_stream_end: bool | None = None
    enabled: bool | None = None


class RouteRead(BaseModel):
    id: int
    user_id: int
    name: str
    webhook: str = Field(description="The webhook, its token hidden")
    filters: RouteFilters
    template: BuiltinTemplate | CustomTemplateIn
    delay_seconds: int
    batching: bool
    notify_live: bool = Field(description="Posts when a channel goes live (docs/live.md)")
    notify_stream_end: bool = Field(description='Posts "stream ended: N clips"')
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    last_error: str | None = Field(
        description="The last problem the route's settings caused, e.g. its template failing "
        "on a clip (that clip was sent with the card template)"
    )
    last_error_at: datetime | None
    error_count: int = Field(description="Problems since the template was last changed")

    @classmethod
    def from_route(cls, route: NotificationRoute) -> RouteRead:
        template = route.template or {"name": "card"}
        return cls(
            id=route.id,
            user_id=route.user_id,
            name=route.name,
            webhook=f"discord webhook {route.webhook_id} (token hidden)",
            filters=RouteFilters.model_validate(route.filters or {}),
            template=(
                CustomTemplateIn.model_validate(template)
                if template.get("custom")
                else BuiltinTemplate.model_validate(template)
            ),
            delay_seconds=route.delay_seconds,
            batching=route.batching,
            notify_live=bool(route.notify_live),
            notify_stream_end=bool(route.notify_stream_end),
            enabled=route.enabled,
            disabled_reason=route.disabled_reason,
            created_at=route.created_at,
            last_error=route.last_error,
            last_error_at=route.last_error_at,
            error_count=route.error_count or 0,
        )


class RouteTestResult(BaseModel):
    sent: bool
    message_id: str | None
    detail: str
    clip_id: str | None = Field(
        default=None,
        description="The stored clip the test showed (the newest the route would post); "
        "null: none matches, so the built-in sample",
    )
    route_enabled: bool = Field(
        default=True, description="False when Discord said the webhook is gone: now disabled"
    )


class DeliveryRead(BaseModel):
    id: int
    route_id: int
    clip_id: str = Field(description="The clip's id; `live:<stream>`/`end:<stream>` for notices")
    kind: str = Field(description="`clip`, or a stream notice: `live`, `stream_end`")
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    message_id: str | None
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def from_delivery(cls, d: Delivery) -> DeliveryRead:
        return cls.model_validate(d, from_attributes=True)
