"""Favourites (issue 17): the clips a member keeps

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from clipwatch.db.types import BigIntPK, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table: no lock on any existing one (docs/upgrades.md).
    op.create_table(
        "favourite",
        sa.Column(
            "user_id", BigIntPK, sa.ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("clip_id", sa.String(128), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_favourite_user_newest", "favourite", ["user_id", "created_at", "clip_id"])


def downgrade() -> None:
    op.drop_index("ix_favourite_user_newest", table_name="favourite")
    op.drop_table("favourite")
