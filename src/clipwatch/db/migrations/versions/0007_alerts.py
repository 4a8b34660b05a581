"""Alerts: leases, alert state, incidents and their notes, alert groups; alert messages in
the outbox (a delivery's kind, idempotency key and payload; no route for an alert)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from clipwatch.db.types import BigIntPK, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OPEN = sa.text("state != 'resolved'")


def upgrade() -> None:
    op.create_table(
        "lease",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "alert_state",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("active_since", UTCDateTime(), nullable=True),
        sa.Column("clear_since", UTCDateTime(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_alert_state_rule", "alert_state", ["rule"])
    op.create_table(
        "incident",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("fired_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(64), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
    )
    op.create_index(
        "uq_incident_open_fingerprint",
        "incident",
        ["fingerprint"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_index("ix_incident_state_id", "incident", ["state", "id"])
    op.create_table(
        "incident_note",
        sa.Column("id", BigIntPK, primary_key=True, autoincrement=True),
        sa.Column(
            "incident_id",
            BigIntPK,
            sa.ForeignKey(
                "incident.id", ondelete="CASCADE", name="fk_incident_note_incident_id_incident"
            ),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
    )
    op.create_index("ix_incident_note_incident_id", "incident_note", ["incident_id"])
    op.create_table(
        "alert_group",
        sa.Column("receiver", sa.String(64), primary_key=True),
        sa.Column("group_key", sa.String(128), primary_key=True),
        sa.Column("last_sent_at", UTCDateTime(), nullable=True),
        sa.Column("notified", sa.JSON(), nullable=False),
        sa.Column("messages", sa.Integer(), server_default="0", nullable=False),
    )
    with op.batch_alter_table("delivery") as batch:
        batch.alter_column("route_id", existing_type=BigIntPK, nullable=True)
        batch.add_column(sa.Column("kind", sa.String(16), server_default="clip", nullable=False))
        batch.add_column(sa.Column("idempotency_key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("payload", sa.JSON(), nullable=True))
        batch.create_unique_constraint("uq_delivery_idempotency_key", ["idempotency_key"])


def downgrade() -> None:
    op.execute("DELETE FROM delivery WHERE route_id IS NULL")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_constraint("uq_delivery_idempotency_key", type_="unique")
        batch.drop_column("payload")
        batch.drop_column("idempotency_key")
        batch.drop_column("kind")
        batch.alter_column("route_id", existing_type=BigIntPK, nullable=False)
    op.drop_table("alert_group")
    op.drop_index("ix_incident_note_incident_id", table_name="incident_note")
    op.drop_table("incident_note")
    op.drop_index("ix_incident_state_id", table_name="incident")
    op.drop_index("uq_incident_open_fingerprint", table_name="incident")
    op.drop_table("incident")
    op.drop_index("ix_alert_state_rule", table_name="alert_state")
    op.drop_table("alert_state")
    op.drop_table("lease")
