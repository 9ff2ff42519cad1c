"""A held delivery keeps the time its own retry ladder would try it, so an open circuit's
probe goes no later than that.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from runback.store.types import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.add_column(sa.Column("held_due_at", UtcDateTime))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("held_due_at")
