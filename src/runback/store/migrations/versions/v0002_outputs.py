"""Output files of runs, the keys that sign their URLs, per-run URL lifetimes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from runback.store.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_outputs",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("run_id", sa.Uuid, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("organization_id", sa.Uuid, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False, unique=True),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_run_outputs_run", "run_outputs", ["run_id", "position"])
    op.create_table(
        "signing_keys",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("output_url_ttl", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("output_url_ttl")
    op.drop_table("signing_keys")
    op.drop_table("run_outputs")
