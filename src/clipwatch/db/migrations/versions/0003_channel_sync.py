"""Twitch sync state per channel, with leases

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from clipwatch.db.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_sync",
        sa.Column("channel_id", sa.String(64), primary_key=True),
        sa.Column("backfill_until", UTCDateTime(), nullable=True),
        sa.Column("backfill_done_until", UTCDateTime(), nullable=True),
        sa.Column("backfill_completed_at", UTCDateTime(), nullable=True),
        sa.Column("last_incremental_at", UTCDateTime(), nullable=True),
        sa.Column("last_refresh_at", UTCDateTime(), nullable=True),
        sa.Column("refresh_marks", sa.JSON(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("channel_sync")
