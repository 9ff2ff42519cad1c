"""Callback secrets: which sign, and which is current."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, Select, select, update

from runback.core.records import CallbackSecret
from runback.errors import SecretDisabledError, SecretInUseError
from runback.store.database import Database, retrying_conflicts
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

        async def attempt() -> CallbackSecret:
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

        return await retrying_conflicts(attempt, constraints=("ux_callback_secrets_current",))

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

    async def list(self, organization_id: UUID) -> list[CallbackSecret]:
        """An organization's secrets, oldest first, disabled ones included."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(callback_secrets)
                .where(callback_secrets.c.organization_id == organization_id)
                .order_by(callback_secrets.c.created_at, callback_secrets.c.id)
            )
            return [_secret(row) for row in rows]

    async def get(self, secret_id: UUID, *, organization_id: UUID) -> CallbackSecret | None:
        async with self._db.read() as conn:
            row = (await conn.execute(_one(secret_id, organization_id))).first()
        return None if row is None else _secret(row)

    async def update(
        self,
        secret_id: UUID,
        *,
        organization_id: UUID,
        now: datetime,
        label: str | None = None,
        promote: bool = False,
    ) -> CallbackSecret | None:
        """Rename a secret, or make it current (demoting the previous one) in one step."""
        async with self._db.write() as conn:
            row = (await conn.execute(_one(secret_id, organization_id))).first()
            if row is None:
                return None
            if promote and not row.is_current:
                if row.disabled_at is not None:
                    raise SecretDisabledError(f"secret {secret_id} is disabled and cannot sign")
                await conn.execute(
                    update(callback_secrets)
                    .where(
                        callback_secrets.c.organization_id == organization_id,
                        callback_secrets.c.is_current,
                    )
                    .values(is_current=False, updated_at=now)
                )
            changes: dict[str, object] = {"updated_at": now}
            if label is not None:
                changes["label"] = label
            if promote:
                changes["is_current"] = True
            row = (
                await conn.execute(
                    update(callback_secrets)
                    .where(callback_secrets.c.id == secret_id)
                    .values(**changes)
                    .returning(*callback_secrets.c)
                )
            ).one()
        return _secret(row)

    async def disable(
        self, secret_id: UUID, *, organization_id: UUID, now: datetime
    ) -> CallbackSecret | None:
        """Disable a secret for good: it never signs again. The current secret can only be
        disabled when it is the last active one (promote another first)."""
        async with self._db.write() as conn:
            row = (await conn.execute(_one(secret_id, organization_id))).first()
            if row is None:
                return None
            if row.disabled_at is not None:
                return _secret(row)
            if row.is_current:
                others = await conn.execute(
                    select(callback_secrets.c.id).where(
                        callback_secrets.c.organization_id == organization_id,
                        callback_secrets.c.disabled_at.is_(None),
                        callback_secrets.c.id != secret_id,
                    )
                )
                if others.first() is not None:
                    raise SecretInUseError(
                        f"secret {secret_id} is current; promote another secret first"
                    )
            row = (
                await conn.execute(
                    update(callback_secrets)
                    .where(callback_secrets.c.id == secret_id)
                    .values(disabled_at=now, is_current=False, updated_at=now)
                    .returning(*callback_secrets.c)
                )
            ).one()
        return _secret(row)


def _one(secret_id: UUID, organization_id: UUID) -> Select[Any]:
    return select(callback_secrets).where(
        callback_secrets.c.id == secret_id,
        callback_secrets.c.organization_id == organization_id,
    )
