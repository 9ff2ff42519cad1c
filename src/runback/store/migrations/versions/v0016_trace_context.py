"""Trace context: the W3C ``traceparent`` of a run's submission and of a delivery's
``deliver`` span, carried through the store from the API to the workers (traced
deployments only; null otherwise).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("traceparent", sa.Text))
    op.add_column("deliveries", sa.Column("traceparent", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("traceparent")
    with op.batch_alter_table("runs") as table:
        table.drop_column("traceparent")
