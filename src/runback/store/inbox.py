"""The inbox of ``runback receive``: events, raw receipts, output copies, handler outcomes.

``accept`` is the whole of a request's write: the receipt, the event (new, or the existing
one of the same dedupe key) and its copies commit in one transaction before the receiver
answers. Writes are serialised, so concurrent duplicates find the first one's event: one
event, one set of copies, one handler run, however many times a callback arrives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select, tuple_, update

from runback.batching import GroupCommit
from runback.core.ids import new_id
from runback.core.inbox import Copy, CopyState, HandlerState, InboxEvent, Receipt
from runback.store.database import Database, claimable, retrying_conflicts
from runback.store.rows import to_record
from runback.store.schema import inbox_copies, inbox_events, inbox_receipts
from runback.store.sql import Connection, Row, prepared


@dataclass(frozen=True, slots=True)
class EventDraft:
    """What a newly received callback says about itself."""

    source: str
    dedupe_key: str
    event: str | None
    run_id: str | None
    batch_id: str | None
    headshots_id: str | None
    task_uuid: str | None
    status: str | None
    webhook_id: str | None
    wants_handler: bool


@dataclass(frozen=True, slots=True)
class CopyDraft:
    """An output URL found in a callback."""

    path: str
    url: str
    expires_at: datetime
    expected_sha256: str | None


def _event(row: Row) -> InboxEvent:
    return to_record(InboxEvent, row, handler_state=HandlerState(row.handler_state))


def _copy(row: Row) -> Copy:
    return to_record(Copy, row, state=CopyState(row.state))


def _receipt(row: Row) -> Receipt:
    return to_record(Receipt, row)


@dataclass(frozen=True, slots=True)
class _Accept:
    receipt: Receipt
    draft: EventDraft
    copies: tuple[CopyDraft, ...]


# The hot statements: every callback received goes through them.
_EVENT_OF = prepared(
    select(inbox_events.c.id).where(
        inbox_events.c.source == bindparam("source"),
        inbox_events.c.dedupe_key == bindparam("dedupe_key"),
    )
)
_EVENT_AGAIN = prepared(
    update(inbox_events)
    .where(inbox_events.c.id == bindparam("b_id"))
    .values(receipt_count=inbox_events.c.receipt_count + 1, last_received_at=bindparam("b_now"))
)
_NEW_EVENT = prepared(inbox_events.insert())
_NEW_RECEIPT = prepared(inbox_receipts.insert())
_COPIES_OF = prepared(select(inbox_copies).where(inbox_copies.c.event_id == bindparam("event")))
_NEW_COPY = prepared(inbox_copies.insert())
_FRESHER_URL = prepared(
    update(inbox_copies)
    .where(inbox_copies.c.id == bindparam("b_id"))
    .values(
        source_url=bindparam("b_url"),
        expires_at=bindparam("b_expires_at"),
        state=CopyState.PENDING.value,
        next_attempt_at=bindparam("b_now"),
        updated_at=bindparam("b_now"),
    )
)
_NEXT_COPY = prepared(
    select(inbox_copies.c.next_attempt_at)
    .where(inbox_copies.c.state == CopyState.PENDING.value)
    .order_by(inbox_copies.c.next_attempt_at)
    .limit(1)
)


_DUE_COPIES = claimable(
    select(inbox_copies.c.id)
    .where(
        inbox_copies.c.state == CopyState.PENDING.value,
        inbox_copies.c.next_attempt_at <= bindparam("b_now"),
    )
    .order_by(inbox_copies.c.next_attempt_at)
    .limit(bindparam("b_limit"))
)
_CLAIM_COPIES = prepared(
    update(inbox_copies)
    .where(
        inbox_copies.c.id == _DUE_COPIES.c.id,
        inbox_copies.c.state == CopyState.PENDING.value,
    )
    .values(
        state=CopyState.COPYING.value,
        claimed_by=bindparam("b_worker"),
        lease_until=bindparam("b_lease"),
        updated_at=bindparam("b_now"),
    )
    .returning(*inbox_copies.c)
)
_DUE_HANDLERS = claimable(
    select(inbox_events.c.id)
    .where(
        inbox_events.c.handler_state == HandlerState.PENDING.value,
        inbox_events.c.handler_next_at <= bindparam("b_now"),
    )
    .order_by(inbox_events.c.handler_next_at)
    .limit(bindparam("b_limit"))
)
_CLAIM_HANDLERS = prepared(
    update(inbox_events)
    .where(
        inbox_events.c.id == _DUE_HANDLERS.c.id,
        inbox_events.c.handler_state == HandlerState.PENDING.value,
    )
    .values(
        handler_state=HandlerState.RUNNING.value,
        claimed_by=bindparam("b_worker"),
        lease_until=bindparam("b_lease"),
    )
    .returning(*inbox_events.c)
)


async def _accept_one(conn: Connection, item: _Accept) -> tuple[UUID, bool]:
    receipt, draft = item.receipt, item.draft
    now = receipt.received_at
    found = (
        await conn.execute(_EVENT_OF, {"source": draft.source, "dedupe_key": draft.dedupe_key})
    ).first()
    duplicate = found is not None
    event_id = found.id if found is not None else new_id()
    if duplicate:
        await conn.execute(_EVENT_AGAIN, {"b_id": event_id, "b_now": now})
    else:
        await conn.execute(_NEW_EVENT, _new_event(event_id, draft, now))
    await conn.execute(_NEW_RECEIPT, _receipt_row(receipt, event_id))
    if item.copies:
        await _merge_copies(conn, event_id, item.copies, now, new=not duplicate)
    return event_id, duplicate


class InboxStore:
    """The ``inbox_events``, ``inbox_receipts`` and ``inbox_copies`` tables."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._accepts: GroupCommit[_Accept, tuple[UUID, bool]] = GroupCommit(self._accept_many)

    async def accept(
        self, receipt: Receipt, draft: EventDraft, copies: Sequence[CopyDraft]
    ) -> tuple[UUID, bool]:
        """Commit a verified callback; answers its event's id and whether it is a duplicate.

        Callbacks arriving together share one transaction (a group commit): on a disk that
        must flush every commit (``synchronous=FULL``, PostgreSQL) the flushes no longer
        bound how many a receiver takes in.
        """
        return await self._accepts.submit(_Accept(receipt, draft, tuple(copies)))

    async def _accept_many(self, items: list[_Accept]) -> list[tuple[UUID, bool]]:
        async def attempt() -> list[tuple[UUID, bool]]:
            async with self._db.write() as conn:
                return [await _accept_one(conn, item) for item in items]

        return await retrying_conflicts(attempt, constraints=("ux_inbox_events_dedupe",))

    async def reject(self, receipt: Receipt) -> None:
        """Keep a verified request that is not an event (malformed JSON), for inspection."""
        async with self._db.write() as conn:
            await conn.execute(inbox_receipts.insert().values(**_receipt_row(receipt, None)))

    async def claim_copies(
        self, *, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[Copy]:
        """Claim up to ``limit`` pending copies due by ``now``, earliest first."""
        async with self._db.write() as conn:
            rows = await conn.execute(
                _CLAIM_COPIES,
                {"b_now": now, "b_limit": limit, "b_worker": worker, "b_lease": lease_until},
            )
            return [_copy(row) for row in rows]

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
        self, *, source: str | None, after: tuple[datetime, UUID] | None, limit: int
    ) -> tuple[list[InboxEvent], tuple[datetime, UUID] | None]:
        """Events newest first, after the ``(first_received_at, id)`` position ``after``."""
        query = select(inbox_events)
        if source is not None:
            query = query.where(inbox_events.c.source == source)
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
            return _event(row), [_receipt(r) for r in receipts], [_copy(c) for c in copies]

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


def _new_event(event_id: UUID, draft: EventDraft, now: datetime) -> dict[str, Any]:
    return {
        "id": event_id,
        "source": draft.source,
        "dedupe_key": draft.dedupe_key,
        "event": draft.event,
        "run_id": draft.run_id,
        "batch_id": draft.batch_id,
        "headshots_id": draft.headshots_id,
        "task_uuid": draft.task_uuid,
        "status": draft.status,
        "webhook_id": draft.webhook_id,
        "receipt_count": 1,
        "handler_state": (HandlerState.PENDING if draft.wants_handler else HandlerState.NONE).value,
        "handler_attempts": 0,
        "handler_next_at": now if draft.wants_handler else None,
        "first_received_at": now,
        "last_received_at": now,
    }


def _receipt_row(receipt: Receipt, event_id: UUID | None) -> dict[str, Any]:
    return {
        "id": receipt.id,
        "event_id": event_id,
        "source": receipt.source,
        "body": receipt.body,
        "headers": receipt.headers,
        "scheme": receipt.scheme,
        "rejected_reason": receipt.rejected_reason,
        "received_at": receipt.received_at,
    }


async def _merge_copies(
    conn: Connection,
    event_id: UUID,
    copies: Sequence[CopyDraft],
    now: datetime,
    *,
    new: bool,
) -> None:
    """New paths get a copy; a copy not yet made takes a fresher URL (a redelivery's), and
    one lost to expiry is tried again with it. A ``new`` event has no copies yet."""
    existing: dict[str, Copy] = {}
    if not new:
        rows = await conn.execute(_COPIES_OF, {"event": event_id})
        existing = {row.path: _copy(row) for row in rows}
    for draft in copies:
        known = existing.get(draft.path)
        if known is None:
            await conn.execute(_NEW_COPY, _new_copy(event_id, draft, now))
        elif _fresher(known, draft, now):
            await conn.execute(
                _FRESHER_URL,
                {
                    "b_id": known.id,
                    "b_url": draft.url,
                    "b_expires_at": draft.expires_at,
                    "b_now": now,
                },
            )


def _fresher(known: Copy, draft: CopyDraft, now: datetime) -> bool:
    if draft.expires_at <= now:
        return False
    return known.state is CopyState.LOST or (
        known.state is CopyState.PENDING and draft.url != known.source_url
    )


def _new_copy(event_id: UUID, draft: CopyDraft, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(),
        "event_id": event_id,
        "path": draft.path,
        "source_url": draft.url,
        "expires_at": draft.expires_at,
        "expected_sha256": draft.expected_sha256,
        "state": CopyState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


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
