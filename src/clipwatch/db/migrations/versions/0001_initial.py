"""channel, game, clip and the full-text search index

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from clipwatch.db import search
from clipwatch.db.types import BigIntPK, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("login", sa.String(64), nullable=True),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("tracked", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("profile_image_url", sa.Text(), nullable=True),
        sa.Column("account_created_at", UTCDateTime(), nullable=True),
        sa.Column("added_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("login", name="uq_channel_login"),
    )
    op.create_table(
        "game",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("box_art_url", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_game_name_lower", "game", [sa.text("lower(name)")])
    op.create_table(
        "clip",
        sa.Column("seq", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("embed_url", sa.Text(), nullable=False),
        # References without foreign keys: see db/models.py.
        sa.Column("broadcaster_id", sa.String(64), nullable=False),
        sa.Column("broadcaster_name", sa.String(128), nullable=False),
        sa.Column("creator_id", sa.String(64), nullable=False),
        sa.Column("creator_name", sa.String(128), nullable=False),
        sa.Column("video_id", sa.String(64), nullable=True),
        sa.Column("game_id", sa.String(64), nullable=True),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column(
            "view_count", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("thumbnail_url", sa.Text(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("vod_offset", sa.Integer(), nullable=True),
        sa.Column("is_featured", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("id", name="uq_clip_id"),
    )
    for name, columns in [
        ("ix_clip_game_views", ["game_id", "view_count", "seq"]),
        ("ix_clip_creator_id", ["creator_id"]),
    ]:
        op.create_index(name, "clip", columns)
    search.create_index(op.get_bind())


def downgrade() -> None:
    search.drop_index(op.get_bind())
    op.drop_table("clip")
    op.drop_table("game")
    op.drop_table("channel")
