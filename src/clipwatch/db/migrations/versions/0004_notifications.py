"""Discord notification routes and the delivery outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from clipwatch.db.types import BigIntPK, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_route",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id", BigIntPK, sa.ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("webhook_id", sa.String(32), nullable=False),
        sa.Column("webhook_token_sealed", sa.Text(), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("template", sa.JSON(), nullable=False),
        sa.Column("delay_seconds", sa.Integer(), nullable=False),
        sa.Column("batching", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_notification_route_user_id", "notification_route", ["user_id"])
    op.create_table(
        "delivery",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column(
            "route_id",
            BigIntPK,
            sa.ForeignKey("notification_route.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("clip_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("route_id", "clip_id", name="uq_delivery_route_id_clip_id"),
    )
    op.create_index("ix_delivery_due", "delivery", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("delivery")
    op.drop_table("notification_route")
