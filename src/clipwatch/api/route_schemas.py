"""Request and response shapes of notification routes and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from clipwatch.api.account_schemas import TimeZone
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


Snowflake = Annotated[str, StringConstraints(pattern=r"^[0-9]{17,20}$")]
ThreadName = Annotated[
    str, StringConstraints(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$")
]


_INVISIBLE = r"\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069"
# discord/identity.py has the last word; these say the same in the OpenAPI document.
RouteUsername = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=80, pattern=rf"^[^{_INVISIBLE}]*[^\s{_INVISIBLE}][^{_INVISIBLE}]*$"
    ),
    Field(
        description='Shown as the poster; Discord refuses names containing "clyde" or "discord"',
        json_schema_extra={"not": {"pattern": "[cC][lL][yY][dD][eE]|[dD][iI][sS][cC][oO][rR][dD]"}},
    ),
]
AvatarUrl = Annotated[
    str,
    # The default CLIPWATCH_AVATAR_ALLOWED_HOSTS; the server's setting has the last word.
    StringConstraints(
        max_length=500,
        pattern=r"^https://(cdn\.discordapp\.com|media\.discordapp\.net|static-cdn\.jtvnw\.net)"
        rf"/[^\s{_INVISIBLE}]+$",
    ),
    Field(description="An https image on an allowed host"),
]


class DigestSchedule(StrictBody):
    """When a digest route posts: the top `top` clips of the period that just ended, at
    `time` in `time_zone` (weekly: on `weekday`, Monday 0; monthly: on the 1st)."""

    period: Literal["day", "week", "month"] = "week"
    weekday: int = Field(default=0, ge=0, le=6, description="Weekly digests: Monday 0")
    time: Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "18:00"
    time_zone: TimeZone = "UTC"
    top: int = Field(default=10, ge=1, le=25)


class RouteDiscordOptions(StrictBody):
    """Issue 15's options, shared by create and update (docs/discord.md)."""

    kind: Literal["clips", "digest"] | None = Field(
        default=None, description="`clips` (new clips, the default) or `digest` (top clips)"
    )
    thread_id: Snowflake | None = Field(
        default=None, description="Post into this thread of the webhook's channel"
    )
    forum_mode: Literal["post", "day", "stream"] | None = Field(
        default=None,
        description="A forum channel: a new post per clip, or one per day or stream that "
        "later clips reply into (needs `thread_name`)",
    )
    thread_name: ThreadName | None = Field(
        default=None, description="A template for forum post names, e.g. `{{ title }}`"
    )
    role_ids: list[Snowflake] | None = Field(
        default=None, max_length=20, description="Roles to ping (none: nobody is pinged)"
    )
    ping_here: bool | None = Field(
        default=None, description="Ping @here (only where an admin allowed it: `here_allowed`)"
    )
    here_allowed: bool | None = Field(default=None, description="Admins only")
    username: RouteUsername | None = None
    avatar_url: AvatarUrl | None = None
    digest: DigestSchedule | None = None
    trending_views_per_hour: int | None = Field(
        default=None,
        ge=1,
        le=10**9,
        description="Post a clip once when it gains this many views an hour",
    )
    on_deleted: Literal["keep", "edit", "delete"] | None = Field(
        default=None,
        description="A posted clip deleted on Twitch: keep, edit or delete its message",
    )
    milestones: list[Annotated[int, Field(ge=1, le=10**12)]] | None = Field(
        default=None, max_length=10, description="View counts at which the message is edited"
    )


class RouteCreate(RouteDiscordOptions):
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


class RouteUpdate(RouteDiscordOptions):
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
    kind: str = "clips"
    thread_id: str | None = None
    forum_mode: str | None = None
    thread_name: str | None = None
    role_ids: list[str] = Field(default_factory=list)
    ping_here: bool = False
    here_allowed: bool = False
    username: str | None = None
    avatar_url: str | None = None
    webhook_channel_id: str | None = Field(default=None, description="From Discord, when saved")
    webhook_guild_id: str | None = None
    webhook_name: str | None = None
    webhook_checked_at: datetime | None = Field(
        default=None, description="When Discord last confirmed the webhook (at save)"
    )
    digest: DigestSchedule | None = None
    trending_views_per_hour: int | None = None
    on_deleted: str = "keep"
    milestones: list[int] = Field(default_factory=list)
    created_via: str = "api"

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
            kind=route.kind or "clips",
            thread_id=route.thread_id,
            forum_mode=route.forum_mode,
            thread_name=route.thread_name,
            role_ids=list(route.role_ids or []),
            ping_here=bool(route.ping_here),
            here_allowed=bool(route.here_allowed),
            username=route.username,
            avatar_url=route.avatar_url,
            webhook_channel_id=route.webhook_channel_id,
            webhook_guild_id=route.webhook_guild_id,
            webhook_name=route.webhook_name,
            webhook_checked_at=route.webhook_checked_at,
            digest=DigestSchedule.model_validate(route.digest) if route.digest else None,
            trending_views_per_hour=route.trending_views_per_hour,
            on_deleted=route.on_deleted or "keep",
            milestones=list(route.milestones or []),
            created_via=route.created_via or "api",
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
