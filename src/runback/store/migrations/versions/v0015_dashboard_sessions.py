"""Dashboard sessions: a login's hashed id, its API key's row, its CSRF token and expiry.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from runback.store.types import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("id_hash", sa.Text, primary_key=True),
        sa.Column("api_key_id", sa.Uuid, sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("csrf_token", sa.Text, nullable=False),
        sa.Column("organization_id", sa.Uuid),
        sa.Column("flash", sa.Text),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_dashboard_sessions_key", "dashboard_sessions", ["api_key_id"])
    op.create_index("ix_dashboard_sessions_expires", "dashboard_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_dashboard_sessions_expires", table_name="dashboard_sessions")
    op.drop_index("ix_dashboard_sessions_key", table_name="dashboard_sessions")
    op.drop_table("dashboard_sessions")
