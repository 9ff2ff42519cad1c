"""Retention: forgetting old runs and old inbox events (and settled expected runs), a small
batch at a time.

Each call is one short transaction over at most ``limit`` runs (or events) and everything
hanging off them, so pruning never holds locks for long; the caller loops until a batch
comes back short. Rows are deleted before their blobs (answered to the caller): a crash in
between leaves an orphaned file, never a row pointing at a missing one. The blobs of a run
are its output files, its uploads and the full bodies of its thin callbacks
(``runback.core.thin``); a batch's, the full bodies of its thin callbacks.

Work in flight is never touched: a run is pruned only once it is terminal and none of its
deliveries is pending or delivering; an inbox event only once its handler is not pending or
running and none of its copies is pending or copying. On PostgreSQL the chosen rows are
locked ``FOR UPDATE SKIP LOCKED``, so a redelivery inserted for a run at the same moment
either waits for the prune or makes it skip that run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    delete,
    exists,
    func,
    not_,
    select,
    tuple_,
)

from runback.core.inbox import CopyState, HandlerState
from runback.core.states import IN_FLIGHT_DELIVERY_STATUSES, TERMINAL_RUN_STATUSES
from runback.core.thin import OUTPUT_URL, full_body_key
from runback.store.database import Database
from runback.store.schema import (
    batches,
    deliveries,
    delivery_attempts,
    inbox_copies,
    inbox_events,
    inbox_expected,
    inbox_receipts,
    run_events,
    run_outputs,
    run_results,
    runs,
)
from runback.store.sql import Connection

_IN_FLIGHT = sorted(status.value for status in IN_FLIGHT_DELIVERY_STATUSES)
_TERMINAL = sorted(status.value for status in TERMINAL_RUN_STATUSES)
_BUSY_HANDLER = (HandlerState.PENDING.value, HandlerState.RUNNING.value)
_BUSY_COPY = (CopyState.PENDING.value, CopyState.COPYING.value)
# What every thin body holds (its last key); a whole body holding it too only costs the
# deletion of a blob that is not there.
_THIN_MARK = f'"{OUTPUT_URL}":"'.encode()


def _maybe_thin(database: Database) -> ColumnElement[bool]:
    """Whether a delivery's bytes hold the mark: SQLite's LIKE does not read a blob, and
    PostgreSQL has no ``instr``."""
    if database.is_sqlite:
        return func.instr(deliveries.c.payload_bytes, _THIN_MARK) > 0
    return deliveries.c.payload_bytes.op("LIKE")(b"%" + _THIN_MARK + b"%")


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one batch deleted: how many rows it chose, and the blobs left to delete."""

    rows: int
    blob_keys: tuple[str, ...] = ()


class Retention:
    """Deletes what has outlived the retention period, in batches."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def prune_runs(self, before: datetime, *, limit: int) -> Pruned:
        """Delete up to ``limit`` runs that ended before ``before`` and whose deliveries have
        all ended, with their deliveries, attempts, output and result rows; answers how many,
        and the blob keys of their output files and uploads for the caller to delete."""
        in_flight = exists().where(
            deliveries.c.run_id == runs.c.id, deliveries.c.status.in_(_IN_FLIGHT)
        )
        chosen = (
            select(runs.c.id)
            .where(
                runs.c.status.in_(_TERMINAL),
                runs.c.completed_at < before,
                # Implied by the line above; lets the database narrow by creation time.
                runs.c.created_at < before,
                not_(in_flight),
            )
            .limit(limit)
        )
        async with self._db.write() as conn:
            ids = await _locked_ids(conn, chosen, of=runs)
            if not ids:
                return Pruned(0)
            keys = await conn.execute(
                select(run_outputs.c.key).where(run_outputs.c.run_id.in_(ids))
            )
            found = (*keys.scalars(), *await _upload_keys(conn, ids))
            found += await _delete_deliveries(
                conn, deliveries.c.run_id.in_(ids), _maybe_thin(self._db)
            )
            await conn.execute(delete(run_outputs).where(run_outputs.c.run_id.in_(ids)))
            await conn.execute(delete(run_results).where(run_results.c.run_id.in_(ids)))
            await conn.execute(delete(run_events).where(run_events.c.run_id.in_(ids)))
            await conn.execute(delete(runs).where(runs.c.id.in_(ids)))
        return Pruned(len(ids), found)

    async def prune_batches(self, before: datetime, *, limit: int) -> Pruned:
        """Delete up to ``limit`` batches that ended before ``before``, whose callback is
        neither owed nor in flight, with their callbacks' deliveries and attempts (their
        items are runs, pruned as runs)."""
        own = and_(deliveries.c.batch_id == batches.c.id, deliveries.c.run_id.is_(None))
        in_flight = exists().where(own, deliveries.c.status.in_(_IN_FLIGHT))
        chosen = (
            select(batches.c.id)
            .where(
                batches.c.completed_at < before,
                not_(batches.c.callback_due),
                not_(in_flight),
            )
            .limit(limit)
        )
        async with self._db.write() as conn:
            ids = await _locked_ids(conn, chosen, of=batches)
            if not ids:
                return Pruned(0)
            found = await _delete_deliveries(
                conn,
                and_(deliveries.c.batch_id.in_(ids), deliveries.c.run_id.is_(None)),
                _maybe_thin(self._db),
            )
            await conn.execute(delete(batches).where(batches.c.id.in_(ids)))
        return Pruned(len(ids), found)

    async def prune_deliveries(self, before: datetime, *, limit: int) -> Pruned:
        """Delete up to ``limit`` ended deliveries that belong to no run (operational
        callbacks, batches' callbacks) and ended before ``before``, with their attempts."""
        chosen = (
            select(deliveries.c.id)
            .where(
                deliveries.c.run_id.is_(None),
                deliveries.c.status.not_in(_IN_FLIGHT),
                # Last touched when it ended (``completed_at`` may be unset on some paths).
                deliveries.c.updated_at < before,
            )
            .limit(limit)
        )
        async with self._db.write() as conn:
            ids = await _locked_ids(conn, chosen, of=deliveries)
            found: tuple[str, ...] = ()
            if ids:
                which = deliveries.c.id.in_(ids)
                found = await _delete_deliveries(conn, which, _maybe_thin(self._db))
        return Pruned(len(ids), found)

    async def prune_inbox(self, before: datetime, *, limit: int) -> Pruned:
        """Delete up to ``limit`` inbox events last received before ``before`` (none with
        work under way), with their receipts and copies, and as many receipts that never
        became events; answers how many of both, and the blob keys of the copies for the
        caller to delete."""
        busy_copy = exists().where(
            inbox_copies.c.event_id == inbox_events.c.id, inbox_copies.c.state.in_(_BUSY_COPY)
        )
        chosen = (
            select(inbox_events.c.id)
            .where(
                inbox_events.c.last_received_at < before,
                # Implied by the line above; indexed.
                inbox_events.c.first_received_at < before,
                inbox_events.c.handler_state.not_in(_BUSY_HANDLER),
                not_(busy_copy),
            )
            .limit(limit)
        )
        async with self._db.write() as conn:
            ids = await _locked_ids(conn, chosen, of=inbox_events)
            found: tuple[str, ...] = ()
            if ids:
                keys = await conn.execute(
                    select(inbox_copies.c.stored_key).where(
                        inbox_copies.c.event_id.in_(ids), inbox_copies.c.stored_key.is_not(None)
                    )
                )
                found = tuple(keys.scalars())
                await conn.execute(delete(inbox_copies).where(inbox_copies.c.event_id.in_(ids)))
                await conn.execute(delete(inbox_receipts).where(inbox_receipts.c.event_id.in_(ids)))
                await conn.execute(delete(inbox_events).where(inbox_events.c.id.in_(ids)))
            # Receipts kept without an event (verified, but not JSON): as old, as many.
            rejected = select(inbox_receipts.c.id).where(
                inbox_receipts.c.event_id.is_(None), inbox_receipts.c.received_at < before
            )
            stray = await _locked_ids(conn, rejected.limit(limit), of=inbox_receipts)
            if stray:
                await conn.execute(delete(inbox_receipts).where(inbox_receipts.c.id.in_(stray)))
            settled = await _prune_expected(conn, before, limit)
        return Pruned(len(ids) + len(stray) + settled, found)


async def _locked_ids(conn: Connection, chosen: Select[Any], *, of: Table) -> list[UUID]:
    """The ids ``chosen`` selects, locked for this transaction; rows another transaction
    holds are skipped (PostgreSQL: SQLite serialises writes and ignores the clause)."""
    rows = await conn.execute(chosen.with_for_update(skip_locked=True, of=of))
    return list(rows.scalars())


async def _delete_deliveries(
    conn: Connection, which: ColumnElement[bool], thin_mark: ColumnElement[bool]
) -> tuple[str, ...]:
    """Delete the ended deliveries ``which`` selects, attempts first; answers the keys of
    the full bodies of those that were sent thin."""
    ended = and_(which, deliveries.c.status.not_in(_IN_FLIGHT))
    thin = await conn.execute(
        select(deliveries.c.id, deliveries.c.run_id, deliveries.c.batch_id).where(ended, thin_mark)
    )
    keys = tuple(
        full_body_key(delivery_id=delivery_id, run_id=run_id, batch_id=batch_id)
        for delivery_id, run_id, batch_id in thin
    )
    await conn.execute(
        delete(delivery_attempts).where(
            delivery_attempts.c.delivery_id.in_(select(deliveries.c.id).where(ended))
        )
    )
    await conn.execute(delete(deliveries).where(ended))
    return keys


async def _upload_keys(conn: Connection, ids: list[UUID]) -> list[str]:
    """The files uploaded with these runs: a front door that takes files names their keys
    in the run's input (``uploads``), each under ``uploads/<run id>/``."""
    rows = await conn.execute(
        select(runs.c.id, runs.c.input).where(runs.c.id.in_(ids), runs.c.input.like('%"uploads"%'))
    )
    found: list[str] = []
    for run_id, text in rows:
        given = orjson.loads(text).get("uploads")
        if isinstance(given, list):
            mine = f"uploads/{run_id}/"
            found.extend(key for key in given if isinstance(key, str) and key.startswith(mine))
    return found


async def _prune_expected(conn: Connection, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` expectations settled before ``before`` (a waiting one stays,
    whatever its age: the reconciler gives it up in time)."""
    old = (
        select(inbox_expected.c.source, inbox_expected.c.run_id)
        .where(inbox_expected.c.settled_at < before)
        .limit(limit)
    )
    key = tuple_(inbox_expected.c.source, inbox_expected.c.run_id)
    done = await conn.execute(delete(inbox_expected).where(key.in_(old)))
    return int(done.rowcount)
