"""Backlogs: how much work waits, and how late the most overdue of it is, read for metrics.

Each read walks one partial index (queued runs, pending deliveries, pending copies) and
counts at most ``COUNT_CAP`` rows, so a scrape stays cheap however deep the backlog: past
the cap the depth reads as the cap, still unmistakably a backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.sql.elements import ColumnClause

from runback.core.inbox import CopyState
from runback.core.states import DeliveryStatus, RunStatus
from runback.store.database import Database
from runback.store.schema import deliveries, inbox_copies, runs

COUNT_CAP = 100_000
"""The deepest backlog counted exactly."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """Items waiting (up to ``COUNT_CAP``), whether due yet or not, and when the first of
    them is (or was) due."""

    depth: int
    first_due: datetime | None


class BacklogStore:
    """Queued runs, pending deliveries and pending output copies."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def runs(self) -> Backlog:
        """Runs queued for an executor; each is due from its submission."""
        return await self._read(runs.c.created_at, runs.c.status == RunStatus.QUEUED.value)

    async def deliveries(self) -> Backlog:
        """Pending deliveries: due, waiting for a retry, or held by an open circuit."""
        pending = deliveries.c.status == DeliveryStatus.PENDING.value
        return await self._read(deliveries.c.next_attempt_at, pending)

    async def copies(self) -> Backlog:
        """Output copies ``runback receive`` has still to make, due or waiting for a retry."""
        pending = inbox_copies.c.state == CopyState.PENDING.value
        return await self._read(inbox_copies.c.next_attempt_at, pending)

    async def _read(self, due: ColumnClause[datetime], where: ColumnElement[bool]) -> Backlog:
        capped = select(literal(1)).where(where).limit(COUNT_CAP).subquery()
        async with self._db.read() as conn:
            depth = (await conn.execute(select(func.count()).select_from(capped))).scalar()
            first = (await conn.execute(select(func.min(due)).where(where))).scalar()
        return Backlog(int(depth or 0), first)
