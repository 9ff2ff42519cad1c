"""Callback secrets: which sign, and which is current."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from sqlalchemy import Row, select

from runback.core.records import CallbackSecret
from runback.store.database import Database
from runback.store.rows import to_record
from runback.store.schema import callback_secrets


def _secret(row: Row[Any]) -> CallbackSecret:
    return to_record(CallbackSecret, row)


class SecretStore:
    """The ``callback_secrets`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, secret: CallbackSecret) -> CallbackSecret:
        """Commit a new secret; it becomes current when its organization has none."""
        async with self._db.write() as conn:
            has_current = (
                await conn.execute(
                    select(callback_secrets.c.id).where(
                        callback_secrets.c.organization_id == secret.organization_id,
                        callback_secrets.c.is_current,
                    )
                )
            ).first() is not None
            row = (
                await conn.execute(
                    callback_secrets.insert()
                    .values(
                        id=secret.id,
                        organization_id=secret.organization_id,
                        label=secret.label,
                        secret=secret.secret,
                        key_prefix=secret.key_prefix,
                        is_current=not has_current,
                        created_at=secret.created_at,
                        updated_at=secret.updated_at,
                    )
                    .returning(*callback_secrets.c)
                )
            ).one()
        return _secret(row)

    async def signing(self, organization_ids: Iterable[UUID]) -> dict[UUID, list[CallbackSecret]]:
        """Each organization's active secrets, the current one first."""
        ids = set(organization_ids)
        found: dict[UUID, list[CallbackSecret]] = {org: [] for org in ids}
        if not ids:
            return found
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(callback_secrets)
                .where(
                    callback_secrets.c.organization_id.in_(ids),
                    callback_secrets.c.disabled_at.is_(None),
                )
                .order_by(callback_secrets.c.is_current.desc(), callback_secrets.c.created_at)
            )
            for row in rows:
                secret = _secret(row)
                found[secret.organization_id].append(secret)
        return found
