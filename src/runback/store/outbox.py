"""The outbox's store side: a run's end and its callback delivery, committed together.

``runback.provider.outbox`` decides how a run ends and what its callback says; this module
writes it. A run ends only from where its ender read it (its status, and the worker holding
it), in the same transaction that inserts its delivery: the callback exists exactly when the
terminal state does, and a run two writers try to end (a cancel racing its model's end, a
recovery racing a stalled executor) ends once, with one callback. Redeliveries and
operational callbacks, which end no run, are inserted here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import bindparam

from runback.batching import GroupCommit
from runback.core.records import Delivery, Run, RunEvent, RunResult
from runback.core.states import TERMINAL_RUN_STATUSES, RunStatus
from runback.errors import DeliveryInFlightError
from runback.store.batches import CALLBACK_COMMITTED, count_endings
from runback.store.database import Database
from runback.store.events import ADVANCE, INSERT_EVENT, event_row
from runback.store.moves import RUNS, Refusal, Step, transition
from runback.store.ordering import ORDERED_AT_INSERT, PARKED_AT_INSERT
from runback.store.schema import deliveries, run_results
from runback.store.sql import IntegrityError, prepared

# Who ends a run, from where: a cancel before anyone took it, an executor that claimed it
# but never started its model, and an executor (or a recovery) once the model ran.
_END = (
    transition(RUNS, RunStatus.QUEUED, RunStatus.CANCELED)
    | transition(RUNS, RunStatus.DISPATCHING, {RunStatus.CANCELED, RunStatus.FAILED})
    | transition(RUNS, RunStatus.RUNNING, TERMINAL_RUN_STATUSES)
).per_row(
    output=bindparam("b_output"),
    failure_code=bindparam("b_failure_code"),
    failure_message=bindparam("b_failure_message"),
    completed_at=bindparam("b_completed_at"),
    updated_at=bindparam("b_updated_at"),
    event_sequence=bindparam("b_event_sequence"),
)


_INSERT = prepared(
    deliveries.insert().values(
        {
            column.name: bindparam(column.name, type_=column.type, required=False)
            for column in deliveries.c
            if column.name not in ("ordered", "next_attempt_at")
        }
        # Decided by the database, in the same statement: whether it is ordered, and
        # whether it waits its turn (parked out of the due index).
        | {"ordered": ORDERED_AT_INSERT, "next_attempt_at": PARKED_AT_INSERT}
    )
)
_INSERT_RESULT = prepared(run_results.insert())
_IN_FLIGHT_NAMES = ("_in_flight", "deliveries.run_id", "deliveries.batch_id")
"""How either database names a broken one-in-flight index."""


def delivery_row(delivery: Delivery) -> dict[str, Any]:
    """A new delivery's columns, for an insert of one or many."""
    return {
        "id": delivery.id,
        "organization_id": delivery.organization_id,
        "run_id": delivery.run_id,
        "batch_id": delivery.batch_id,
        "callback_url": delivery.callback_url,
        "webhook_id": delivery.webhook_id,
        "destination": delivery.destination,
        "recovery_id": delivery.recovery_id,
        "payload_bytes": delivery.payload_bytes,
        "is_automatic": delivery.is_automatic,
        "status": delivery.status.value,
        "claimed_by": delivery.claimed_by,
        "attempt_count": delivery.attempt_count,
        "max_attempts": delivery.max_attempts,
        "retry_policy": orjson.dumps(delivery.retry_policy.to_json()).decode(),
        "next_attempt_at": delivery.next_attempt_at,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
        "event_key": delivery.event_key,
        "traceparent": delivery.traceparent,
        # Whether it is ordered: decided by the insert, from ``ordered_callbacks``.
        "o_organization_id": delivery.organization_id,
        "o_callback_url": delivery.callback_url,
        "o_status": delivery.status.value,
    }


def _result_row(result: RunResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "run_id": result.run_id,
        "organization_id": result.organization_id,
        "position": result.position,
        "data": result.data,
        "output_id": result.output_id,
        "created_at": result.created_at,
    }


@dataclass(frozen=True, slots=True)
class _Ending:
    read: Run
    ended: Run
    delivery: Delivery | None
    lease_until: datetime | None
    event: RunEvent | None


def _step(item: _Ending) -> Step[RunStatus]:
    ended = item.ended
    return Step(
        id=ended.id,
        source=item.read.status,
        target=ended.status,
        holder=item.read.claimed_by,
        params={
            "b_output": ended.output,
            "b_failure_code": ended.failure_code,
            "b_failure_message": ended.failure_message,
            "b_completed_at": ended.completed_at,
            "b_updated_at": ended.updated_at,
            "b_event_sequence": ended.event_sequence,
        },
    )


class OutboxStore:
    """Run endings with their callbacks, and deliveries that end no run."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._endings: GroupCommit[_Ending, Refusal | None] = GroupCommit(self._end_many)

    async def end(
        self,
        read: Run,
        ended: Run,
        delivery: Delivery | None,
        *,
        lease_until: datetime | None = None,
        event: RunEvent | None = None,
    ) -> Refusal | None:
        """Commit ``ended`` (the run's terminal state) and its callback ``delivery`` in one
        transaction, if the run is still as its ender ``read`` it: in that status, held by
        that worker. Answers None when it ended, or why it did not (nothing is written
        then). Runs ending together share the transaction (a group commit).

        A ``delivery`` is born ``pending``, or ``delivering`` already claimed (by its
        ``claimed_by``, until ``lease_until``) when a dispatcher of this process takes it
        over at once. A run that asked for events keeps its terminal ``event`` too."""
        return await self._endings.submit(_Ending(read, ended, delivery, lease_until, event))

    async def _end_many(self, items: list[_Ending]) -> list[Refusal | None]:
        async with self._db.write() as conn:
            verdicts = await _END.apply(conn, [_step(item) for item in items])
            made = [
                {**delivery_row(item.delivery), "lease_until": item.lease_until}
                for item, refused in zip(items, verdicts, strict=True)
                if refused is None and item.delivery is not None
            ]
            if made:
                await conn.execute(_INSERT, made)
            events = [
                event_row(item.event)
                for item, refused in zip(items, verdicts, strict=True)
                if refused is None and item.event is not None
            ]
            if events:
                await conn.execute(INSERT_EVENT, events)
            ended = [item.ended for item, refused in zip(items, verdicts, strict=True)
                     if refused is None and item.ended.batch_id is not None]  # fmt: skip
            if ended:
                await count_endings(conn, ended, now=ended[0].updated_at)
        return verdicts

    async def add_result(self, result: RunResult, delivery: Delivery | None) -> None:
        """Commit a result a run sent while it worked, with its callback's ``delivery`` (None
        when the run has no callback URL)."""
        async with self._db.write() as conn:
            await conn.execute(_INSERT_RESULT, [_result_row(result)])
            if delivery is not None:
                await conn.execute(_INSERT, [delivery_row(delivery)])

    async def add_event(self, event: RunEvent, delivery: Delivery | None, *, worker: str) -> bool:
        """Commit an event of a running run that ``worker`` holds, with its callback's
        ``delivery`` (None when the run has no callback URL or did not ask for this kind);
        answers False, writing nothing, when ``worker`` no longer holds the run."""
        async with self._db.write() as conn:
            given = {"b_id": event.run_id, "b_worker": worker, "b_sequence": event.sequence}
            if (await conn.execute(ADVANCE, given)).rowcount == 0:
                return False
            await conn.execute(INSERT_EVENT, [event_row(event)])
            if delivery is not None:
                await conn.execute(_INSERT, [delivery_row(delivery)])
        return True

    async def commit_batch_callback(self, batch_id: UUID, delivery: Delivery) -> bool:
        """Commit the automatic callback ``delivery`` of a batch whose items have all
        ended, if it is still owed; answers whether it was (another writer may have
        committed it first)."""
        async with self._db.write() as conn:
            owed = await conn.execute(CALLBACK_COMMITTED, {"b_id": batch_id})
            if owed.rowcount == 0:
                return False
            await conn.execute(_INSERT, [delivery_row(delivery)])
        return True

    async def add(self, delivery: Delivery) -> None:
        """Commit a delivery that ends no run (a redelivery, an operational callback);
        ``DeliveryInFlightError`` if its run already has one pending or delivering (the
        database's unique index decides)."""
        try:
            async with self._db.write() as conn:
                await conn.execute(_INSERT, [delivery_row(delivery)])
        except IntegrityError as exc:
            # PostgreSQL names the index; SQLite its columns.
            said = str(exc)
            if not any(name in said for name in _IN_FLIGHT_NAMES):
                raise
            subject = f"run {delivery.run_id}" if delivery.run_id else f"batch {delivery.batch_id}"
            raise DeliveryInFlightError(
                f"{subject} already has a delivery of this callback in flight; wait for it to end"
            ) from None
