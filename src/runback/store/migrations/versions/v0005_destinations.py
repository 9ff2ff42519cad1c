"""Destinations and their circuit breakers, bulk recoveries of failed deliveries, and the
indexes retention prunes by.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from runback.core.destinations import destination_of
from runback.store.types import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _partial(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as deliveries:
        deliveries.add_column(sa.Column("destination", sa.Text))
        deliveries.add_column(sa.Column("recovery_id", sa.Uuid))
    connection = op.get_bind()
    table = sa.table(
        "deliveries", sa.column("id"), sa.column("callback_url"), sa.column("destination")
    )
    for row in connection.execute(sa.select(table.c.id, table.c.callback_url)).all():
        connection.execute(
            table.update()
            .where(table.c.id == row.id)
            .values(destination=destination_of(row.callback_url))
        )
    op.create_index(
        "ix_deliveries_destination_pending",
        "deliveries",
        ["destination", "next_attempt_at"],
        **_partial("status = 'pending'"),
    )
    op.create_index("ix_deliveries_recovery", "deliveries", ["recovery_id"])
    # Retention finds what is old enough to prune without scanning.
    op.create_index("ix_runs_completed", "runs", ["completed_at"])
    op.create_index("ix_inbox_events_last_received", "inbox_events", ["last_received_at"])
    op.create_table(
        "destinations",
        sa.Column("host", sa.Text, primary_key=True),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("trips", sa.Integer, nullable=False),
        sa.Column("failing_since", UtcDateTime),
        sa.Column("open_until", UtcDateTime),
        sa.Column("disabled_at", UtcDateTime),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "recoveries",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("organization_id", sa.Uuid, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("created_from", UtcDateTime, nullable=False),
        sa.Column("created_to", UtcDateTime, nullable=False),
        sa.Column("destination", sa.Text),
        sa.Column("queued", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("recoveries")
    op.drop_table("destinations")
    op.drop_index("ix_inbox_events_last_received", "inbox_events")
    op.drop_index("ix_runs_completed", "runs")
    op.drop_index("ix_deliveries_recovery", "deliveries")
    op.drop_index("ix_deliveries_destination_pending", "deliveries")
    with op.batch_alter_table("deliveries") as deliveries:
        deliveries.drop_column("recovery_id")
        deliveries.drop_column("destination")
