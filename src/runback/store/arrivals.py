"""A verified callback into the inbox: its raw receipt, its event (new, or the one that
already has its dedupe key, counted again) and its output copies merged (new paths added,
fresher URLs taken), all in the caller's transaction. The statements here run for every
callback received: each is prepared once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, select, update

from runback.core.expected import END_EVENTS, ExpectedState
from runback.core.ids import new_id
from runback.core.inbox import Copy, CopyState, HandlerState, Receipt
from runback.store.rows import to_record
from runback.store.schema import inbox_copies, inbox_events, inbox_expected, inbox_receipts
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
    sequence: int | None = None
    reconciled: bool = False
    """Built by the reconciler from a polled run, not received."""


@dataclass(frozen=True, slots=True)
class CopyDraft:
    """An output URL found in a callback."""

    path: str
    url: str
    expires_at: datetime
    expected_sha256: str | None


@dataclass(frozen=True, slots=True)
class Arrival:
    """One callback to accept: its receipt, what it says, its output URLs."""

    receipt: Receipt
    draft: EventDraft
    copies: tuple[CopyDraft, ...]


def copy_of(row: Row) -> Copy:
    """A copy's row as its record."""
    return to_record(Copy, row, state=CopyState(row.state))


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
_LATER_OF_RUN = prepared(
    select(inbox_events.c.id)
    .where(
        inbox_events.c.source == bindparam("source"),
        inbox_events.c.run_id == bindparam("run_id"),
        inbox_events.c.sequence > bindparam("sequence"),
    )
    .limit(1)
)
_ARRIVED = prepared(
    update(inbox_expected)
    .where(
        inbox_expected.c.source == bindparam("b_source"),
        inbox_expected.c.run_id == bindparam("b_run_id"),
        inbox_expected.c.state == ExpectedState.WAITING.value,
    )
    .values(
        state=ExpectedState.ARRIVED.value,
        event_id=bindparam("b_event"),
        next_poll_at=None,
        updated_at=bindparam("b_now"),
        settled_at=bindparam("b_now"),
    )
)
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


async def accept_one(conn: Connection, item: Arrival) -> tuple[UUID, bool]:
    """Write one callback in ``conn``'s transaction; answers its event and whether it is a
    duplicate."""
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
        stale = draft.sequence is not None and await _later_came(conn, draft)
        await conn.execute(_NEW_EVENT, {**_new_event(event_id, draft, now), "stale": stale})
        if draft.run_id is not None and draft.event in END_EVENTS and not draft.reconciled:
            given = {"b_source": draft.source, "b_run_id": draft.run_id}
            await conn.execute(_ARRIVED, {**given, "b_event": event_id, "b_now": now})
    await conn.execute(_NEW_RECEIPT, receipt_row(receipt, event_id))
    if item.copies:
        await _merge_copies(conn, event_id, item.copies, now, new=not duplicate)
    return event_id, duplicate


async def _later_came(conn: Connection, draft: EventDraft) -> bool:
    """Whether an event of the same run with a higher sequence is in already."""
    given = {"source": draft.source, "run_id": draft.run_id, "sequence": draft.sequence}
    return (await conn.execute(_LATER_OF_RUN, given)).first() is not None


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
        "sequence": draft.sequence,
        "reconciled": draft.reconciled,
        "receipt_count": 1,
        "handler_state": (HandlerState.PENDING if draft.wants_handler else HandlerState.NONE).value,
        "handler_attempts": 0,
        "handler_next_at": now if draft.wants_handler else None,
        "first_received_at": now,
        "last_received_at": now,
    }


def receipt_row(receipt: Receipt, event_id: UUID | None) -> dict[str, Any]:
    """A receipt's columns; ``event_id`` None for one rejected as an event."""
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
        existing = {row.path: copy_of(row) for row in rows}
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
