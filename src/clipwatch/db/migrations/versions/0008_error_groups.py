"""Error tracking: unexpected errors grouped by fingerprint (type and place)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from clipwatch.db.types import BigIntPK, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "error_group",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("error_type", sa.String(200), nullable=False),
        sa.Column("place", sa.String(300), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("trace_id", sa.String(128), nullable=False),
        sa.Column("count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("fingerprint", name="uq_error_group_fingerprint"),
    )
    op.create_index("ix_error_group_last_seen_at_id", "error_group", ["last_seen_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_error_group_last_seen_at_id", table_name="error_group")
    op.drop_table("error_group")
