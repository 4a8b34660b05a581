"""Hardening: channel failures, quarantined clips, deletion proofs, route errors, worker tasks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from clipwatch.db.types import BigIntPK, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channel_sync") as batch:
        batch.add_column(sa.Column("last_success_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_error_at", UTCDateTime(), nullable=True))
        batch.add_column(
            sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("next_try_at", UTCDateTime(), nullable=True))
    op.create_table(
        "clip_quarantine",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("clip_id", sa.String(128), nullable=True),
        sa.Column("broadcaster_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("times_seen", sa.Integer(), server_default="1", nullable=False),
        sa.UniqueConstraint("key", name="uq_clip_quarantine_key"),
    )
    op.create_index("ix_clip_quarantine_broadcaster_id", "clip_quarantine", ["broadcaster_id"])
    op.create_table(
        "clip_absence",
        sa.Column("clip_id", sa.String(128), primary_key=True),
        sa.Column("broadcaster_id", sa.String(64), nullable=False),
        sa.Column("first_missing_at", UTCDateTime(), nullable=False),
        sa.Column("last_checked_at", UTCDateTime(), nullable=False),
        sa.Column("confirmations", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_index("ix_clip_absence_broadcaster_id", "clip_absence", ["broadcaster_id"])
    with op.batch_alter_table("notification_route") as batch:
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_error_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("error_count", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "worker_task",
        sa.Column("worker", sa.String(128), primary_key=True),
        sa.Column("task", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("last_success_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", UTCDateTime(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("restarts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("worker_task")
    # In place on SQLite: a copied-and-recreated notification_route would be dropped with
    # foreign keys on, and ON DELETE CASCADE would empty delivery (see 0010's downgrade).
    with op.batch_alter_table("notification_route", recreate="never") as batch:
        batch.drop_column("error_count")
        batch.drop_column("last_error_at")
        batch.drop_column("last_error")
    op.drop_table("clip_absence")
    op.drop_table("clip_quarantine")
    with op.batch_alter_table("channel_sync") as batch:
        for name in (
            "next_try_at",
            "consecutive_failures",
            "last_error_at",
            "last_error",
            "last_success_at",
        ):
            batch.drop_column(name)
