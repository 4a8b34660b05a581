"""A session opened with an API token remembers it, and lives no longer than it

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from clipwatch.db.types import BigIntPK

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_session") as batch:
        batch.add_column(sa.Column("token_id", BigIntPK, nullable=True))
        batch.create_index("ix_user_session_token_id", ["token_id"])


def downgrade() -> None:
    with op.batch_alter_table("user_session") as batch:
        batch.drop_index("ix_user_session_token_id")
        batch.drop_column("token_id")
