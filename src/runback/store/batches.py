"""Batches: insert one with its items, read them, count their items' ends.

An item's end counts into its batch inside the transaction that ends it
(``runback.store.outbox``); the transaction that ends the last item also ends the batch and,
when it has a ``callback_url``, marks its callback due. The callback's delivery is committed
with that mark cleared, in one guarded update (``OutboxStore.commit_batch_callback``):
whoever gets there first (the ender of the last item, or the executor's sweep after a
crash) commits it, and nobody twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, case, exists, func, select, tuple_, update

from runback.core.batches import Tally, ended_status
from runback.core.records import Batch, Run
from runback.core.states import BatchStatus, RunStatus
from runback.store.database import Database, retrying_conflicts
from runback.store.idempotency import Idempotency, keyed_row
from runback.store.rows import to_record
from runback.store.runs import insert_runs, run_record, run_row
from runback.store.schema import batches, runs
from runback.store.sql import Connection, Row, prepared

_INSERT = prepared(batches.insert())
_GET = prepared(select(batches).where(batches.c.id == bindparam("b_id")))

_total = batches.c.items_total
_now = bindparam("b_now", type_=batches.c.updated_at.type)
_done_after = (
    batches.c.items_succeeded
    + bindparam("b_succeeded")
    + batches.c.items_failed
    + bindparam("b_failed")
    + batches.c.items_cancelled
    + bindparam("b_cancelled")
)
_COUNT = prepared(
    update(batches)
    .where(batches.c.id == bindparam("b_id"))
    .values(
        items_succeeded=batches.c.items_succeeded + bindparam("b_succeeded"),
        items_failed=batches.c.items_failed + bindparam("b_failed"),
        items_cancelled=batches.c.items_cancelled + bindparam("b_cancelled"),
        updated_at=_now,
        # The last item's end ends the batch and, if it has somewhere to go, owes its
        # callback: both in this transaction, so it happens exactly once.
        completed_at=case((_done_after >= _total, _now), else_=None),
        callback_due=and_(_done_after >= _total, batches.c.callback_url.is_not(None)),
    )
    .returning(*batches.c)
)
_END = prepared(
    update(batches)
    .where(batches.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        # Its last item's end, by the items' own clocks: an item that ended earlier but
        # committed later (another process) does not make the batch end before it.
        completed_at=(
            select(func.max(runs.c.completed_at))
            .where(runs.c.batch_id == bindparam("b_id"))
            .scalar_subquery()
        ),
    )
)
CALLBACK_COMMITTED = prepared(
    update(batches)
    .where(batches.c.id == bindparam("b_id"), batches.c.callback_due)
    .values(callback_due=False)
)
"""Clear a batch's owed callback, if still owed: the guard of its one automatic delivery."""


def _batch(row: Row) -> Batch:
    return to_record(Batch, row, status=BatchStatus(row.status))


def batch_row(batch: Batch, idempotency: Idempotency | None = None) -> dict[str, Any]:
    return {
        "id": batch.id,
        "organization_id": batch.organization_id,
        "model": batch.model,
        "status": batch.status.value,
        "metadata": batch.metadata,
        "callback_url": batch.callback_url,
        "idempotency_key": None if idempotency is None else idempotency.key,
        "request_hash": None if idempotency is None else idempotency.request_hash,
        "items_total": batch.items_total,
        "items_succeeded": batch.items_succeeded,
        "items_failed": batch.items_failed,
        "items_cancelled": batch.items_cancelled,
        "callback_due": batch.callback_due,
        "created_at": batch.created_at,
        "completed_at": batch.completed_at,
        "updated_at": batch.updated_at,
    }


async def count_endings(conn: Connection, ended: Sequence[Run], *, now: datetime) -> None:
    """Count ``ended`` runs (just ended, in ``conn``'s transaction) into their batches, and
    end each batch whose last item this was."""
    tallies: dict[UUID, Tally] = {}
    for run in ended:
        if run.batch_id is not None:
            tallies[run.batch_id] = tallies.get(run.batch_id, Tally()) + Tally.of(run.status)
    for batch_id, tally in tallies.items():
        [row] = await conn.execute(
            _COUNT,
            {
                "b_id": batch_id,
                "b_succeeded": tally.succeeded,
                "b_failed": tally.failed,
                "b_cancelled": tally.cancelled,
                "b_now": now,
            },
        )
        if row.completed_at is not None:
            status = ended_status(row.items_succeeded, row.items_failed, row.items_cancelled)
            await conn.execute(_END, {"b_id": batch_id, "b_status": status.value})


@dataclass(frozen=True, slots=True)
class Created:
    """A batch as stored, and whether this request made it (else it is a replay)."""

    batch: Batch
    created: bool


class BatchStore:
    """The ``batches`` table, and its items in ``runs``."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert(
        self, batch: Batch, items: Sequence[Run], *, idempotency: Idempotency | None = None
    ) -> Created:
        """Commit a batch and its items together; with ``idempotency``, answer the batch
        made earlier with the same key instead (``IdempotencyKeyReusedError`` if another
        request made it). Writes are serialised: concurrent requests with one key make one
        batch."""

        async def attempt() -> Created:
            async with self._db.write() as conn:
                if idempotency is not None:
                    earlier = await keyed_row(
                        conn, batches, batch.organization_id, idempotency, noun="batch"
                    )
                    if earlier is not None:
                        return Created(_batch(earlier), created=False)
                await conn.execute(_INSERT, [batch_row(batch, idempotency)])
                await insert_runs(conn, [run_row(item) for item in items])
            return Created(batch, created=True)

        return await retrying_conflicts(attempt, constraints=("ux_batches_idempotency",))

    async def get(self, batch_id: UUID, *, organization_id: UUID | None = None) -> Batch | None:
        """One batch; with ``organization_id``, only if it belongs to that organization."""
        async with self._db.read() as conn:
            row = (await conn.execute(_GET, {"b_id": batch_id})).first()
        if row is None or (organization_id is not None and row.organization_id != organization_id):
            return None
        return _batch(row)

    async def page(
        self, organization_id: UUID, *, after: tuple[datetime, UUID] | None, limit: int
    ) -> tuple[list[Batch], tuple[datetime, UUID] | None]:
        """Batches newest first, after the ``(created_at, id)`` position ``after``; answers a
        page and the position of its last batch when more follow."""
        query = select(batches).where(batches.c.organization_id == organization_id)
        if after is not None:
            query = query.where(tuple_(batches.c.created_at, batches.c.id) < tuple_(*after))
        query = query.order_by(batches.c.created_at.desc(), batches.c.id.desc()).limit(limit + 1)
        async with self._db.read() as conn:
            found = [_batch(row) for row in await conn.execute(query)]
        if len(found) <= limit:
            return found, None
        last = found[limit - 1]
        return found[:limit], (last.created_at, last.id)

    async def started(self, batch_id: UUID) -> bool:
        """Whether any of the batch's items has left ``queued``."""
        query = select(
            exists()
            .where(runs.c.batch_id == batch_id, runs.c.status != RunStatus.QUEUED.value)
            .label("started")
        )
        async with self._db.read() as conn:
            return bool((await conn.execute(query)).scalar())

    async def items(
        self, batch_id: UUID, *, after: int | None = None, limit: int | None = None
    ) -> list[Run]:
        """The batch's items in order, after sequence index ``after``, ``limit`` of them."""
        query = select(runs).where(runs.c.batch_id == batch_id)
        if after is not None:
            query = query.where(runs.c.sequence_index > after)
        query = query.order_by(runs.c.sequence_index)
        if limit is not None:
            query = query.limit(limit)
        async with self._db.read() as conn:
            return [run_record(row) for row in await conn.execute(query)]

    async def callbacks_due(self, *, before: datetime, limit: int = 100) -> list[Batch]:
        """Batches whose callback is owed since before ``before`` (their ender died)."""
        query = (
            select(batches)
            .where(batches.c.callback_due, batches.c.completed_at < before)
            .order_by(batches.c.completed_at)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [_batch(row) for row in await conn.execute(query)]
