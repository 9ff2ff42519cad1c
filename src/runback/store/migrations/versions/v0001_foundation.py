"""The foundation: organizations, API keys, runs, callback secrets, deliveries, attempts.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from runback.store.types import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _lease() -> list[sa.Column[object]]:
    return [sa.Column("claimed_by", sa.Text), sa.Column("lease_until", UtcDateTime)]


def _partial(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        sa.Column("key_prefix", sa.Text, nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("revoked_at", UtcDateTime),
        sa.Column("last_used_at", UtcDateTime),
    )
    op.create_table(
        "memberships",
        sa.Column("api_key_id", sa.Uuid, sa.ForeignKey("api_keys.id"), primary_key=True),
        sa.Column("organization_id", sa.Uuid, sa.ForeignKey("organizations.id"), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("organization_id", sa.Uuid, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("metadata", sa.Text),
        sa.Column("client_ref", sa.Text),
        sa.Column("callback_url", sa.Text),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("request_hash", sa.Text),
        sa.Column("batch_id", sa.Uuid),
        sa.Column("failure_code", sa.Text),
        sa.Column("failure_message", sa.Text),
        sa.Column("execution_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("started_at", UtcDateTime),
        sa.Column("completed_at", UtcDateTime),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        *_lease(),
    )
    op.create_index("ix_runs_org_created", "runs", ["organization_id", "created_at"])
    op.create_index("ix_runs_queued", "runs", ["created_at"], **_partial("status = 'queued'"))
    op.create_index(
        "ux_runs_idempotency",
        "runs",
        ["organization_id", "idempotency_key"],
        unique=True,
        **_partial("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "callback_secrets",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("organization_id", sa.Uuid, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("key_prefix", sa.Text, nullable=False),
        sa.Column("is_current", sa.Boolean, nullable=False),
        sa.Column("disabled_at", UtcDateTime),
        sa.Column("last_used_at", UtcDateTime),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index(
        "ux_callback_secrets_current",
        "callback_secrets",
        ["organization_id"],
        unique=True,
        **_partial("is_current"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("organization_id", sa.Uuid, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("run_id", sa.Uuid, sa.ForeignKey("runs.id")),
        sa.Column("batch_id", sa.Uuid),
        sa.Column("callback_url", sa.Text, nullable=False),
        sa.Column("webhook_id", sa.Text, nullable=False),
        sa.Column("payload_bytes", sa.LargeBinary, nullable=False),
        sa.Column("is_automatic", sa.Boolean, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("failure_reason_code", sa.Text),
        sa.Column("failure_detail", sa.Text),
        sa.Column("attempt_count", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("retry_policy", sa.Text, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime),
        sa.Column("signing_secret_id", sa.Uuid),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("completed_at", UtcDateTime),
        *_lease(),
    )
    op.create_index("ix_deliveries_run", "deliveries", ["run_id"])
    op.create_index(
        "ix_deliveries_due", "deliveries", ["next_attempt_at"], **_partial("status = 'pending'")
    )
    op.create_index(
        "ux_deliveries_in_flight",
        "deliveries",
        ["run_id"],
        unique=True,
        **_partial("status IN ('pending', 'delivering') AND run_id IS NOT NULL"),
    )
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("delivery_id", sa.Uuid, sa.ForeignKey("deliveries.id"), nullable=False),
        sa.Column("organization_id", sa.Uuid, nullable=False),
        sa.Column("attempt_number", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("response_body", sa.Text),
        sa.Column("response_time_ms", sa.Integer, nullable=False),
        sa.Column("error_message", sa.Text),
        sa.Column("failure_reason_code", sa.Text),
        sa.Column("signing_secret_id", sa.Uuid),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index(
        "ix_delivery_attempts_delivery", "delivery_attempts", ["delivery_id", "attempt_number"]
    )


def downgrade() -> None:
    for table in (
        "delivery_attempts",
        "deliveries",
        "callback_secrets",
        "runs",
        "memberships",
        "api_keys",
        "organizations",
    ):
        op.drop_table(table)
