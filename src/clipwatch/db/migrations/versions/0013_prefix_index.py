"""The search index's prefix entries (issue 16): a GIN index over clip_search_terms(search_vector)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28

PostgreSQL only (SQLite's FTS5 has had prefix indexes since 0001). The function adds each
word's 2- to 4-character prefixes to the vector as entries of their own (db/search.py), so a
trailing prefix is an exact entry of the index, not a partial match over every word it starts.
The index is built CONCURRENTLY, outside the migration's transaction: writes to `clip` go on
while it is built (docs/upgrades.md; 4 min 48 s at 10M clips on a 2-core machine).
`ix_clip_search` stays: searches without a short trailing prefix still use it (and processes
of the previous release, until they are replaced).
"""

from alembic import op
from sqlalchemy import text

from clipwatch.db import search

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(search.PG_TERMS_FUNCTION)
    index = search.PG_TERMS_INDEX
    with op.get_context().autocommit_block():
        # A build that was interrupted (a crash, a cancel) leaves an INVALID index behind, which
        # IF NOT EXISTS would keep: drop it and build again.
        invalid = op.get_bind().execute(
            text("SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(:name) AND NOT indisvalid"),
            {"name": index},
        )
        if invalid.first() is not None:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index}")
        op.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {index} "
            f"ON clip USING gin ({search.PG_TERMS_EXPRESSION})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {search.PG_TERMS_INDEX}")
    op.execute("DROP FUNCTION IF EXISTS clip_search_terms(tsvector)")
