"""Tables. Singular snake_case names; timestamps end in `_at`; relationships are lazy="raise"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from clipwatch.db.types import BigIntPK, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Channel(Base):
    """A Twitch broadcaster. `tracked` channels are synced; others exist because clips name them."""

    __tablename__ = "channel"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    login: Mapped[str | None] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    tracked: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    profile_image_url: Mapped[str | None] = mapped_column(Text)
    account_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class Game(Base):
    """A Twitch category. Imported clips name only its id; the name arrives with sync."""

    __tablename__ = "game"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(256))
    box_art_url: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    __table_args__ = (Index("ix_game_name_lower", func.lower(name)),)


class Clip(Base):
    """Every Helix clip field, plus our own bookkeeping.

    `seq` is an internal, insertion-ordered integer key: SQLite's FTS5 index needs an integer
    rowid, and keyset cursors use it as the tie-breaker. The Twitch clip id is unique.
    """

    __tablename__ = "clip"

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(128), unique=True)
    url: Mapped[str] = mapped_column(Text)
    embed_url: Mapped[str] = mapped_column(Text)
    # No foreign keys on the two references below: the writers (import, sync) create the
    # channel and game in the same transaction, and per-row FK checks cost 9% of the
    # import rate at a million clips (measured; docs/architecture.md).
    broadcaster_id: Mapped[str] = mapped_column(String(64))
    broadcaster_name: Mapped[str] = mapped_column(String(128))
    creator_id: Mapped[str] = mapped_column(String(64))
    creator_name: Mapped[str] = mapped_column(String(128))
    video_id: Mapped[str | None] = mapped_column(String(64))
    game_id: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    view_count: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    thumbnail_url: Mapped[str] = mapped_column(Text)
    duration: Mapped[float] = mapped_column(Float)
    vod_offset: Mapped[int | None] = mapped_column(Integer)
    is_featured: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Each index serves one sort (with its keyset tie-breaker `seq`) under a filter. The
    # unfiltered and per-channel sort indexes are dialect-specific and live in db/search.py.
    # Every index costs import speed (a million-clip import is bound by index upkeep), so a
    # game's newest clips come from walking ix_clip_created (popular games) or from this
    # index and a sort (rare games) rather than from a (game_id, created_at) index.
    __table_args__ = (
        Index("ix_clip_game_views", game_id, view_count, seq),
        Index("ix_clip_creator_id", creator_id),
    )


CLIP_TEXT_COLUMNS = ("title", "creator_name", "broadcaster_name")


# --- accounts -------------------------------------------------------------------------------


class User(Base):
    """A person who uses clipwatch: `admin` or `member`. ("user" is reserved in PostgreSQL.)"""

    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="member")
    twitch_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is kept; `prefix` (`cw_` + 8 characters) is public and
    finds the row, so a leaked token can be recognised and revoked."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(64))  # space-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserSession(Base):
    """A web session. The cookie holds a random secret; only its SHA-256 is kept here."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the absolute limit
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    # The API token that opened it (`POST /auth/token-login`): the session dies with it.
    token_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), index=True
    )


class Preferences(Base):
    """What a member follows and how they like their clip feed (`GET /clips?feed=mine`)."""

    __tablename__ = "user_preferences"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    games: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_views: Mapped[int | None] = mapped_column(BigInteger)
    default_sort: Mapped[str | None] = mapped_column(String(16))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class Favourite(Base):
    """A clip a member keeps (`PUT /api/v1/me/favourites/{clip_id}`). No foreign key to
    `clip` (as everywhere: see decisions); a favourite of a clip deleted on Twitch stays
    and is shown as deleted."""

    __tablename__ = "favourite"
    __table_args__ = (Index("ix_favourite_user_newest", "user_id", "created_at", "clip_id"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    clip_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HiddenClip(Base):
    """A clip a moderator hid (`PUT /api/v1/clips/{id}/hidden`): it leaves every public
    answer but stays in the archive. A table of its own, not a column of `clip`: a re-sync
    rewrites clip rows and never touches this, and the searches' covering indexes stay as they
    are (the condition is `seq NOT IN (hidden seqs)`, a few rows; docs/moderation.md)."""

    __tablename__ = "hidden_clip"

    clip_seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=False)
    clip_id: Mapped[str] = mapped_column(String(128), unique=True)
    hidden_at: Mapped[datetime] = mapped_column(UTCDateTime)
    hidden_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)


class AuditEntry(Base):
    """One moderation action (`GET /api/v1/audit`, `clipwatch audit list`): who did what to
    which thing, when and why. Kept when the actor's account is deleted (no foreign key)."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128), index=True)
    reason: Mapped[str | None] = mapped_column(Text)


class Collection(Base):
    """An owned, ordered list of clips (`/api/v1/collections`; docs/collections.md).
    `version` grows with every change of it or its items: its ETag, and the optimistic lock
    a write with `If-Match` takes (`UPDATE ... WHERE version = :seen`)."""

    __tablename__ = "collection"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # private | unlisted | public
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    # An unlisted collection is read by whoever has this key (its link); rotated on demand.
    share_key: Mapped[str] = mapped_column(String(64), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CollectionItem(Base):
    """One clip of a collection at its place (`position`: 0, 1, ... without gaps). No foreign
    key to `clip` (as everywhere); a hidden or deleted clip keeps its place."""

    __tablename__ = "collection_item"

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collection.id", ondelete="CASCADE"), primary_key=True
    )
    clip_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Tag(Base):
    """A word people attach to clips (docs/tags.md). A community tag (`owner_id` NULL) is in
    the vocabulary admins manage: anyone sees it on cards, filters by it and finds its clips
    by its words in `q`. A private tag (`owner_id` set) is its owner's own: nobody else sees it
    or learns it exists (404). `scope` is 0 for the community and the owner's id otherwise:
    the key names are unique in, with no expression or partial index (which both dialects
    reflect differently)."""

    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("scope", "name"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    scope: Mapped[int] = mapped_column(BigInteger)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))


class ClipTag(Base):
    """A tag on a clip. By `clip_seq` (the search's key) and `clip_id`, with no foreign key to
    `clip` (as everywhere); a re-sync never touches it."""

    __tablename__ = "clip_tag"

    tag_id: Mapped[int] = mapped_column(ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True)
    clip_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    clip_id: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    added_by_id: Mapped[int | None] = mapped_column(BigInteger)
    added_by: Mapped[str] = mapped_column(String(64))


# --- Twitch sync ----------------------------------------------------------------------------


class ChannelSync(Base):
    """Where the sync of one tracked channel stands, and who holds it (a lease)."""

    __tablename__ = "channel_sync"

    channel_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Backfill walks windows from the channel's creation up to `backfill_until` (when it
    # began); everything before `backfill_done_until` is stored, so a restart resumes there.
    backfill_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    backfill_done_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    backfill_completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_incremental_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_refresh_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When each age band of clips was last refreshed (band name -> ISO time); see sync.py.
    refresh_marks: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How the channel's last steps went: a failing channel costs itself, never the pass.
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # backoff after failures
    # Adaptive cadence (twitch/cadence.py): when the channel's next recent-clips step is due
    # (soon while live, rarely offline), and the one extra step owed after a stream ended.
    next_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    final_pass_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClipQuarantine(Base):
    """A clip Twitch sent that could not be stored even after cleaning, kept as received.

    `key` is the clip id when it has a usable one, else a hash of the payload, so a clip
    that comes back every pass is one row (`times_seen` counts)."""

    __tablename__ = "clip_quarantine"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    clip_id: Mapped[str | None] = mapped_column(String(128))
    broadcaster_id: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)  # JSON text, escaped and bounded
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    times_seen: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class ClipAbsence(Base):
    """A stored clip a Twitch answer left out: a suspect, not yet a deletion.

    It becomes a deletion only after lookups of that clip alone answered empty
    `confirmations` times, minutes apart; any answer that lists it again removes the row."""

    __tablename__ = "clip_absence"

    clip_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    broadcaster_id: Mapped[str] = mapped_column(String(64), index=True)
    first_missing_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# --- Discord notifications --------------------------------------------------------------------


class NotificationRoute(Base):
    """Where new clips that pass `filters` are posted: one Discord webhook of one owner."""

    __tablename__ = "notification_route"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    webhook_id: Mapped[str] = mapped_column(String(32))
    webhook_token_sealed: Mapped[str] = mapped_column(Text)  # encrypted (accounts.secrets)
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    template: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    delay_seconds: Mapped[int] = mapped_column(Integer, default=0)
    batching: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    # The last problem the route's own settings caused (a template failing on a clip).
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Stream notices through the outbox (kinds `live` and `stream_end`), off by default.
    notify_live: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    notify_stream_end: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # --- issue 15 (migration 0010; docs/discord.md) ---
    # `clips` (new clips) or `digest` (the top clips of a period, on a schedule: `digest`).
    kind: Mapped[str] = mapped_column(String(16), default="clips", server_default="clips")
    # Threads and forums: post into one thread, or open forum threads named by `thread_name`
    # (a template) per clip (`post`), per day (`day`) or per stream (`stream`).
    thread_id: Mapped[str | None] = mapped_column(String(32))
    forum_mode: Mapped[str | None] = mapped_column(String(16))
    thread_name: Mapped[str | None] = mapped_column(Text)
    # Role pings, opt-in: `allowed_mentions` lists exactly these roles; @here only when an
    # admin set `here_allowed` on the route and its owner asked for it.
    role_ids: Mapped[list[str] | None] = mapped_column(JSON)
    ping_here: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    here_allowed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Identity per route (Discord's username and avatar overrides).
    username: Mapped[str | None] = mapped_column(String(80))
    avatar_url: Mapped[str | None] = mapped_column(Text)
    # What GET /webhooks/{id}/{token} said when the route was saved.
    webhook_channel_id: Mapped[str | None] = mapped_column(String(32))
    webhook_guild_id: Mapped[str | None] = mapped_column(String(32))
    webhook_name: Mapped[str | None] = mapped_column(String(100))
    webhook_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A digest route's schedule: {"period": "day"|"week"|"month", "weekday": 0-6 (Monday 0),
    # "time": "HH:MM", "time_zone": IANA name, "top": N}.
    digest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Trending: post a clip once when it gains at least this many views an hour.
    trending_views_per_hour: Mapped[int | None] = mapped_column(Integer)
    # A posted clip deleted on Twitch: `keep`, `edit` ("removed on Twitch") or `delete`.
    on_deleted: Mapped[str] = mapped_column(String(16), default="keep", server_default="keep")
    milestones: Mapped[list[int] | None] = mapped_column(JSON)  # view counts that edit the post
    # `api` (API, CLI, page) or `discord` (/clipwatch follow, in `discord_channel_id`).
    created_via: Mapped[str] = mapped_column(String(16), default="api", server_default="api")
    discord_channel_id: Mapped[str | None] = mapped_column(String(32))


class ForumThread(Base):
    """A forum route's thread for one day or one stream: later clips reply into it."""

    __tablename__ = "forum_thread"
    __table_args__ = (UniqueConstraint("route_id", "key", name="uq_forum_thread_route_id_key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("notification_route.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))  # day:2026-11-27 | stream:<twitch stream id>
    thread_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DiscordGuildLink(Base):
    """A Discord server linked to the clipwatch account that owns the routes its members set
    up with /clipwatch follow."""

    __tablename__ = "discord_guild_link"

    guild_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    linked_by_discord_user: Mapped[str | None] = mapped_column(String(32))


class DiscordLinkCode(Base):
    """A one-time code a clipwatch user makes and a server admin gives to /clipwatch link."""

    __tablename__ = "discord_link_code"

    code_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Delivery(Base):
    """The outbox: one row per route and clip, written with the clip, sent by the worker."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("route_id", "clip_id", name="uq_delivery_route_id_clip_id"),
        Index("ix_delivery_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # None for an alert message (kind `alert`/`alert_webhook`: monitoring/alerts/notify.py).
    route_id: Mapped[int | None] = mapped_column(
        ForeignKey("notification_route.id", ondelete="CASCADE")
    )
    clip_id: Mapped[str] = mapped_column(String(128))  # "" for an alert message
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16), default="clip", server_default="clip")
    # An alert message's own key (unique): the evaluator never writes one message twice.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # an alert message, sealed
    # The thread the message went into (a forum post's own thread), for its edits and deletes.
    thread_id: Mapped[str | None] = mapped_column(String(32))
    # Kinds `edit` and `delete`: the delivery whose posted message this changes.
    ref_delivery_id: Mapped[int | None] = mapped_column(BigInteger)


# --- the worker -------------------------------------------------------------------------------


class WorkerTask(Base):
    """One task (sync, deliveries, hot data, ...) of one worker process, as it last reported.

    Every process writes its own rows, so `/api/v1/status` and `clipwatch status` show the
    workers of the scaled setup too; a row whose heartbeat is old belongs to a dead process."""

    __tablename__ = "worker_task"

    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    task: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    restarts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# --- leases and alerts ------------------------------------------------------------------------


class Lease(Base):
    """A named job that one process at a time may run (the alert evaluator; later the
    EventSub socket): held by `owner` until `expires_at`, renewed by it, taken over by
    another once it has expired."""

    __tablename__ = "lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertState(Base):
    """What the evaluator knows of one rule and label set between evaluations, kept in the
    database so that another process taking the evaluation over goes on from here."""

    __tablename__ = "alert_state"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    active_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # condition true since
    clear_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # its incident clear since
    value: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Incident(Base):
    """A rule that fired for one label set: firing → acknowledged → resolved.

    At most one unresolved incident per fingerprint (a partial unique index)."""

    __tablename__ = "incident"
    __table_args__ = (
        Index(
            "uq_incident_open_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=text("state != 'resolved'"),
            postgresql_where=text("state != 'resolved'"),
        ),
        Index("ix_incident_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    summary: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="firing")
    value: Mapped[float | None] = mapped_column(Float)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the condition first held
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime)  # it had held for the rule's `for`
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # evaluations seen
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))  # a user, or None: cleared


class IncidentNote(Base):
    __tablename__ = "incident_note"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)


class AlertGroup(Base):
    """What one receiver was last told about one group (one rule's incidents): when, and
    which incidents it knows to be open, so the next message says only what changed."""

    __tablename__ = "alert_group"

    receiver: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notified: Mapped[list[int]] = mapped_column(JSON, default=list)
    messages: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# --- live state and EventSub --------------------------------------------------------------------


class ChannelLive(Base):
    """A tracked channel's live state as Twitch last told it: Get Streams polling or EventSub
    (`source`). One row per channel that was ever checked; `live` false when offline."""

    __tablename__ = "channel_live"

    channel_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    live: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    stream_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    title: Mapped[str | None] = mapped_column(Text)
    game_id: Mapped[str | None] = mapped_column(String(64))
    game_name: Mapped[str | None] = mapped_column(String(256))
    viewer_count: Mapped[int | None] = mapped_column(Integer)
    language: Mapped[str | None] = mapped_column(String(16))
    stream_type: Mapped[str | None] = mapped_column(String(16))  # live, rerun, premiere ...
    source: Mapped[str] = mapped_column(String(16), default="poll")  # poll | eventsub
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)  # went live or offline
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)  # a source last confirmed it
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the last stream's end


class Stream(Base):
    """One stream of a tracked channel (history for the web page and stats)."""

    __tablename__ = "stream"
    __table_args__ = (
        UniqueConstraint("channel_id", "started_at", name="uq_stream_channel_id_started_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    channel_id: Mapped[str] = mapped_column(String(64))
    twitch_stream_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    title: Mapped[str | None] = mapped_column(Text)
    game_id: Mapped[str | None] = mapped_column(String(64))
    game_name: Mapped[str | None] = mapped_column(String(256))
    peak_viewers: Mapped[int | None] = mapped_column(Integer)


class TwitchUserToken(Base):
    """A Twitch user token clipwatch keeps to act as that user (`purpose` `eventsub`: the
    socket needs a user token). Tokens are sealed with the secret key (accounts.secrets)."""

    __tablename__ = "twitch_user_token"

    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    twitch_user_id: Mapped[str] = mapped_column(String(64))
    login: Mapped[str] = mapped_column(String(64))
    access_token_sealed: Mapped[str] = mapped_column(Text)
    refresh_token_sealed: Mapped[str | None] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    connected_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EventSubSubscription(Base):
    """An EventSub subscription the socket's holder made (Twitch's id), as last known."""

    __tablename__ = "eventsub_subscription"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(8))
    channel_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(64))
    cost: Mapped[int] = mapped_column(Integer, default=0)
    session_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
