"""Scaling out: cancel requests that cross processes, and indexes for reclaiming leases.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from runback.store.types import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _partial(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("cancel_requested_at", UtcDateTime))
    op.create_index(
        "ix_runs_claimed_lease", "runs", ["lease_until"], **_partial("status = 'running'")
    )
    op.create_index(
        "ix_deliveries_claimed_lease",
        "deliveries",
        ["lease_until"],
        **_partial("status = 'delivering'"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_claimed_lease", "deliveries")
    op.drop_index("ix_runs_claimed_lease", "runs")
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("cancel_requested_at")
