"""Tags (issue 17): the community's vocabulary and members' private tags, and the tags on
clips

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from clipwatch.db.types import BigIntPK, UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # New tables only: no lock on any existing one (docs/upgrades.md).
    op.create_table(
        "tag",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.BigInteger(), nullable=False),
        sa.Column(
            "owner_id",
            BigIntPK,
            sa.ForeignKey("app_user.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.UniqueConstraint("scope", "name", name="uq_tag_scope_name"),
    )
    op.create_index("ix_tag_owner_id", "tag", ["owner_id"])
    op.create_table(
        "clip_tag",
        sa.Column(
            "tag_id", BigIntPK, sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("clip_seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("clip_id", sa.String(128), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.Column("added_by_id", sa.BigInteger(), nullable=True),
        sa.Column("added_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_clip_tag_clip_seq", "clip_tag", ["clip_seq"])


def downgrade() -> None:
    op.drop_index("ix_clip_tag_clip_seq", table_name="clip_tag")
    op.drop_table("clip_tag")
    op.drop_index("ix_tag_owner_id", table_name="tag")
    op.drop_table("tag")
