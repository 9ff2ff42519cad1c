"""Ed25519 keys among callback secrets: each secret has a type (``hmac``, every secret so
far, or ``ed25519``), an Ed25519 key its public key in plain, and one current secret per
organization and type (the current HMAC secret signs ``Runflow-Signature``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.add_column(
        "callback_secrets",
        sa.Column("type", sa.Text, nullable=False, server_default=sa.text("'hmac'")),
    )
    op.add_column("callback_secrets", sa.Column("public_key", sa.Text))
    op.drop_index("ux_callback_secrets_current", table_name="callback_secrets")
    op.create_index(
        "ux_callback_secrets_current",
        "callback_secrets",
        ["organization_id", "type"],
        unique=True,
        **_where("is_current"),
    )


def downgrade() -> None:
    # Ed25519 keys cannot sign as HMAC secrets: they go with their column.
    op.execute("DELETE FROM callback_secrets WHERE type <> 'hmac'")
    op.drop_index("ux_callback_secrets_current", table_name="callback_secrets")
    op.create_index(
        "ux_callback_secrets_current",
        "callback_secrets",
        ["organization_id"],
        unique=True,
        **_where("is_current"),
    )
    with op.batch_alter_table("callback_secrets") as table:
        table.drop_column("public_key")
        table.drop_column("type")
