"""The upgrade tests' data set, and the script that makes tests/db/fixtures/schema_PREVIOUS.sqlite.

The fixture is a SQLite database made by the previous release's migrations (the previous
head, PREVIOUS) and filled with ROWS. tests/db/test_upgrades.py upgrades a copy of it to the
newest revision: a released migration edited afterwards no longer gives the schema a fresh
database gets, and that test says so. Regenerate it when a release adds a migration (see
docs/upgrades.md), from the release's own checkout:

    .venv/bin/python -m tests.db.make_fixture

Rows are written with SQL against the tables as they are at the revision (reflected), never
with today's ORM models, which may have columns that revision does not. Each row names every
column it has at PREVIOUS; at an older revision, the columns (and the tables) that do not exist
yet are left out, and a row that needs a NOT NULL column to be null there is skipped.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import warnings
from contextlib import closing
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Connection, MetaData, Table, insert, null, select, text
from sqlalchemy.exc import SAWarning

from clipwatch.accounts.credentials import digest
from clipwatch.accounts.secrets import seal
from clipwatch.config import load_settings
from clipwatch.db.engine import create_engine
from clipwatch.db.migrate import MIGRATIONS, _config

PREVIOUS = "0012"
FIXTURE = Path(__file__).parent / "fixtures" / f"schema_{PREVIOUS}.sqlite"
# The secret key the tests' settings use (tests/conftest.py TEST_SECRET): the sealed webhook
# token below opens with it.
SECRET = "test-secret-key-for-cursors"
API_TOKEN = "cw_upgrade1_" + "u" * 43
OWNER_ID = 1
ROUTE_ID = 1
LIVE_CLIP = "AwkwardHelplessSalamanderSwiftRage"

_T0 = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return _T0 + timedelta(minutes=minutes)


LONG_TITLE = "Long " + "ünïcødé and a very long title " * 40  # ~1,200 characters
ODD_TITLE = "Pog 🎮 クリップ مرحبا Привет 'quoted' \"double\" \\ back; -- not sql %s"


def _clip(seq: int, clip_id: str, **over: Any) -> dict[str, Any]:
    row = {
        "seq": seq,
        "id": clip_id,
        "url": f"https://clips.twitch.tv/{clip_id}",
        "embed_url": f"https://clips.twitch.tv/embed?clip={clip_id}",
        "broadcaster_id": "1001",
        "broadcaster_name": "Streamer One",
        "creator_id": "2001",
        "creator_name": "clipper",
        "video_id": "v1",
        "game_id": "509658",
        "language": "en",
        "title": f"clip {seq}",
        "view_count": 10,
        "created_at": at(seq),
        "thumbnail_url": f"https://static-cdn.jtvnw.net/{clip_id}-preview.jpg",
        "duration": 30.5,
        "vod_offset": 120,
        "is_featured": False,
        "first_seen_at": at(seq + 1),
        "updated_at": at(seq + 2),
        "deleted_at": None,
    }
    row.update(over)
    return row


def _route(route_id: int, **over: Any) -> dict[str, Any]:
    row = {
        "id": route_id,
        "user_id": OWNER_ID,
        "name": f"route {route_id}",
        "webhook_id": f"12345678901234567{route_id}",
        "webhook_token_sealed": seal(SECRET.encode(), f"webhook-token-{route_id}"),
        "filters": {},
        "template": {"name": "card"},
        "delay_seconds": 0,
        "batching": False,
        "enabled": True,
        "disabled_reason": None,
        "created_at": at(route_id),
        "last_error": None,
        "last_error_at": None,
        "error_count": 0,
        "notify_live": False,
        "notify_stream_end": False,
        "kind": "clips",
        "thread_id": None,
        "forum_mode": None,
        "thread_name": None,
        "role_ids": None,
        "ping_here": False,
        "here_allowed": False,
        "username": None,
        "avatar_url": None,
        "webhook_channel_id": None,
        "webhook_guild_id": None,
        "webhook_name": None,
        "webhook_checked_at": None,
        "digest": None,
        "trending_views_per_hour": None,
        "on_deleted": "keep",
        "milestones": None,
        "created_via": "api",
        "discord_channel_id": None,
    }
    row.update(over)
    return row


def _delivery(delivery_id: int, **over: Any) -> dict[str, Any]:
    row = {
        "id": delivery_id,
        "route_id": ROUTE_ID,
        "clip_id": LIVE_CLIP,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": at(50 + delivery_id),
        "last_error": None,
        "message_id": None,
        "created_at": at(40 + delivery_id),
        "sent_at": None,
        "kind": "clip",
        "idempotency_key": None,
        "payload": None,
        "thread_id": None,
        "ref_delivery_id": None,
    }
    row.update(over)
    return row


# In insertion order (foreign keys). Every table that exists at PREVIOUS has rows here, and
# every row names every column its table has there (tests/db/test_upgrades.py checks both).
ROWS: dict[str, list[dict[str, Any]]] = {
    "channel": [
        {
            "id": "1001",
            "login": "streamer_one",
            "display_name": "Streamer One",
            "tracked": True,
            "profile_image_url": "https://static-cdn.jtvnw.net/one.png",
            "account_created_at": at(-(10**6)),
            "added_at": at(0),
            "updated_at": at(1),
        },
        {
            "id": "1002",
            "login": None,
            "display_name": "ストリーマー Ω",
            "tracked": False,
            "profile_image_url": None,
            "account_created_at": None,
            "added_at": at(2),
            "updated_at": at(3),
        },
    ],
    "game": [
        {"id": "509658", "name": "Just Chatting", "box_art_url": None, "updated_at": at(0)},
        {
            "id": "0",
            "name": None,
            "box_art_url": "https://x/{width}x{height}.jpg",
            "updated_at": at(1),
        },
    ],
    "clip": [
        _clip(1, LIVE_CLIP, title=ODD_TITLE, view_count=2**40, is_featured=True),
        _clip(
            2,
            "LongTitleClip-x_Y",
            title=LONG_TITLE,
            video_id=None,
            game_id=None,
            vod_offset=None,
            duration=0.1,
            language="other",
            broadcaster_id="1002",
            broadcaster_name="ストリーマー Ω",
            view_count=0,
        ),
        _clip(3, "DeletedClip", title="", deleted_at=at(100)),
    ],
    "app_user": [
        {
            "id": OWNER_ID,
            "name": "owner",
            "role": "admin",
            "twitch_id": None,
            "created_at": at(0),
            "updated_at": at(0),
        },
        {
            "id": 2,
            "name": "Zoë 🦊",
            "role": "member",
            "twitch_id": "2001",
            "created_at": at(1),
            "updated_at": at(2),
        },
    ],
    "api_token": [
        {
            "id": 1,
            "user_id": OWNER_ID,
            "name": "upgrade test",
            "prefix": API_TOKEN[:11],
            "secret_hash": digest(API_TOKEN),
            "scopes": "read write admin",
            "created_at": at(0),
            "expires_at": None,
            "last_used_at": None,
            "revoked_at": None,
        },
        {
            "id": 2,
            "user_id": 2,
            "name": "revoked one",
            "prefix": "cw_revoked1",
            "secret_hash": "0" * 64,
            "scopes": "read",
            "created_at": at(1),
            "expires_at": at(10**5),
            "last_used_at": at(5),
            "revoked_at": at(6),
        },
    ],
    "user_session": [
        {
            "id": 1,
            "user_id": 2,
            "secret_hash": "1" * 64,
            "scopes": "read write",
            "created_at": at(0),
            "last_seen_at": at(1),
            "expires_at": at(10**4),
            "revoked_at": None,
            "user_agent": "Mozilla/5.0 (ünïcode)",
            "ip": "2001:db8::1",
            "token_id": 2,
        },
    ],
    "user_preferences": [
        {
            "user_id": 2,
            "channels": ["1001"],
            "games": [],
            "languages": ["en", "de"],
            "min_views": None,
            "default_sort": "views",
            "time_zone": "Europe/Berlin",
            "updated_at": at(3),
        },
    ],
    "channel_sync": [
        {
            "channel_id": "1001",
            "backfill_until": at(-5000),
            "backfill_done_until": at(-100),
            "backfill_completed_at": None,
            "last_incremental_at": at(10),
            "last_refresh_at": at(11),
            "refresh_marks": {"hour": "2026-11-20T10:00:00Z"},
            "lease_owner": "worker-a:123",
            "lease_expires_at": at(12),
            "last_success_at": at(10),
            "last_error": "HTTP 503 from Helix",
            "last_error_at": at(9),
            "consecutive_failures": 2,
            "next_try_at": at(13),
            "next_sync_at": at(14),
            "final_pass_at": None,
        },
    ],
    "notification_route": [
        _route(
            ROUTE_ID,
            name="Every clip 🎬",
            filters={"channels": ["1001"], "min_views": 5, "title_keywords": ["pog"]},
            notify_live=True,
        ),
        _route(
            2,
            template={"custom": True, "title": "{{ clip.title }}", "description": "by {{ x }}"},
            delay_seconds=300,
            batching=True,
            enabled=False,
            disabled_reason="Discord said the webhook is gone (404)",
            last_error="404 Unknown Webhook",
            last_error_at=at(20),
            error_count=3,
            notify_stream_end=True,
            kind="digest",
            digest={
                "period": "week",
                "weekday": 0,
                "time": "18:00",
                "time_zone": "Europe/Berlin",
                "top": 5,
            },
            forum_mode="day",
            thread_name="Clips of {{ day }}",
            role_ids=["800000000000000001"],
            username="Clip Bot",
            avatar_url="https://cdn.discordapp.com/avatars/1/a.png",
            webhook_channel_id="700000000000000001",
            webhook_guild_id="900000000000000001",
            webhook_name="clips",
            webhook_checked_at=at(21),
            on_deleted="edit",
            milestones=[1000, 10000],
            created_via="discord",
            discord_channel_id="700000000000000001",
        ),
    ],
    "delivery": [
        _delivery(1),
        _delivery(
            2,
            clip_id="LongTitleClip-x_Y",
            status="sent",
            attempts=1,
            message_id="1180000000000000001",
            sent_at=at(60),
        ),
        _delivery(3, clip_id="DeletedClip", status="dead", attempts=8, last_error="HTTP 400 ✗"),
        _delivery(4, route_id=2, attempts=3, last_error="429: retry after 2 s"),
        _delivery(
            5,
            route_id=None,
            clip_id="alert:1",
            kind="alert",
            idempotency_key="alert:abc:firing",
            payload={"content": "🔥 sync failing", "embeds": []},
        ),
    ],
    "clip_quarantine": [
        {
            "id": 1,
            "key": "sha256:" + "a" * 64,
            "clip_id": None,
            "broadcaster_id": "1001",
            "reason": "created_at is not a date",
            "payload": '{"id": null, "created_at": "yesterday"}',
            "first_seen_at": at(0),
            "last_seen_at": at(5),
            "times_seen": 4,
        },
    ],
    "clip_absence": [
        {
            "clip_id": "DeletedClip",
            "broadcaster_id": "1001",
            "first_missing_at": at(90),
            "last_checked_at": at(95),
            "confirmations": 2,
        },
    ],
    "worker_task": [
        {
            "worker": "host:4242",
            "task": "sync",
            "state": "running",
            "started_at": at(0),
            "heartbeat_at": at(30),
            "last_success_at": None,
            "last_error": None,
            "last_error_at": None,
            "consecutive_failures": 0,
            "restarts": 1,
            "detail": {"channels": 2, "note": "ünï"},
        },
    ],
    "lease": [
        {"name": "alerts", "owner": "host:4242", "acquired_at": at(0), "expires_at": at(1)},
    ],
    "alert_state": [
        {
            "fingerprint": "f" * 64,
            "rule": "sync_failing",
            "labels": {"channel": "streamer_one"},
            "active_since": at(5),
            "clear_since": None,
            "value": 2.5,
            "updated_at": at(6),
        },
    ],
    "incident": [
        {
            "id": 1,
            "fingerprint": "f" * 64,
            "rule": "sync_failing",
            "severity": "critical",
            "labels": {"channel": "streamer_one"},
            "summary": "Sync failing for streamer_one",
            "state": "acknowledged",
            "value": None,
            "first_seen_at": at(5),
            "fired_at": at(6),
            "last_seen_at": at(7),
            "count": 3,
            "acknowledged_at": at(8),
            "acknowledged_by": "owner",
            "resolved_at": None,
            "resolved_by": None,
        },
        {
            "id": 2,
            "fingerprint": "e" * 64,
            "rule": "deliveries_dead",
            "severity": "warning",
            "labels": {},
            "summary": "resolved one",
            "state": "resolved",
            "value": 1.0,
            "first_seen_at": at(1),
            "fired_at": at(1),
            "last_seen_at": at(2),
            "count": 1,
            "acknowledged_at": None,
            "acknowledged_by": None,
            "resolved_at": at(3),
            "resolved_by": "alertmanager",
        },
    ],
    "incident_note": [
        {"id": 1, "incident_id": 1, "created_at": at(9), "author": "owner", "text": "looking 👀"},
    ],
    "alert_group": [
        {
            "receiver": "discord",
            "group_key": '{}:{alertname="X"}',
            "last_sent_at": at(4),
            "notified": ["f" * 64],
            "messages": 2,
        },
    ],
    "error_group": [
        {
            "id": 1,
            "fingerprint": "d" * 32,
            "error_type": "KeyError",
            "place": "clipwatch/twitch/sync.py:123 in sync_channel",
            "source": "worker",
            "message": "'cursor'",
            "trace_id": "0123456789abcdef",
            "count": 7,
            "first_seen_at": at(0),
            "last_seen_at": at(8),
        },
    ],
    "channel_live": [
        {
            "channel_id": "1001",
            "live": True,
            "stream_id": "40001",
            "started_at": at(-30),
            "title": "Live! 🔴",
            "game_id": "509658",
            "game_name": "Just Chatting",
            "viewer_count": 1234,
            "language": "en",
            "stream_type": "live",
            "source": "eventsub",
            "changed_at": at(-30),
            "checked_at": at(1),
            "ended_at": None,
        },
    ],
    "stream": [
        {
            "id": 1,
            "channel_id": "1001",
            "twitch_stream_id": "40001",
            "started_at": at(-30),
            "ended_at": None,
            "title": "Live! 🔴",
            "game_id": "509658",
            "game_name": "Just Chatting",
            "peak_viewers": 1500,
        },
        {
            "id": 2,
            "channel_id": "1002",
            "twitch_stream_id": None,
            "started_at": at(-3000),
            "ended_at": at(-2900),
            "title": None,
            "game_id": None,
            "game_name": None,
            "peak_viewers": None,
        },
    ],
    "twitch_user_token": [
        {
            "purpose": "eventsub",
            "twitch_user_id": "1001",
            "login": "streamer_one",
            "access_token_sealed": seal(SECRET.encode(), "access"),
            "refresh_token_sealed": None,
            "scopes": [],
            "expires_at": at(100),
            "validated_at": None,
            "connected_by": OWNER_ID,
            "updated_at": at(2),
            "last_error": None,
            "last_error_at": None,
        },
    ],
    "eventsub_subscription": [
        {
            "id": "f1c2a387-161a-49f9-a165-0f21d7a4e1c4",
            "type": "stream.online",
            "version": "1",
            "channel_id": "1001",
            "status": "enabled",
            "cost": 0,
            "session_id": "AgoQHR3s6Mb4T8GFB1l3DlPfiRIGY2VsbC1h",
            "created_at": at(1),
            "updated_at": at(2),
        },
    ],
    "forum_thread": [
        {
            "id": 1,
            "route_id": ROUTE_ID,
            "key": "day:2026-11-20",
            "thread_id": "1100000000000000001",
            "created_at": at(3),
        },
    ],
    "discord_guild_link": [
        {
            "guild_id": "900000000000000001",
            "user_id": OWNER_ID,
            "linked_at": at(4),
            "linked_by_discord_user": "5001",
        },
    ],
    "discord_link_code": [
        {
            "code_hash": digest("ABCD-EFGH-JKLM"),
            "user_id": OWNER_ID,
            "expires_at": at(60),
        },
    ],
    "favourite": [
        {"user_id": 2, "clip_id": LIVE_CLIP, "created_at": at(7)},
        {"user_id": 2, "clip_id": "DeletedClip", "created_at": at(8)},
    ],
    "hidden_clip": [
        {
            "clip_seq": 2,
            "clip_id": "LongTitleClip-x_Y",
            "hidden_at": at(9),
            "hidden_by": "owner",
            "reason": "a leaked address 🏠 in the title",
        },
    ],
    "audit_entry": [
        {
            "id": 1,
            "at": at(9),
            "actor_id": OWNER_ID,
            "actor": "owner",
            "action": "clip.hide",
            "target": "LongTitleClip-x_Y",
            "reason": "a leaked address 🏠 in the title",
        },
        {
            "id": 2,
            "at": at(10),
            "actor_id": None,
            "actor": "cli",
            "action": "user.role",
            "target": "user:2",
            "reason": "Zoë 🦊 is now a member",
        },
    ],
    "collection": [
        {
            "id": 1,
            "user_id": 2,
            "title": "Best of 2026 — ünïcødé",
            "description": "",
            "visibility": "unlisted",
            "share_key": "k" * 43,
            "version": 3,
            "created_at": at(11),
            "updated_at": at(12),
        },
    ],
    "collection_item": [
        {"collection_id": 1, "clip_id": LIVE_CLIP, "position": 0, "added_at": at(11)},
        {"collection_id": 1, "clip_id": "DeletedClip", "position": 1, "added_at": at(12)},
    ],
    "tag": [
        {
            "id": 1,
            "scope": 0,  # the community's (repositories/tags.py COMMUNITY)
            "owner_id": None,
            "name": "clutch",
            "description": "Rounds won against the odds — ünïcødé",
            "created_at": at(13),
            "created_by": "owner",
        },
        {
            "id": 2,
            "scope": 2,  # member 2's own
            "owner_id": 2,
            "name": "zoë-mag-2026",
            "description": "",
            "created_at": at(14),
            "created_by": "Zoë 🦊",
        },
    ],
    "clip_tag": [
        {
            "tag_id": 1,
            "clip_seq": 1,
            "clip_id": LIVE_CLIP,
            "added_at": at(13),
            "added_by_id": OWNER_ID,
            "added_by": "owner",
        },
        {
            "tag_id": 2,
            "clip_seq": 3,
            "clip_id": "DeletedClip",
            "added_at": at(15),
            "added_by_id": None,
            "added_by": "cli",
        },
    ],
}

# Columns that migrations added to tables that already had rows, and the value an existing
# row gets (their server defaults). An added column not named here must be nullable and
# reads as NULL.
ADDED_DEFAULTS: dict[tuple[str, str], object] = {
    ("channel_sync", "consecutive_failures"): 0,
    ("notification_route", "error_count"): 0,
    ("delivery", "kind"): "clip",
    ("notification_route", "notify_live"): False,
    ("notification_route", "notify_stream_end"): False,
    ("notification_route", "kind"): "clips",
    ("notification_route", "ping_here"): False,
    ("notification_route", "here_allowed"): False,
    ("notification_route", "on_deleted"): "keep",
    ("notification_route", "created_via"): "api",
}


@cache
def revisions() -> tuple[str, ...]:
    """Every revision, oldest first."""
    script = ScriptDirectory(str(MIGRATIONS))
    return tuple(s.revision for s in reversed(list(script.walk_revisions())))


def migrate(connection: Connection, revision: str) -> None:
    """Upgrade (or downgrade, to an older revision) the connection's database to `revision`."""
    config = _config(connection)
    current = (
        connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if (connection.dialect.has_table(connection, "alembic_version"))
        else None
    )
    if connection.in_transaction():
        # Alembic must begin its own transaction: a migration may step out of it
        # (autocommit_block, for CREATE INDEX CONCURRENTLY), which one begun here forbids.
        connection.commit()
    order = revisions()
    if current is not None and order.index(revision) < order.index(current):
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


def reflect(connection: Connection) -> MetaData:
    """The tables as they are now (not the search index's own: FTS5 tables, Alembic's)."""
    metadata = MetaData()
    with warnings.catch_warnings():
        # ix_game_name_lower (on lower(name)) is not reflected: the tests compare it by name.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", SAWarning)
        metadata.reflect(
            connection,
            only=lambda name, _: name != "alembic_version" and not name.startswith("clip_fts"),
        )
    return metadata


def writable_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if c.computed is None]


def rows_for(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows cut to the columns the table has; those it cannot hold yet are left out."""
    names = set(writable_columns(table))
    out = []
    for row in rows:
        kept = {k: v for k, v in row.items() if k in names}
        if all(v is not None or table.c[k].nullable for k, v in kept.items()):
            out.append(kept)
    return out


def seed(connection: Connection, only: set[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Insert ROWS into the tables the database has (or those in `only`); what was written."""
    metadata = reflect(connection)
    written: dict[str, list[dict[str, Any]]] = {}
    for name, rows in ROWS.items():
        if name not in metadata.tables or (only is not None and name not in only):
            continue
        table = metadata.tables[name]
        written[name] = rows_for(table, rows)
        for row in written[name]:
            # None in a JSON column is SQL NULL here (SQLAlchemy would write JSON 'null').
            values = {
                k: null() if v is None and isinstance(table.c[k].type, JSON) else v
                for k, v in row.items()
            }
            connection.execute(insert(table).values(values))
    if connection.dialect.name == "postgresql":
        # Explicit ids leave the sequences behind: move them past the rows, as a restore does.
        for name in written:
            (key, *more) = metadata.tables[name].primary_key.columns
            if not more and key.type.python_type is int:
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', '{key.name}'), "
                        f"max({key.name})) FROM {name} HAVING count(*) > 0"
                    )
                )
    return written


def read_rows(connection: Connection, table: Table) -> list[dict[str, Any]]:
    """Every row, every writable column, in primary key order, datetimes made UTC-aware."""
    columns = [table.c[n] for n in writable_columns(table)]
    order = list(table.primary_key.columns)
    result = connection.execute(select(*columns).order_by(*order))
    return [{k: normalize(v) for k, v in row._mapping.items()} for row in result]


def normalize(value: object) -> object:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


async def build(url: str, revision: str = PREVIOUS) -> None:
    """A new database at `revision`, filled with ROWS."""
    engine = create_engine(load_settings(database_url=url, secret_key=SECRET))
    try:
        async with engine.connect() as conn:
            await conn.run_sync(lambda sync: migrate(sync, revision))
            await conn.commit()
        async with engine.begin() as conn:
            await conn.run_sync(seed)
    finally:
        await engine.dispose()


def main() -> int:
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.unlink(missing_ok=True)
    asyncio.run(build(f"sqlite+aiosqlite:///{FIXTURE}"))
    # Small pages and no write-ahead log: one self-contained file of a few KB.
    with closing(sqlite3.connect(FIXTURE)) as db:
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA page_size=512")
        db.execute("VACUUM")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size:,} bytes, schema {PREVIOUS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
