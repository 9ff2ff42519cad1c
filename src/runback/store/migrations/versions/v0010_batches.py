"""Batches, and several events per run: each delivery names its event, at most one delivery
of each event in flight (a run's results each have their own, kept in ``run_results``), and
a batch's one callback.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from runback.store.types import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_IN_FLIGHT = "status IN ('pending', 'delivering')"


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("organization_id", sa.Uuid, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("metadata", sa.Text),
        sa.Column("callback_url", sa.Text),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("request_hash", sa.Text),
        sa.Column("items_total", sa.Integer, nullable=False),
        sa.Column("items_succeeded", sa.Integer, nullable=False),
        sa.Column("items_failed", sa.Integer, nullable=False),
        sa.Column("items_cancelled", sa.Integer, nullable=False),
        sa.Column("callback_due", sa.Boolean, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("completed_at", UtcDateTime),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_batches_org_created", "batches", ["organization_id", "created_at"])
    op.create_index("ix_batches_completed", "batches", ["completed_at"])
    op.create_index(
        "ix_batches_callback_due", "batches", ["completed_at"], **_where("callback_due")
    )
    op.create_index(
        "ux_batches_idempotency",
        "batches",
        ["organization_id", "idempotency_key"],
        unique=True,
        **_where("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "run_results",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("run_id", sa.Uuid, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("organization_id", sa.Uuid, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("output_id", sa.Uuid),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_run_results_run", "run_results", ["run_id", "position"])
    op.add_column("runs", sa.Column("sequence_index", sa.Integer))
    op.create_index(
        "ix_runs_batch", "runs", ["batch_id", "sequence_index"], **_where("batch_id IS NOT NULL")
    )
    op.add_column(
        "deliveries",
        sa.Column("event_key", sa.Text, nullable=False, server_default=sa.text("'terminal'")),
    )
    op.create_index(
        "ix_deliveries_batch", "deliveries", ["batch_id"], **_where("batch_id IS NOT NULL")
    )
    op.drop_index("ux_deliveries_in_flight", table_name="deliveries")
    op.create_index(
        "ux_deliveries_in_flight",
        "deliveries",
        ["run_id", "event_key"],
        unique=True,
        **_where(f"{_IN_FLIGHT} AND run_id IS NOT NULL"),
    )
    op.create_index(
        "ux_deliveries_batch_in_flight",
        "deliveries",
        ["batch_id"],
        unique=True,
        **_where(f"{_IN_FLIGHT} AND batch_id IS NOT NULL AND run_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_deliveries_batch_in_flight", table_name="deliveries")
    op.drop_index("ux_deliveries_in_flight", table_name="deliveries")
    op.create_index(
        "ux_deliveries_in_flight",
        "deliveries",
        ["run_id"],
        unique=True,
        **_where(f"{_IN_FLIGHT} AND run_id IS NOT NULL"),
    )
    op.drop_index("ix_deliveries_batch", table_name="deliveries")
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("event_key")
    op.drop_index("ix_runs_batch", table_name="runs")
    with op.batch_alter_table("runs") as table:
        table.drop_column("sequence_index")
    op.drop_table("run_results")
    op.drop_table("batches")
