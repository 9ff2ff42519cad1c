"""A revision counter of the API keys, bumped by every revocation: API processes keep the
keys they have seen and read only the counter per request.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    revisions = op.create_table(
        "revisions",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(revisions, [{"name": "api_keys", "value": 0}])


def downgrade() -> None:
    op.drop_table("revisions")
