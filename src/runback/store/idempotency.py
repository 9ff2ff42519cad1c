"""``Idempotency-Key``: a create made again with the same key answers the first one.

Runs and batches keep the key and their request's hash on their own rows; a unique index per
organization makes concurrent creates with one key make one row (the later ones find it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Table, select, update

from runback.errors import IdempotencyKeyReusedError
from runback.store.sql import Connection, Row


@dataclass(frozen=True, slots=True)
class Idempotency:
    """An ``Idempotency-Key`` with its request's hash, replayed for rows created ``since``."""

    key: str
    request_hash: str
    since: datetime


async def keyed_row(
    conn: Connection, table: Table, organization_id: UUID, idempotency: Idempotency, *, noun: str
) -> Row | None:
    """The row ``table`` holds under the key in its window, to be answered again; None when
    there is none (a key whose window has passed is released for a new row);
    ``IdempotencyKeyReusedError`` when the key came with another request."""
    row = (
        await conn.execute(
            select(table).where(
                table.c.organization_id == organization_id,
                table.c.idempotency_key == idempotency.key,
            )
        )
    ).first()
    if row is None:
        return None
    if row.created_at < idempotency.since:
        await conn.execute(update(table).where(table.c.id == row.id).values(idempotency_key=None))
        return None
    if row.request_hash != idempotency.request_hash:
        raise IdempotencyKeyReusedError(
            f"Idempotency-Key {idempotency.key!r} was used for another request "
            f"({noun} {row.id}); use a new key for a new request"
        )
    return row
