"""The inbox of ``runback receive``: events, raw receipts, output copies, handler outcomes.

``accept`` is the whole of a request's write (``runback.store.arrivals``): the receipt, the
event (new, or the existing one of the same dedupe key) and its copies commit in one
transaction before the receiver answers. Writes are serialised, so concurrent duplicates
find the first one's event: one event, one set of copies, one handler run, however many
times a callback arrives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Column, Select, and_, bindparam, exists, func, or_, select, tuple_, update

from runback.batching import GroupCommit
from runback.core.inbox import Copy, CopyState, HandlerState, InboxEvent, Receipt
from runback.store.arrivals import (
    Arrival,
    CopyDraft,
    EventDraft,
    accept_one,
    copy_of,
    receipt_row,
)
from runback.store.database import Database, retrying_conflicts
from runback.store.moves import claimable
from runback.store.rows import to_record
from runback.store.schema import inbox_copies, inbox_events, inbox_receipts
from runback.store.sql import Connection, Prepared, Row, prepared


@dataclass(frozen=True, slots=True)
class InboxFilter:
    """Which events a list shows; every field set narrows it."""

    source: str | None = None
    event: str | None = None
    """The callback's event type, e.g. ``run.completed``."""
    status: str | None = None
    """The status the callback carried, e.g. ``failed``."""
    handler_states: tuple[HandlerState, ...] = ()
    received_after: datetime | None = None
    """Inclusive, on the first arrival."""
    received_before: datetime | None = None
    """Exclusive."""
    troubled: bool = False
    """Only events whose handler failed or retries, or with a copy that failed or is lost."""


def _filtered(query: Select[Any], filters: InboxFilter) -> Select[Any]:
    events = inbox_events.c
    for column, value in (
        (events.source, filters.source),
        (events.event, filters.event),
        (events.status, filters.status),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.handler_states:
        query = query.where(events.handler_state.in_([s.value for s in filters.handler_states]))
    if filters.received_after is not None:
        query = query.where(events.first_received_at >= filters.received_after)
    if filters.received_before is not None:
        query = query.where(events.first_received_at < filters.received_before)
    if filters.troubled:
        copies = inbox_copies.c
        failing_copy = exists().where(
            copies.event_id == events.id,
            or_(
                copies.state == CopyState.LOST.value,
                and_(copies.state != CopyState.COPIED.value, copies.last_error.is_not(None)),
            ),
        )
        query = query.where(
            or_(
                events.handler_state == HandlerState.FAILED.value,
                and_(
                    events.handler_state == HandlerState.PENDING.value,
                    events.handler_error.is_not(None),
                ),
                failing_copy,
            )
        )
    return query


def _event(row: Row) -> InboxEvent:
    return to_record(InboxEvent, row, handler_state=HandlerState(row.handler_state))


def _receipt(row: Row) -> Receipt:
    return to_record(Receipt, row)


_NEXT_COPY = prepared(
    select(inbox_copies.c.next_attempt_at)
    .where(inbox_copies.c.state == CopyState.PENDING.value)
    .order_by(inbox_copies.c.next_attempt_at)
    .limit(1)
)


def _claim_due(
    state: Column[str], due: Column[Any], *, pending: str, claimed: str, **stamps: Any
) -> Prepared:
    """Move up to ``b_limit`` rows of ``state``'s table that are ``pending`` and due by
    ``b_now`` (earliest ``due`` first) to ``claimed``, for ``b_worker`` until ``b_lease``;
    ``stamps``, more columns to set. Copies and handlers queue alike."""
    table = state.table
    taken = claimable(
        select(table.c.id)
        .where(state == pending, due <= bindparam("b_now"))
        .order_by(due)
        .limit(bindparam("b_limit"))
    )
    return prepared(
        update(table)
        .where(table.c.id == taken.c.id, state == pending)
        .values(
            {
                state.key: claimed,
                "claimed_by": bindparam("b_worker"),
                "lease_until": bindparam("b_lease"),
                **stamps,
            }
        )
        .returning(*table.c)
    )


_CLAIM_COPIES = _claim_due(
    inbox_copies.c.state,
    inbox_copies.c.next_attempt_at,
    pending=CopyState.PENDING.value,
    claimed=CopyState.COPYING.value,
    updated_at=bindparam("b_now"),
)
_CLAIM_HANDLERS = _claim_due(
    inbox_events.c.handler_state,
    inbox_events.c.handler_next_at,
    pending=HandlerState.PENDING.value,
    claimed=HandlerState.RUNNING.value,
)


class InboxStore:
    """The ``inbox_events``, ``inbox_receipts`` and ``inbox_copies`` tables."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._accepts: GroupCommit[Arrival, tuple[UUID, bool]] = GroupCommit(self._accept_many)

    async def accept(
        self, receipt: Receipt, draft: EventDraft, copies: Sequence[CopyDraft]
    ) -> tuple[UUID, bool]:
        """Commit a verified callback; answers its event's id and whether it is a duplicate.

        Callbacks arriving together share one transaction (a group commit): on a disk that
        must flush every commit (``synchronous=FULL``, PostgreSQL) the flushes no longer
        bound how many a receiver takes in.
        """
        return await self._accepts.submit(Arrival(receipt, draft, tuple(copies)))

    async def _accept_many(self, items: list[Arrival]) -> list[tuple[UUID, bool]]:
        async def attempt() -> list[tuple[UUID, bool]]:
            async with self._db.write() as conn:
                return [await accept_one(conn, item) for item in items]

        return await retrying_conflicts(attempt, constraints=("ux_inbox_events_dedupe",))

    async def reject(self, receipt: Receipt) -> None:
        """Keep a verified request that is not an event (malformed JSON), for inspection."""
        async with self._db.write() as conn:
            await conn.execute(inbox_receipts.insert().values(**receipt_row(receipt, None)))

    async def claim_copies(
        self, *, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[Copy]:
        """Claim up to ``limit`` pending copies due by ``now``, earliest first."""
        async with self._db.write() as conn:
            rows = await conn.execute(
                _CLAIM_COPIES,
                {"b_now": now, "b_limit": limit, "b_worker": worker, "b_lease": lease_until},
            )
            return [copy_of(row) for row in rows]

    async def finish_copy(self, copy_id: UUID, *, now: datetime, **outcome: Any) -> None:
        """Record a copy attempt's outcome (``state``, ``attempts``, ``next_attempt_at``,
        ``last_error`` and, once copied, ``stored_key``, ``size``, ``sha256``,
        ``content_type``) and release the claim."""
        state = outcome["state"]
        values = {
            **outcome,
            "state": state.value,
            "updated_at": now,
            "claimed_by": None,
            "lease_until": None,
        }
        if state in (CopyState.COPIED, CopyState.LOST):
            values["completed_at"] = now
        async with self._db.write() as conn:
            await conn.execute(
                update(inbox_copies).where(inbox_copies.c.id == copy_id).values(**values)
            )

    async def claim_handlers(
        self, *, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[tuple[InboxEvent, bytes]]:
        """Claim events whose handlers are due, with the body of their latest receipt."""
        async with self._db.write() as conn:
            rows = await conn.execute(
                _CLAIM_HANDLERS,
                {"b_now": now, "b_limit": limit, "b_worker": worker, "b_lease": lease_until},
            )
            events = [_event(row) for row in rows]
            return [(event, await _latest_body(conn, event.id)) for event in events]

    async def finish_handler(
        self,
        event_id: UUID,
        *,
        state: HandlerState,
        attempts: int,
        error: str | None,
        next_at: datetime | None,
    ) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(inbox_events)
                .where(inbox_events.c.id == event_id)
                .values(
                    handler_state=state.value,
                    handler_attempts=attempts,
                    handler_error=error,
                    handler_next_at=next_at,
                    claimed_by=None,
                    lease_until=None,
                )
            )

    async def release_claims(self, *, now: datetime, expired_only: bool = False) -> None:
        """Hand back claims: every one after a restart with the data directory's lock, else
        those whose lease expired (their receiver died)."""
        copies = [inbox_copies.c.lease_until < now] if expired_only else []
        events = [inbox_events.c.lease_until < now] if expired_only else []
        async with self._db.write() as conn:
            await conn.execute(
                update(inbox_copies)
                .where(inbox_copies.c.state == CopyState.COPYING.value, *copies)
                .values(state=CopyState.PENDING.value, claimed_by=None, lease_until=None)
            )
            await conn.execute(
                update(inbox_events)
                .where(inbox_events.c.handler_state == HandlerState.RUNNING.value, *events)
                .values(handler_state=HandlerState.PENDING.value, claimed_by=None, lease_until=None)
            )

    async def next_copy_at(self) -> datetime | None:
        """The earliest time a pending copy is due (the copier sleeps until then; handlers
        are another worker's, and counting them made the copier spin while one was due)."""
        async with self._db.read() as conn:
            due: datetime | None = (await conn.execute(_NEXT_COPY)).scalar()
        return due

    async def page(
        self,
        *,
        source: str | None = None,
        after: tuple[datetime, UUID] | None,
        limit: int,
        filters: InboxFilter = InboxFilter(),
    ) -> tuple[list[InboxEvent], tuple[datetime, UUID] | None]:
        """Events newest first, after the ``(first_received_at, id)`` position ``after``."""
        if source is not None:
            filters = replace(filters, source=source)
        query = _filtered(select(inbox_events), filters)
        if after is not None:
            position = tuple_(inbox_events.c.first_received_at, inbox_events.c.id)
            query = query.where(position < tuple_(*after))
        query = query.order_by(
            inbox_events.c.first_received_at.desc(), inbox_events.c.id.desc()
        ).limit(limit + 1)
        async with self._db.read() as conn:
            found = [_event(row) for row in await conn.execute(query)]
        if len(found) <= limit:
            return found, None
        last = found[limit - 1]
        return found[:limit], (last.first_received_at, last.id)

    async def copy_states(self, event_ids: Sequence[UUID]) -> dict[UUID, dict[CopyState, int]]:
        """How many copies of each event are in each state (events without copies: absent)."""
        if not event_ids:
            return {}
        copies = inbox_copies.c
        query = (
            select(copies.event_id, copies.state, func.count())
            .where(copies.event_id.in_(list(event_ids)))
            .group_by(copies.event_id, copies.state)
        )
        found: dict[UUID, dict[CopyState, int]] = {}
        async with self._db.read() as conn:
            for event_id, state, count in await conn.execute(query):
                found.setdefault(event_id, {})[CopyState(state)] = count
        return found

    async def event(self, event_id: UUID) -> tuple[InboxEvent, list[Receipt], list[Copy]] | None:
        """One event with its receipts (oldest first) and copies."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(inbox_events).where(inbox_events.c.id == event_id))
            ).first()
            if row is None:
                return None
            receipts = await conn.execute(
                select(inbox_receipts)
                .where(inbox_receipts.c.event_id == event_id)
                .order_by(inbox_receipts.c.received_at, inbox_receipts.c.id)
            )
            copies = await conn.execute(
                select(inbox_copies)
                .where(inbox_copies.c.event_id == event_id)
                .order_by(inbox_copies.c.created_at, inbox_copies.c.path)
            )
            return _event(row), [_receipt(r) for r in receipts], [copy_of(c) for c in copies]

    async def replay(self, event_id: UUID, *, now: datetime) -> bool:
        """Run an event's handlers again and retry its lost copies; answers if it exists."""
        async with self._db.write() as conn:
            found = await conn.execute(
                update(inbox_events)
                .where(inbox_events.c.id == event_id)
                .values(
                    handler_state=HandlerState.PENDING.value,
                    handler_attempts=0,
                    handler_error=None,
                    handler_next_at=now,
                )
            )
            await conn.execute(
                update(inbox_copies)
                .where(
                    inbox_copies.c.event_id == event_id,
                    inbox_copies.c.state == CopyState.LOST.value,
                    inbox_copies.c.expires_at > now,
                )
                .values(state=CopyState.PENDING.value, next_attempt_at=now, updated_at=now)
            )
            return found.rowcount == 1


async def _latest_body(conn: Connection, event_id: UUID) -> bytes:
    body: bytes = (
        await conn.execute(
            select(inbox_receipts.c.body)
            .where(inbox_receipts.c.event_id == event_id)
            .order_by(inbox_receipts.c.received_at.desc())
            .limit(1)
        )
    ).scalar_one()
    return body
