"""The runs ``runback receive`` expects (``inbox_expected``): made, matched, polled, settled.

An expectation is keyed by ``(source, run_id)``: making it again changes nothing. It is
matched the moment it is made when the run's end is in the inbox already, and by the inbox's
own write (``runback.store.arrivals``) when the callback comes later. The reconciler claims
the waiting ones past their ``next_poll_at`` by pushing it forward by a lease (so a receiver
that dies mid-poll leaves them to be polled again, and receivers sharing PostgreSQL skip each
other's), then records a poll's outcome here. A matching event found at claim time settles
the expectation instead (``arrived``): on PostgreSQL an expectation and its callback written
at once may each miss the other, and this sweep catches them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, exists, insert, select, tuple_, update

from runback.core.expected import END_EVENTS, ExpectedRun, ExpectedState
from runback.store.arrivals import Arrival, accept_one
from runback.store.database import Database, retrying_conflicts
from runback.store.moves import claimable
from runback.store.rows import to_record
from runback.store.schema import inbox_events, inbox_expected
from runback.store.sql import Connection, Row

_PRIMARY = ("inbox_expected_pkey", "inbox_expected.source")
_DEDUPE = ("ux_inbox_events_dedupe",)
_EXPECTED = inbox_expected.c


def _expected(row: Row) -> ExpectedRun:
    return to_record(ExpectedRun, row, state=ExpectedState(row.state))


def _end_event(source: Any, run_id: Any) -> Any:
    """The end events of ``run_id`` in ``source``'s inbox."""
    return select(inbox_events.c.id).where(
        inbox_events.c.source == source,
        inbox_events.c.run_id == run_id,
        inbox_events.c.event.in_(sorted(END_EVENTS)),
    )


class ExpectedStore:
    """The ``inbox_expected`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def expect(
        self, source: str, run_id: str, *, expected_by: datetime, now: datetime
    ) -> tuple[ExpectedRun, bool]:
        """Expect ``run_id``'s end from ``source`` by ``expected_by``; answers the expectation
        and whether it is new (an existing one is answered as it stands)."""

        async def attempt() -> tuple[ExpectedRun, bool]:
            async with self._db.write() as conn:
                found = await _one(conn, source, run_id)
                if found is not None:
                    return found, False
                event = (await conn.execute(_end_event(source, run_id).limit(1))).scalar()
                state = ExpectedState.WAITING if event is None else ExpectedState.ARRIVED
                await conn.execute(
                    insert(inbox_expected).values(
                        source=source,
                        run_id=run_id,
                        state=state.value,
                        expected_by=expected_by,
                        next_poll_at=expected_by if event is None else None,
                        attempts=0,
                        event_id=event,
                        created_at=now,
                        updated_at=now,
                        settled_at=None if event is None else now,
                    )
                )
                made = await _one(conn, source, run_id)
                assert made is not None
                return made, True

        return await retrying_conflicts(attempt, constraints=_PRIMARY)

    async def get(self, source: str, run_id: str) -> ExpectedRun | None:
        async with self._db.read() as conn:
            return await _one(conn, source, run_id)

    async def page(
        self,
        *,
        state: ExpectedState | None,
        source: str | None,
        after: tuple[datetime, str, str] | None,
        limit: int,
    ) -> tuple[list[ExpectedRun], tuple[datetime, str, str] | None]:
        """Expectations newest first, after the ``(created_at, source, run_id)`` ``after``."""
        query = select(inbox_expected)
        if state is not None:
            query = query.where(_EXPECTED.state == state.value)
        if source is not None:
            query = query.where(_EXPECTED.source == source)
        position = tuple_(_EXPECTED.created_at, _EXPECTED.source, _EXPECTED.run_id)
        if after is not None:
            query = query.where(position < tuple_(*after))
        query = query.order_by(
            _EXPECTED.created_at.desc(), _EXPECTED.source.desc(), _EXPECTED.run_id.desc()
        ).limit(limit + 1)
        async with self._db.read() as conn:
            found = [_expected(row) for row in await conn.execute(query)]
        if len(found) <= limit:
            return found, None
        last = found[limit - 1]
        return found[:limit], (last.created_at, last.source, last.run_id)

    async def claim_due(
        self, *, now: datetime, limit: int, lease_until: datetime
    ) -> list[ExpectedRun]:
        """Waiting expectations due by ``now``, earliest first, held until ``lease_until``;
        those whose run's end is in the inbox already are settled ``arrived`` instead."""
        async with self._db.write() as conn:
            await _settle_arrived(conn, now)
            taken = claimable(
                select(_EXPECTED.source, _EXPECTED.run_id)
                .where(
                    _EXPECTED.state == ExpectedState.WAITING.value, _EXPECTED.next_poll_at <= now
                )
                .order_by(_EXPECTED.next_poll_at)
                .limit(limit)
            )
            rows = await conn.execute(
                update(inbox_expected)
                .where(
                    _EXPECTED.source == taken.c.source,
                    _EXPECTED.run_id == taken.c.run_id,
                    _EXPECTED.state == ExpectedState.WAITING.value,
                )
                .values(next_poll_at=lease_until, updated_at=now)
                .returning(*inbox_expected.c)
            )
            return sorted((_expected(row) for row in rows), key=lambda e: e.expected_by)

    async def next_due_at(self) -> datetime | None:
        """When the earliest waiting expectation is to be polled."""
        async with self._db.read() as conn:
            due: datetime | None = (
                await conn.execute(
                    select(_EXPECTED.next_poll_at)
                    .where(_EXPECTED.state == ExpectedState.WAITING.value)
                    .order_by(_EXPECTED.next_poll_at)
                    .limit(1)
                )
            ).scalar()
        return due

    async def polled(
        self,
        source: str,
        run_id: str,
        *,
        attempts: int,
        error: str | None,
        next_poll_at: datetime | None,
        now: datetime,
    ) -> None:
        """Record a poll that did not see the run end: poll again at ``next_poll_at``, or
        (None) give up."""
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_error": error,
            "next_poll_at": next_poll_at,
            "updated_at": now,
        }
        if next_poll_at is None:
            values |= {"state": ExpectedState.GAVE_UP.value, "settled_at": now}
        async with self._db.write() as conn:
            await conn.execute(_waiting(source, run_id).values(values))

    async def reconcile(self, arrival: Arrival, *, attempts: int) -> tuple[UUID, bool]:
        """Record the run's end built from a poll as an inbox event, and settle its
        expectation, in one transaction; answers the event and whether it was a duplicate
        (its callback came meanwhile: the expectation then reads ``arrived``)."""
        draft, now = arrival.draft, arrival.receipt.received_at
        assert draft.run_id is not None

        async def attempt() -> tuple[UUID, bool]:
            async with self._db.write() as conn:
                event_id, duplicate = await accept_one(conn, arrival)
                state = ExpectedState.ARRIVED if duplicate else ExpectedState.RECONCILED
                await conn.execute(
                    _waiting(draft.source, draft.run_id or "").values(
                        state=state.value,
                        event_id=event_id,
                        attempts=attempts,
                        last_error=None,
                        next_poll_at=None,
                        updated_at=now,
                        settled_at=now,
                    )
                )
                return event_id, duplicate

        return await retrying_conflicts(attempt, constraints=_DEDUPE)


def _waiting(source: str, run_id: str) -> Any:
    return update(inbox_expected).where(
        _EXPECTED.source == source,
        _EXPECTED.run_id == run_id,
        _EXPECTED.state == ExpectedState.WAITING.value,
    )


async def _one(conn: Connection, source: str, run_id: str) -> ExpectedRun | None:
    row = (
        await conn.execute(
            select(inbox_expected).where(_EXPECTED.source == source, _EXPECTED.run_id == run_id)
        )
    ).first()
    return None if row is None else _expected(row)


async def _settle_arrived(conn: Connection, now: datetime) -> None:
    arrived = _end_event(_EXPECTED.source, _EXPECTED.run_id)
    await conn.execute(
        update(inbox_expected)
        .where(
            and_(
                _EXPECTED.state == ExpectedState.WAITING.value,
                _EXPECTED.next_poll_at <= now,
                exists(arrived),
            )
        )
        .values(
            state=ExpectedState.ARRIVED.value,
            event_id=arrived.order_by(inbox_events.c.first_received_at).limit(1).scalar_subquery(),
            next_poll_at=None,
            updated_at=now,
            settled_at=now,
        )
    )
