"""Curation (issue 17): the clips a member keeps, clips moderators hid, the audit log,
collections

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
    op.create_table(
        "hidden_clip",
        sa.Column("clip_seq", BigIntPK, primary_key=True, autoincrement=False),
        sa.Column("clip_id", sa.String(128), nullable=False),
        sa.Column("hidden_at", UTCDateTime(), nullable=False),
        sa.Column("hidden_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.UniqueConstraint("clip_id", name="uq_hidden_clip_clip_id"),
    )
    op.create_table(
        "audit_entry",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_entry_target", "audit_entry", ["target"])
    op.create_table(
        "collection",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id", BigIntPK, sa.ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("share_key", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("share_key", name="uq_collection_share_key"),
    )
    op.create_index("ix_collection_user_id", "collection", ["user_id"])
    op.create_table(
        "collection_item",
        sa.Column(
            "collection_id",
            BigIntPK,
            sa.ForeignKey("collection.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("clip_id", sa.String(128), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("collection_item")
    op.drop_index("ix_collection_user_id", table_name="collection")
    op.drop_table("collection")
    op.drop_index("ix_audit_entry_target", table_name="audit_entry")
    op.drop_table("audit_entry")
    op.drop_table("hidden_clip")
    op.drop_index("ix_favourite_user_newest", table_name="favourite")
    op.drop_table("favourite")
