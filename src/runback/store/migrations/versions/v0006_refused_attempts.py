"""An attempt whose outcome was refused (its worker had lost the delivery's claim) keeps its
row, with the reason.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_attempts") as attempts:
        attempts.add_column(sa.Column("refused_reason", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempts") as attempts:
        attempts.drop_column("refused_reason")
