"""A run's events, kept for its stream: read in order after a sequence.

They are written by the outbox's store side (``runback.store.outbox``), each with its
callback's delivery and the run's latest sequence, in one transaction.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select, update

from runback.core.records import RunEvent
from runback.core.states import RunStatus
from runback.store.database import Database
from runback.store.rows import to_record
from runback.store.schema import run_events, runs
from runback.store.sql import prepared

INSERT_EVENT = prepared(run_events.insert())

ADVANCE = prepared(
    update(runs)
    .where(
        runs.c.id == bindparam("b_id"),
        runs.c.status == RunStatus.RUNNING.value,
        runs.c.claimed_by == bindparam("b_worker"),
        runs.c.event_sequence < bindparam("b_sequence"),
    )
    .values(event_sequence=bindparam("b_sequence"))
)
"""A running run's latest sequence moves on, only by the worker that holds it: a worker that
lost its run (stalled past its lease, recovered elsewhere) makes no more of its events."""

_AFTER = prepared(
    select(run_events)
    .where(run_events.c.run_id == bindparam("run_id"), run_events.c.sequence > bindparam("after"))
    .order_by(run_events.c.sequence)
    .limit(bindparam("limit"))
)


def event_row(event: RunEvent) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "organization_id": event.organization_id,
        "sequence": event.sequence,
        "event": event.event,
        "body": event.body,
        "created_at": event.created_at,
    }


class EventStore:
    """The ``run_events`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def after(self, run_id: UUID, sequence: int, *, limit: int = 100) -> list[RunEvent]:
        """Up to ``limit`` of the run's events after ``sequence``, oldest first."""
        async with self._db.read() as conn:
            found = await conn.execute(
                _AFTER, {"run_id": run_id, "after": sequence, "limit": limit}
            )
            return [to_record(RunEvent, row, body=bytes(row.body)) for row in found]

    async def get(self, run_id: UUID, sequence: int) -> RunEvent | None:
        """The run's event ``sequence``, if it made one."""
        found = await self.after(run_id, sequence - 1, limit=1)
        return found[0] if found and found[0].sequence == sequence else None
