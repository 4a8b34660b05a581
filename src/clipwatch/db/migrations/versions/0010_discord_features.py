"""Discord as communities use it (issue 15): threads and forums, role pings, identity per
route, the webhook's facts, digests, trending, messages that stay true, setup from Discord

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from clipwatch.db.types import BigIntPK, UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _route_columns() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        # `clips` (new clips, as before) or `digest` (top clips of a period, on a schedule).
        sa.Column("kind", sa.String(16), server_default="clips", nullable=False),
        # Threads and forums: post into one thread, or (forum channel) open threads by name.
        sa.Column("thread_id", sa.String(32), nullable=True),
        sa.Column("forum_mode", sa.String(16), nullable=True),  # post | day | stream
        sa.Column("thread_name", sa.Text(), nullable=True),  # a template for forum thread names
        # Role pings, opt-in; @here only when an admin allowed it on this route.
        sa.Column("role_ids", sa.JSON(), nullable=True),
        sa.Column("ping_here", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("here_allowed", sa.Boolean(), server_default="0", nullable=False),
        # Identity per route.
        sa.Column("username", sa.String(80), nullable=True),
        sa.Column("avatar_url", sa.Text(), nullable=True),
        # What GET /webhooks/{id}/{token} said when the route was saved.
        sa.Column("webhook_channel_id", sa.String(32), nullable=True),
        sa.Column("webhook_guild_id", sa.String(32), nullable=True),
        sa.Column("webhook_name", sa.String(100), nullable=True),
        sa.Column("webhook_checked_at", UTCDateTime(), nullable=True),
        # Digests: {"period": day|week|month, "weekday": 0-6, "time": "HH:MM",
        # "time_zone": IANA, "top": N}; null for a `clips` route.
        sa.Column("digest", sa.JSON(), nullable=True),
        # Trending: post a clip once when it gains at least this many views an hour.
        sa.Column("trending_views_per_hour", sa.Integer(), nullable=True),
        # Messages that stay true: what to do with a posted clip deleted on Twitch.
        sa.Column("on_deleted", sa.String(16), server_default="keep", nullable=False),
        sa.Column("milestones", sa.JSON(), nullable=True),  # view counts that edit the message
        # `api` (the API, the CLI, the page) or `discord` (/clipwatch follow).
        sa.Column("created_via", sa.String(16), server_default="api", nullable=False),
        sa.Column(
            "discord_channel_id", sa.String(32), nullable=True
        ),  # /clipwatch follow's channel
    ]


def upgrade() -> None:
    with op.batch_alter_table("notification_route") as batch:
        for column in _route_columns():
            batch.add_column(column)
    with op.batch_alter_table("delivery") as batch:
        # The thread a message went into (a forum post's own thread): edits and deletes of
        # the message name it (`?thread_id=`).
        batch.add_column(sa.Column("thread_id", sa.String(32), nullable=True))
        # An edit or delete (kinds `edit`, `delete`) of the message another delivery posted.
        batch.add_column(sa.Column("ref_delivery_id", sa.BigInteger(), nullable=True))
    op.create_table(
        "forum_thread",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column(
            "route_id",
            sa.BigInteger(),
            sa.ForeignKey("notification_route.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("key", sa.String(100), nullable=False),  # day:2026-11-27 | stream:<id>
        sa.Column("thread_id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("route_id", "key", name="uq_forum_thread_route_id_key"),
    )
    op.create_table(
        "discord_guild_link",
        sa.Column("guild_id", sa.String(32), primary_key=True),
        sa.Column(
            "user_id",
            sa.BigInteger(),
            sa.ForeignKey("app_user.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("linked_at", UTCDateTime(), nullable=False),
        sa.Column("linked_by_discord_user", sa.String(32), nullable=True),
    )
    op.create_table(
        "discord_link_code",
        sa.Column("code_hash", sa.String(128), primary_key=True),
        sa.Column(
            "user_id",
            sa.BigInteger(),
            sa.ForeignKey("app_user.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("discord_link_code")
    op.drop_table("discord_guild_link")
    op.drop_table("forum_thread")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("ref_delivery_id")
        batch.drop_column("thread_id")
    # SQLite drops these columns in place (3.35+): a copied-and-recreated notification_route
    # would be dropped with foreign keys on, and ON DELETE CASCADE would empty delivery.
    with op.batch_alter_table("notification_route", recreate="never") as batch:
        for column in reversed(_route_columns()):
            batch.drop_column(column.name)
