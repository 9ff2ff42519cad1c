"""Expected runs: the runs ``runback receive`` waits for a callback about (polled from their
sender when none came), and each inbox event's ``reconciled`` flag.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from runback.store.types import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_WAITING = "state = 'waiting'"


def upgrade() -> None:
    op.add_column(
        "inbox_events",
        sa.Column("reconciled", sa.Boolean, nullable=False, server_default=sa.text("false")),
    )
    op.create_index("ix_inbox_events_run", "inbox_events", ["source", "run_id"])
    op.create_table(
        "inbox_expected",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("expected_by", UtcDateTime, nullable=False),
        sa.Column("next_poll_at", UtcDateTime),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("event_id", sa.Uuid),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("settled_at", UtcDateTime),
    )
    op.create_index(
        "ix_inbox_expected_due",
        "inbox_expected",
        ["next_poll_at"],
        sqlite_where=sa.text(_WAITING),
        postgresql_where=sa.text(_WAITING),
    )
    op.create_index("ix_inbox_expected_state", "inbox_expected", ["state", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_inbox_expected_state", table_name="inbox_expected")
    op.drop_index("ix_inbox_expected_due", table_name="inbox_expected")
    op.drop_table("inbox_expected")
    op.drop_index("ix_inbox_events_run", table_name="inbox_events")
    with op.batch_alter_table("inbox_events") as table:
        table.drop_column("reconciled")
