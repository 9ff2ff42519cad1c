"""Ordered delivery: the callback URLs an organization wants delivered in order, and each
delivery's ``ordered`` flag (set at its insert), with the partial index its claim checks.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from runback.store.types import UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ORDERED_IN_FLIGHT = "ordered AND status IN ('pending', 'delivering')"


def upgrade() -> None:
    op.create_table(
        "ordered_callbacks",
        sa.Column("organization_id", sa.Uuid, sa.ForeignKey("organizations.id"), primary_key=True),
        sa.Column("callback_url", sa.Text, primary_key=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.add_column(
        "deliveries",
        sa.Column("ordered", sa.Boolean, nullable=False, server_default=sa.text("false")),
    )
    op.create_index(
        "ix_deliveries_ordered_in_flight",
        "deliveries",
        ["organization_id", "callback_url", "created_at", "id"],
        sqlite_where=sa.text(_ORDERED_IN_FLIGHT),
        postgresql_where=sa.text(_ORDERED_IN_FLIGHT),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_ordered_in_flight", table_name="deliveries")
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("ordered")
    op.drop_table("ordered_callbacks")
