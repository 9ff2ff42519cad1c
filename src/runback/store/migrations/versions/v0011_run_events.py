"""A run's events while it works: which it asked for, the sequence of its latest, each event
kept for its stream; an organization's deliveries in the order they were made (what
``runback listen`` follows); on the receiving side, each event's sequence and whether it
came stale.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from runback.store.types import UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("events", sa.Text))
    op.add_column(
        "runs",
        sa.Column("event_sequence", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_table(
        "run_events",
        sa.Column("run_id", sa.Uuid, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("sequence", sa.Integer, primary_key=True),
        sa.Column("organization_id", sa.Uuid, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index(
        "ix_deliveries_org_created", "deliveries", ["organization_id", "created_at", "id"]
    )
    op.add_column("inbox_events", sa.Column("sequence", sa.BigInteger))
    op.add_column(
        "inbox_events",
        sa.Column("stale", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "ix_inbox_events_run_sequence",
        "inbox_events",
        ["source", "run_id", "sequence"],
        sqlite_where=sa.text("sequence IS NOT NULL"),
        postgresql_where=sa.text("sequence IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_events_run_sequence", table_name="inbox_events")
    with op.batch_alter_table("inbox_events") as table:
        table.drop_column("stale")
        table.drop_column("sequence")
    op.drop_table("run_events")
    op.drop_index("ix_deliveries_org_created", table_name="deliveries")
    with op.batch_alter_table("runs") as table:
        table.drop_column("event_sequence")
        table.drop_column("events")
