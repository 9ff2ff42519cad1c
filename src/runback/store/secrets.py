"""Callback secrets: which sign, and which is current.

A secret is an HMAC secret or an Ed25519 key pair (``type``); each type has its own current
secret, and promoting or disabling one weighs only the secrets of its type. An Ed25519 key's
private half lives in the ``secret`` column, sealed like an HMAC secret; its public half in
``public_key``, plain: it is published.

With master keys, the ``secret`` column holds each secret sealed (``runback.core.sealing``),
bound to its row's id; it is sealed on write and opened on read, so callers only ever see
plain ``CallbackSecret.secret``. Without, secrets are stored plain, as before any key was
given; ``reseal`` seals those, and re-seals old keys' values with the current key.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, bindparam, select, update

from runback.core.records import CallbackSecret, SecretType
from runback.core.sealing import MasterKeys, open_value, sealed_key_id
from runback.errors import ConfigError, SecretDisabledError, SecretInUseError
from runback.store.database import Database, retrying_conflicts
from runback.store.rows import to_record
from runback.store.schema import callback_secrets
from runback.store.sql import Connection, Row, any_of, prepared

_RESEAL = (
    update(callback_secrets)
    .where(
        callback_secrets.c.id == bindparam("b_id"), callback_secrets.c.secret == bindparam("b_was")
    )
    .values(secret=bindparam("b_sealed"))
)


_SIGNING = prepared(
    select(callback_secrets)
    .where(
        any_of(callback_secrets.c.organization_id, "orgs"),
        callback_secrets.c.disabled_at.is_(None),
    )
    .order_by(callback_secrets.c.is_current.desc(), callback_secrets.c.created_at)
)

_PUBLISHED = select(
    callback_secrets.c.id, callback_secrets.c.organization_id, callback_secrets.c.public_key
).where(
    callback_secrets.c.type == SecretType.ED25519.value,
    callback_secrets.c.disabled_at.is_(None),
)


def _context(secret_id: UUID) -> str:
    """What a sealed secret is bound to: its own row."""
    return f"callback_secrets:{secret_id}"


class SecretStore:
    """The ``callback_secrets`` table."""

    def __init__(self, database: Database, master_keys: MasterKeys | None = None) -> None:
        self._db = database
        self._keys = master_keys

    def _seal(self, secret_id: UUID, plain: str) -> str:
        if self._keys is None:
            return plain
        return self._keys.seal(plain, context=_context(secret_id))

    def _secret(self, row: Row) -> CallbackSecret:
        plain = open_value(row.secret, self._keys, context=_context(row.id))
        return to_record(CallbackSecret, row, secret=plain, type=SecretType(row.type))

    async def reseal(self) -> int:
        """Seal every secret with the current master key: plain ones, and those sealed with
        an older key. Answers how many changed. Run at start, so a rotation is: the new key
        first, the old one after it, restart, then drop the old one.

        Every value is opened first, so a secret sealed with a key no longer given stops the
        start with a ``ConfigError`` naming it, rather than failing each delivery later.
        """
        async with self._db.read() as conn:
            rows = list(
                await conn.execute(select(callback_secrets.c.id, callback_secrets.c.secret))
            )
        if self._keys is None:
            sealed = sorted({key for row in rows if (key := sealed_key_id(row.secret))})
            if sealed:
                raise ConfigError(
                    f"callback secrets are sealed with master key {sealed[0]!r} but no master "
                    "key is given: set RUNBACK_MASTER_KEYS"
                )
            return 0
        changes: list[dict[str, object]] = []
        for row in rows:
            plain = open_value(row.secret, self._keys, context=_context(row.id))
            if not self._keys.is_current(row.secret):
                changes.append(
                    {"b_id": row.id, "b_was": row.secret, "b_sealed": self._seal(row.id, plain)}
                )
        if changes:
            # Compare-and-set: a row changed since it was read (another process resealing
            # at the same start) is left as that process wrote it.
            async with self._db.write() as conn:
                await conn.execute(_RESEAL, changes)
        return len(changes)

    async def create(self, secret: CallbackSecret) -> CallbackSecret:
        """Commit a new secret; it becomes current when its organization has none of its
        type."""

        async def attempt() -> CallbackSecret:
            async with self._db.write() as conn:
                has_current = (
                    await conn.execute(
                        select(callback_secrets.c.id).where(
                            callback_secrets.c.organization_id == secret.organization_id,
                            callback_secrets.c.type == secret.type.value,
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
                            secret=self._seal(secret.id, secret.secret),
                            key_prefix=secret.key_prefix,
                            is_current=not has_current,
                            type=secret.type.value,
                            public_key=secret.public_key,
                            created_at=secret.created_at,
                            updated_at=secret.updated_at,
                        )
                        .returning(*callback_secrets.c)
                    )
                ).one()
            return self._secret(row)

        return await retrying_conflicts(attempt, constraints=("ux_callback_secrets_current",))

    async def signing(self, organization_ids: Iterable[UUID]) -> dict[UUID, list[CallbackSecret]]:
        """Each organization's active secrets, the current one first."""
        ids = set(organization_ids)
        if not ids:
            return {}
        async with self._db.read() as conn:
            return await self.signing_in(conn, ids)

    async def signing_in(
        self, conn: Connection, organization_ids: Collection[UUID]
    ) -> dict[UUID, list[CallbackSecret]]:
        """``signing``, inside the caller's transaction."""
        found: dict[UUID, list[CallbackSecret]] = {org: [] for org in organization_ids}
        if not found:
            return found
        rows = await conn.execute(_SIGNING, {"orgs": list(found)})
        for row in rows:
            secret = self._secret(row)
            found[secret.organization_id].append(secret)
        return found

    async def public_keys(self, organization_id: UUID | None = None) -> list[tuple[UUID, str]]:
        """The id and ``whpk_`` public key of every active Ed25519 key (of one organization,
        when given), oldest first. Private keys are not read."""
        query = _PUBLISHED.order_by(callback_secrets.c.created_at, callback_secrets.c.id)
        if organization_id is not None:
            query = query.where(callback_secrets.c.organization_id == organization_id)
        async with self._db.read() as conn:
            rows = await conn.execute(query)
            return [(row.id, row.public_key) for row in rows]

    async def list(self, organization_id: UUID) -> list[CallbackSecret]:
        """An organization's secrets, oldest first, disabled ones included."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(callback_secrets)
                .where(callback_secrets.c.organization_id == organization_id)
                .order_by(callback_secrets.c.created_at, callback_secrets.c.id)
            )
            return [self._secret(row) for row in rows]

    async def get(self, secret_id: UUID, *, organization_id: UUID) -> CallbackSecret | None:
        async with self._db.read() as conn:
            row = (await conn.execute(_one(secret_id, organization_id))).first()
        return None if row is None else self._secret(row)

    async def update(
        self,
        secret_id: UUID,
        *,
        organization_id: UUID,
        now: datetime,
        label: str | None = None,
        promote: bool = False,
    ) -> CallbackSecret | None:
        """Rename a secret, or make it current (demoting the previous one of its type) in
        one step."""
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
                        callback_secrets.c.type == row.type,
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
        return self._secret(row)

    async def disable(
        self, secret_id: UUID, *, organization_id: UUID, now: datetime
    ) -> CallbackSecret | None:
        """Disable a secret for good: it never signs again. The current secret can only be
        disabled when it is the last active one of its type (promote another first)."""
        async with self._db.write() as conn:
            row = (await conn.execute(_one(secret_id, organization_id))).first()
            if row is None:
                return None
            if row.disabled_at is not None:
                return self._secret(row)
            if row.is_current:
                others = await conn.execute(
                    select(callback_secrets.c.id).where(
                        callback_secrets.c.organization_id == organization_id,
                        callback_secrets.c.type == row.type,
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
        return self._secret(row)


def _one(secret_id: UUID, organization_id: UUID) -> Select[Any]:
    return select(callback_secrets).where(
        callback_secrets.c.id == secret_id,
        callback_secrets.c.organization_id == organization_id,
    )
