"""Live state: channels' streams (Get Streams and EventSub), adaptive cadence, stream
notices on routes, the EventSub user token and subscriptions

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from clipwatch.db.types import BigIntPK, UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channel_sync") as batch:
        batch.add_column(sa.Column("next_sync_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("final_pass_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("notification_route") as batch:
        batch.add_column(sa.Column("notify_live", sa.Boolean(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("notify_stream_end", sa.Boolean(), server_default="0", nullable=False)
        )
    op.create_table(
        "channel_live",
        sa.Column("channel_id", sa.String(64), primary_key=True),
        sa.Column("live", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("stream_id", sa.String(64), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("game_id", sa.String(64), nullable=True),
        sa.Column("game_name", sa.String(256), nullable=True),
        sa.Column("viewer_count", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("stream_type", sa.String(16), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "stream",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("twitch_stream_id", sa.String(64), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("game_id", sa.String(64), nullable=True),
        sa.Column("game_name", sa.String(256), nullable=True),
        sa.Column("peak_viewers", sa.Integer(), nullable=True),
        sa.UniqueConstraint("channel_id", "started_at", name="uq_stream_channel_id_started_at"),
    )
    op.create_table(
        "twitch_user_token",
        sa.Column("purpose", sa.String(32), primary_key=True),
        sa.Column("twitch_user_id", sa.String(64), nullable=False),
        sa.Column("login", sa.String(64), nullable=False),
        sa.Column("access_token_sealed", sa.Text(), nullable=False),
        sa.Column("refresh_token_sealed", sa.Text(), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("validated_at", UTCDateTime(), nullable=True),
        sa.Column(
            "connected_by",
            BigIntPK,
            sa.ForeignKey("app_user.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "eventsub_subscription",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("version", sa.String(8), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("cost", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_eventsub_subscription_channel_id", "eventsub_subscription", ["channel_id"])


def downgrade() -> None:
    op.drop_index("ix_eventsub_subscription_channel_id", table_name="eventsub_subscription")
    op.drop_table("eventsub_subscription")
    op.drop_table("twitch_user_token")
    op.drop_table("stream")
    op.drop_table("channel_live")
    # In place on SQLite: a copied-and-recreated notification_route would be dropped with
    # foreign keys on, and ON DELETE CASCADE would empty delivery (see 0010's downgrade).
    with op.batch_alter_table("notification_route", recreate="never") as batch:
        batch.drop_column("notify_stream_end")
        batch.drop_column("notify_live")
    with op.batch_alter_table("channel_sync") as batch:
        batch.drop_column("final_pass_at")
        batch.drop_column("next_sync_at")
