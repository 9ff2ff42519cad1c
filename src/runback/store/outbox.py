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

import orjson
from sqlalchemy import bindparam

from runback.batching import GroupCommit
from runback.core.records import Delivery, Run
from runback.core.states import TERMINAL_RUN_STATUSES, RunStatus
from runback.errors import DeliveryInFlightError
from runback.store.database import Database
from runback.store.moves import RUNS, Refusal, Step, transition
from runback.store.schema import deliveries
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
)


_INSERT = prepared(deliveries.insert())


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
    }


@dataclass(frozen=True, slots=True)
class _Ending:
    read: Run
    ended: Run
    delivery: Delivery | None
    lease_until: datetime | None


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
    ) -> Refusal | None:
        """Commit ``ended`` (the run's terminal state) and its callback ``delivery`` in one
        transaction, if the run is still as its ender ``read`` it: in that status, held by
        that worker. Answers None when it ended, or why it did not (nothing is written
        then). Runs ending together share the transaction (a group commit).

        A ``delivery`` is born ``pending``, or ``delivering`` already claimed (by its
        ``claimed_by``, until ``lease_until``) when a dispatcher of this process takes it
        over at once."""
        return await self._endings.submit(_Ending(read, ended, delivery, lease_until))

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
        return verdicts

    async def add(self, delivery: Delivery) -> None:
        """Commit a delivery that ends no run (a redelivery, an operational callback);
        ``DeliveryInFlightError`` if its run already has one pending or delivering (the
        database's unique index decides)."""
        try:
            async with self._db.write() as conn:
                await conn.execute(_INSERT, [delivery_row(delivery)])
        except IntegrityError as exc:
            if "ux_deliveries_in_flight" not in str(exc) and "deliveries.run_id" not in str(exc):
                raise
            raise DeliveryInFlightError(
                f"run {delivery.run_id} already has a delivery in flight; wait for it to end"
            ) from None
