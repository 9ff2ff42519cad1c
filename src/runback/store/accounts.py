"""Organizations, API keys and the memberships that join them.

Every API request names its key. Rather than read the key and its memberships each time, a
process keeps the keys it has seen and reads one counter, ``revisions.api_keys``, which every
revocation bumps in its own transaction: while the counter stands, no key was revoked, and
once it moves (in any process) the next request of every process drops what it kept. So a
revoked key fails from the next request on, everywhere.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from sqlalchemy import bindparam, func, select, update

from runback.core.ids import hash_api_key, new_api_key, new_id, visible_prefix
from runback.core.records import ApiKey, Organization
from runback.errors import NotFoundInStoreError, StoreError
from runback.store.database import Database, retrying_conflicts
from runback.store.rows import to_record
from runback.store.schema import api_keys, memberships, organizations, revisions
from runback.store.sql import Connection, IntegrityError, prepared

DEFAULT_ORGANIZATION = "default"
_KEYS = "api_keys"
_KEYS_REVISION = prepared(select(revisions.c.value).where(revisions.c.name == _KEYS))
_KEY_ORGANIZATIONS = prepared(
    select(memberships.c.organization_id)
    .join(api_keys, api_keys.c.id == memberships.c.api_key_id)
    .where(api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None))
    .order_by(memberships.c.position)
)
_MAX_KEYS_KEPT = 10_000
"""Live keys a process keeps (least recently used go first); unknown keys are never kept."""


class AccountStore:
    """The ``organizations``, ``api_keys`` and ``memberships`` tables."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._keys: OrderedDict[str, list[UUID]] = OrderedDict()
        self._keys_revision = -1

    async def ensure_default_organization(self, *, now: datetime) -> tuple[Organization, bool]:
        """The first organization, created when there is none; answers whether it was."""

        async def attempt() -> tuple[Organization, bool]:
            async with self._db.write() as conn:
                row = (
                    await conn.execute(
                        select(organizations).order_by(
                            organizations.c.created_at, organizations.c.id
                        )
                    )
                ).first()
                if row is not None:
                    return to_record(Organization, row), False
                org = Organization(id=new_id(), name=DEFAULT_ORGANIZATION, created_at=now)
                await conn.execute(
                    organizations.insert().values(id=org.id, name=org.name, created_at=now)
                )
                return org, True

        return await retrying_conflicts(attempt, constraints=("organizations_name_key",))

    async def create_organization(self, name: str, *, now: datetime) -> Organization:
        """Commit a new organization."""
        org = Organization(id=new_id(), name=name, created_at=now)
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    organizations.insert().values(id=org.id, name=org.name, created_at=now)
                )
        except IntegrityError:
            raise StoreError(f"an organization named {name!r} exists already") from None
        return org

    async def create_api_key(
        self, organization_ids: Sequence[UUID], *, now: datetime, label: str | None = None
    ) -> str:
        """Commit a new key, member of the given organizations (the first is its default).

        Answers the token: the only time it exists outside the caller's hands.
        """
        token = new_api_key()
        key_id = new_id()
        organization_ids = list(dict.fromkeys(organization_ids))  # each membership once
        async with self._db.write() as conn:
            await conn.execute(
                api_keys.insert().values(
                    id=key_id,
                    key_hash=hash_api_key(token),
                    key_prefix=visible_prefix(token),
                    label=label,
                    created_at=now,
                )
            )
            await conn.execute(
                memberships.insert(),
                [
                    {
                        "api_key_id": key_id,
                        "organization_id": org,
                        "position": position,
                        "created_at": now,
                    }
                    for position, org in enumerate(organization_ids)
                ],
            )
        return token

    async def organizations_of(self, token: str) -> list[UUID]:
        """The organizations of a live key, its default first; empty for an unknown or
        revoked key."""
        key_hash = hash_api_key(token)
        async with self._db.read() as conn:
            revision: int = (await conn.execute(_KEYS_REVISION)).scalar_one()
            if revision != self._keys_revision:
                if revision < self._keys_revision:
                    # An older snapshot than one a concurrent request saw: trust neither.
                    return await _organizations_of(conn, key_hash)
                self._keys.clear()
                self._keys_revision = revision
            kept = self._keys.get(key_hash)
            if kept is not None:
                self._keys.move_to_end(key_hash)
                return kept
            found = await _organizations_of(conn, key_hash)
        # Kept only if no revocation was seen meanwhile (another request may have moved on).
        if found and revision == self._keys_revision:
            self._keys[key_hash] = found
            if len(self._keys) > _MAX_KEYS_KEPT:
                self._keys.popitem(last=False)
        return found

    async def count_keys(self) -> int:
        async with self._db.read() as conn:
            count: int = (
                await conn.execute(select(func.count()).select_from(api_keys))
            ).scalar_one()
            return count

    async def list_organizations(self) -> list[Organization]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(organizations).order_by(organizations.c.created_at, organizations.c.id)
            )
            return [to_record(Organization, row) for row in rows]

    async def organizations_named(self, names: Sequence[str]) -> list[Organization]:
        """The organizations of these names, in this order; ``NotFoundInStoreError`` if one
        does not exist."""
        async with self._db.read() as conn:
            rows = await conn.execute(select(organizations).where(organizations.c.name.in_(names)))
            found = {row.name: to_record(Organization, row) for row in rows}
        missing = [name for name in names if name not in found]
        if missing:
            raise NotFoundInStoreError(
                f"no organization named {', '.join(missing)}; 'runback orgs list' shows them"
            )
        return [found[name] for name in names]

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first, with its organizations' names."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(api_keys, organizations.c.name)
                .join(memberships, memberships.c.api_key_id == api_keys.c.id)
                .join(organizations, organizations.c.id == memberships.c.organization_id)
                .order_by(api_keys.c.created_at, api_keys.c.id, memberships.c.position)
            )
            keys: dict[UUID, ApiKey] = {}
            for row in rows:
                key = keys.get(row.id) or to_record(ApiKey, row, organizations=())
                keys[row.id] = replace(key, organizations=(*key.organizations, row.name))
        return list(keys.values())

    async def revoke_key(self, key: str, *, now: datetime) -> ApiKey:
        """Revoke a key named by its id or its shown prefix; it answers 401 from now on."""
        key = key.rstrip(".")  # as 'keys list' shows prefixes: rb_XXXXXXXX...
        matches = [k for k in await self.list_keys() if key in (str(k.id), k.key_prefix)]
        if len(matches) != 1:
            problem = "no key" if not matches else "several keys"
            raise NotFoundInStoreError(
                f"{problem} match {key!r}; give an id from 'runback keys list'"
            )
        [found] = matches
        if found.revoked_at is not None:
            return found
        async with self._db.write() as conn:
            await conn.execute(
                update(api_keys).where(api_keys.c.id == found.id).values(revoked_at=now)
            )
            await conn.execute(
                update(revisions)
                .where(revisions.c.name == _KEYS)
                .values(value=revisions.c.value + 1)
            )
        return replace(found, revoked_at=now)


async def _organizations_of(conn: Connection, key_hash: str) -> list[UUID]:
    return list((await conn.execute(_KEY_ORGANIZATIONS, {"key_hash": key_hash})).scalars())
