"""The receiving side: inbox events, their raw receipts, and the copies of their outputs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from runback.store.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _partial(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "inbox_events",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("dedupe_key", sa.Text, nullable=False),
        sa.Column("event", sa.Text),
        sa.Column("run_id", sa.Text),
        sa.Column("batch_id", sa.Text),
        sa.Column("headshots_id", sa.Text),
        sa.Column("task_uuid", sa.Text),
        sa.Column("status", sa.Text),
        sa.Column("webhook_id", sa.Text),
        sa.Column("receipt_count", sa.Integer, nullable=False),
        sa.Column("handler_state", sa.Text, nullable=False),
        sa.Column("handler_attempts", sa.Integer, nullable=False),
        sa.Column("handler_error", sa.Text),
        sa.Column("handler_next_at", UtcDateTime),
        sa.Column("first_received_at", UtcDateTime, nullable=False),
        sa.Column("last_received_at", UtcDateTime, nullable=False),
        sa.Column("claimed_by", sa.Text),
        sa.Column("lease_until", UtcDateTime),
        sa.UniqueConstraint("source", "dedupe_key", name="ux_inbox_events_dedupe"),
    )
    op.create_index(
        "ix_inbox_events_handler_due",
        "inbox_events",
        ["handler_next_at"],
        **_partial("handler_state = 'pending'"),
    )
    op.create_index("ix_inbox_events_received", "inbox_events", ["first_received_at"])
    op.create_table(
        "inbox_receipts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("event_id", sa.Uuid, sa.ForeignKey("inbox_events.id")),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("scheme", sa.Text),
        sa.Column("rejected_reason", sa.Text),
        sa.Column("received_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_inbox_receipts_event", "inbox_receipts", ["event_id", "received_at"])
    op.create_table(
        "inbox_copies",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("event_id", sa.Uuid, sa.ForeignKey("inbox_events.id"), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("source_url", sa.Text, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("expected_sha256", sa.Text),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("stored_key", sa.Text),
        sa.Column("size", sa.BigInteger),
        sa.Column("sha256", sa.Text),
        sa.Column("content_type", sa.Text),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("completed_at", UtcDateTime),
        sa.Column("claimed_by", sa.Text),
        sa.Column("lease_until", UtcDateTime),
        sa.UniqueConstraint("event_id", "path", name="ux_inbox_copies_path"),
    )
    op.create_index(
        "ix_inbox_copies_due", "inbox_copies", ["next_attempt_at"], **_partial("state = 'pending'")
    )


def downgrade() -> None:
    op.drop_table("inbox_copies")
    op.drop_table("inbox_receipts")
    op.drop_table("inbox_events")
