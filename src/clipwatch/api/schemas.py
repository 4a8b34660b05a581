"""Response and request shapes of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from clipwatch.db.models import Channel, ChannelLive, ChannelSync, Clip, Game, Stream


class StrictBody(BaseModel):
    """A request body: unknown fields refused, and JSON types taken strictly (false is no
    integer, 0 no boolean, "5" no number), except that 5.0 is the integer 5 as JSON Schema says."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_floats(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {key: _integral(value) for key, value in data.items()}


def _integral(value: Any) -> Any:
    """5.0 is 5, also as an item of a list (milestones: [1000.0])."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
    return value


CLIP_EXAMPLE: dict[str, Any] = {
    "id": "AwkwardHelplessSalamanderSwiftRage",
    "url": "https://clips.twitch.tv/AwkwardHelplessSalamanderSwiftRage",
    "embed_url": "https://clips.twitch.tv/embed?clip=AwkwardHelplessSalamanderSwiftRage",
    "broadcaster_id": "67955580",
    "broadcaster_name": "ChewieMelodies",
    "creator_id": "53834192",
    "creator_name": "BlackNova03",
    "video_id": "205586603",
    "game_id": "488191",
    "game_name": "Just Chatting",
    "language": "en",
    "title": "babymetal",
    "view_count": 10,
    "created_at": "2017-11-30T22:34:18Z",
    "thumbnail_url": "https://clips-media-assets.twitch.tv/157589949-preview-480x272.jpg",
    "duration": 60.0,
    "vod_offset": 480,
    "is_featured": False,
    "first_seen_at": "2026-11-24T03:00:00Z",
    "updated_at": "2026-11-24T03:00:00Z",
    "deleted_at": None,
}


class ClipRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CLIP_EXAMPLE]})

    id: str
    url: str
    embed_url: str
    broadcaster_id: str
    broadcaster_name: str
    creator_id: str
    creator_name: str
    video_id: str | None
    game_id: str | None
    game_name: str | None = None
    language: str
    title: str
    view_count: int
    created_at: datetime
    thumbnail_url: str
    duration: float
    vod_offset: int | None
    is_featured: bool
    first_seen_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    tags: list[str] = Field(
        default_factory=list,
        description="The community tags on the clip, by name (docs/tags.md): in search "
        "answers, a clip, favourites and collections",
    )

    @classmethod
    def from_clip(
        cls, clip: Clip, game_name: str | None = None, tags: list[str] | None = None
    ) -> ClipRead:
        values = {
            name: getattr(clip, name)
            for name in cls.model_fields
            if name not in ("game_name", "tags")
        }
        return cls(**values, game_name=game_name, tags=tags or [])


class FavouriteRead(BaseModel):
    favourited_at: datetime
    clip: ClipRead


class FavouritePage(BaseModel):
    data: list[FavouriteRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class ClipPage(BaseModel):
    data: list[ClipRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class DayCount(BaseModel):
    day: str = Field(description="UTC date, YYYY-MM-DD")
    clips: int
    views: int


class CreatorCount(BaseModel):
    creator_id: str
    creator_name: str | None
    clips: int
    views: int


class GameCount(BaseModel):
    game_id: str
    name: str | None
    clips: int
    views: int


class ChannelStatsRead(BaseModel):
    channel_id: str
    login: str | None
    display_name: str | None
    period: str = Field(description="`day`, `week`, `month`, `year` or `all`")
    since: datetime | None = Field(description="Start of the period (null for `all`)")
    computed_at: datetime
    clips: int = Field(description="Clips made in the period (deleted ones not counted)")
    views: int
    per_day: list[DayCount] = Field(description="Newest day first; at most 90 days")
    top_clips: list[ClipRead] = Field(description="The 10 most viewed")
    top_creators: list[CreatorCount] = Field(description="The 10 whose clips were most viewed")
    top_games: list[GameCount] = Field(description="The 10 most viewed games")


class ChannelSyncRead(BaseModel):
    backfill: str = Field(description="`not started`, `running` or `complete`")
    backfill_done_until: datetime | None = Field(description="History stored up to here")
    last_incremental_at: datetime | None
    last_refresh_at: datetime | None

    @classmethod
    def from_state(cls, state: ChannelSync) -> ChannelSyncRead:
        backfill = (
            "complete"
            if state.backfill_completed_at
            else "running"
            if state.backfill_done_until
            else "not started"
        )
        return cls(
            backfill=backfill,
            backfill_done_until=state.backfill_done_until,
            last_incremental_at=state.last_incremental_at,
            last_refresh_at=state.last_refresh_at,
        )


class StreamGame(BaseModel):
    id: str | None
    name: str | None


def _game(game_id: str | None, name: str | None) -> StreamGame | None:
    return StreamGame(id=game_id, name=name) if game_id or name else None


class ChannelLiveRead(BaseModel):
    since: datetime | None = Field(description="When the stream started")
    title: str | None
    game: StreamGame | None = Field(description="The stream's category (null: none)")
    viewer_count: int | None
    type: str | None = Field(description="`live`, `rerun`, `premiere` ... as Twitch says")
    source: str = Field(description="Who said it went live: `poll` (Get Streams) or `eventsub`")
    checked_at: datetime = Field(description="When a source last confirmed it")

    @classmethod
    def from_live(cls, live: ChannelLive) -> ChannelLiveRead:
        return cls(
            since=live.started_at,
            title=live.title,
            game=_game(live.game_id, live.game_name),
            viewer_count=live.viewer_count,
            type=live.stream_type,
            source=live.source,
            checked_at=live.checked_at,
        )


class ChannelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    login: str | None
    display_name: str
    tracked: bool
    profile_image_url: str | None
    added_at: datetime
    sync: ChannelSyncRead | None = Field(default=None, description="For tracked channels")
    live: ChannelLiveRead | None = Field(
        default=None, description="The stream while the channel is live; null when offline"
    )

    @classmethod
    def from_channel(
        cls,
        channel: Channel,
        state: ChannelSync | None = None,
        live: ChannelLive | None = None,
    ) -> ChannelRead:
        read = cls.model_validate(channel)
        read.sync = ChannelSyncRead.from_state(state) if state is not None else None
        read.live = ChannelLiveRead.from_live(live) if live is not None and live.live else None
        return read


class StreamRead(BaseModel):
    id: int
    twitch_stream_id: str | None
    started_at: datetime
    ended_at: datetime | None = Field(description="null while it runs")
    title: str | None
    game: StreamGame | None
    peak_viewers: int | None = Field(description="The most viewers a source reported")

    @classmethod
    def from_stream(cls, stream: Stream) -> StreamRead:
        return cls(
            id=stream.id,
            twitch_stream_id=stream.twitch_stream_id,
            started_at=stream.started_at,
            ended_at=stream.ended_at,
            title=stream.title,
            game=_game(stream.game_id, stream.game_name),
            peak_viewers=stream.peak_viewers,
        )


class StreamPage(BaseModel):
    data: list[StreamRead]
    next_cursor: str | None


class ChannelsAdd(StrictBody):
    logins: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,25}$")]] = Field(
        min_length=1, max_length=100, examples=[["clipwatchdemo"]]
    )


class ChannelsAdded(BaseModel):
    added: list[str]
    unknown: list[str] = Field(description="Logins Twitch does not know")


class ChannelPage(BaseModel):
    data: list[ChannelRead]
    next_cursor: str | None


class GameRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str | None
    box_art_url: str | None

    @classmethod
    def from_game(cls, game: Game) -> GameRead:
        return cls.model_validate(game)


class GamePage(BaseModel):
    data: list[GameRead]
    next_cursor: str | None


class FailingChannel(BaseModel):
    channel_id: str
    login: str | None
    last_error: str | None = Field(description="One line: what went wrong at the last try")
    last_error_at: datetime | None
    consecutive_failures: int
    last_success_at: datetime | None = Field(
        description="The channel's last good step: it has been failing since (null: never)"
    )
    next_try_at: datetime | None = Field(description="Workers leave it alone until then")


class SyncStatus(BaseModel):
    channels: int = Field(description="Tracked channels")
    live: int = Field(description="Tracked channels live now")
    live_channels: list[str] = Field(
        description="Their logins (up to 100), the latest to go live first (docs/live.md)"
    )
    backfilling: int = Field(description="Tracked channels whose history is still being read")
    last_synced_at: datetime | None = Field(description="The newest incremental sync")
    failing: int = Field(description="Tracked channels whose last sync step failed")
    failing_channels: list[FailingChannel] = Field(
        description="Those channels (up to 100), the longest failing first"
    )
    quarantined: int = Field(
        description="Clips Twitch sent that could not be stored (`clipwatch sync --quarantine`)"
    )


class DeliveryStatus(BaseModel):
    pending: int
    sent: int
    dead: int


class TaskStatus(BaseModel):
    task: str = Field(description="`sync`, `deliveries`, `hot_data`, …")
    state: str = Field(
        description="`starting`, `running` (a pass is under way), `idle` (waiting for the "
        "next), `failing` (the last pass failed), `restarting` (it died; restarts after a "
        "backoff) or `stopped`"
    )
    started_at: datetime
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    restarts: int = Field(description="Times it died and was restarted")
    detail: dict[str, Any]


class WorkerStatus(BaseModel):
    running: bool
    passes: int = Field(description="Sync passes since start")
    failed_passes: int
    inserted: int = Field(description="Clips the worker stored since start")
    messages: int = Field(description="Discord messages the worker sent since start")
    last_error: str | None = Field(description="The last sync pass's error (null after a success)")
    tasks: list[TaskStatus]


class WorkerProcessStatus(BaseModel):
    worker: str = Field(description="host:pid")
    alive: bool = Field(description="Reported within the last 30 s and not stopped")
    heartbeat_at: datetime
    tasks: list[TaskStatus]


class CacheStatus(BaseModel):
    mode: str = Field(
        description="`memory` (no Redis), `redis` (shared, invalidation feed current) or "
        "`memory (redis unavailable)`"
    )
    entries: int = Field(description="Answers held by this process")
    bytes: int
    hits: int
    misses: int
    hit_ratio: float | None
    errors: int = Field(description="Redis errors since start")
    evictions: int


class StatusRead(BaseModel):
    mode: str = Field(description="`demo` (simulated data) or `live`")
    banner: str | None = Field(description="Shown when the data is simulated")
    discord_sink: str | None = Field(
        default=None, description="Demo mode: where the simulated Discord's messages are read"
    )
    version: str
    database: str = Field(description="`sqlite` or `postgresql`")
    redis: str = Field(description="`not configured`, `ok` or `down`")
    rate_limiter: str = Field(
        description="Where request counts live: `redis` (shared), `memory` (this process), "
        "or `memory (redis unavailable)` while Redis is failing"
    )
    cache: CacheStatus
    sync: SyncStatus
    eventsub: str = Field(description="The EventSub socket: who holds it, its session, cost")
    deliveries: DeliveryStatus
    worker: WorkerStatus | None = Field(
        description="The worker in this process (null when it runs elsewhere: `--no-worker`)"
    )
    workers: list[WorkerProcessStatus] = Field(
        description="Every worker process (this one and others) that reported in the last hour"
    )
    problems: list[str] = Field(
        description="One line per thing an operator should look at (empty: all is well)"
    )


class FieldProblem(BaseModel):
    field: str = Field(description="Where: a query or path parameter, or a body field (a.b.0)")
    message: str = Field(description="What is wrong with it, in words")


class Problem(BaseModel):
    """RFC 9457 problem details: every error answer is `application/problem+json`."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] = Field(
        default_factory=list, description="422: every field that was refused, and why"
    )


T = TypeVar("T")


class ListOf(BaseModel, Generic[T]):
    """A complete (unpaged) list."""

    data: list[T]


# --- moderation (docs/moderation.md) -----------------------------------------------------------

Reason = Annotated[
    str, StringConstraints(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class HideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason = Field(
        description="Why (one line, up to 500 characters): the audit log keeps it"
    )


class HiddenRead(BaseModel):
    hidden_at: datetime
    hidden_by: str
    reason: str
    clip: ClipRead


class HiddenPage(BaseModel):
    data: list[HiddenRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class AuditRead(BaseModel):
    id: int
    at: datetime
    actor: str
    actor_id: int | None
    action: str
    target: str
    reason: str | None


class AuditPage(BaseModel):
    data: list[AuditRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class RoleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["member", "moderator", "admin"]
