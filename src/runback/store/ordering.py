"""Ordered delivery: the callback URLs whose callbacks go out one at a time, in the order
they were made, and the rule a claim follows for them.

A delivery is ordered when its organization had its URL in ``ordered_callbacks`` at the
moment it was inserted (``ORDERED_AT_INSERT``, a subquery of the insert itself: no round trip
more); the flag it keeps is what claims go by. An ordered pending delivery is claimable only
when no older ordered delivery (by ``created_at``, then ``id``) of its organization and URL
is still pending or delivering (``waiting_turn``): so the next goes only after the previous
one succeeded or was given up, and a stuck head holds the rest until an operator releases
it (it then fails with ``released``).

Those waiting their turn are also kept out of the due index, as the breaker keeps a dead
destination's backlog (``runback.store.destinations``): otherwise every claim would step
over the whole backlog behind a stuck head. One made while an older one of its URL is in
flight is born parked (``next_attempt_at`` = ``WAITING``, by ``PARKED_AT_INSERT``); when an
ordered delivery ends (delivered, given up, released), the next of its URL is made due in
the same transaction (``promote_next``). Parking only saves work: the claim's rule is what
keeps the order. On PostgreSQL an end and an insert that commit side by side may each miss
the other, leaving the new head parked; the dispatchers' upkeep (``unpark_stranded``) makes
such a head due within a third of a lease.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    TextClause,
    Uuid,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    not_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from runback.core.delivery import FailureReason
from runback.core.records import Delivery, OrderedCallback
from runback.core.states import DeliveryStatus
from runback.errors import ConflictError, NotFoundError
from runback.store.database import Database
from runback.store.moves import DELIVERIES, Claim, transition
from runback.store.rows import delivery_of, to_record
from runback.store.schema import ORDERED_IN_FLIGHT, deliveries, ordered_callbacks
from runback.store.sql import Connection, prepared
from runback.store.types import UtcDateTime

ORDERED_AT_INSERT = exists().where(
    ordered_callbacks.c.organization_id == bindparam("o_organization_id", type_=Uuid),
    ordered_callbacks.c.callback_url == bindparam("o_callback_url", type_=Text),
)
"""Whether a delivery being inserted is ordered: parameters ``o_organization_id`` and
``o_callback_url`` (the row's own)."""

WAITING = datetime(9999, 6, 1, tzinfo=UTC)
"""The due time of an ordered delivery parked behind an older one of its URL: out of the
due index until its turn. After the breaker's ``HELD`` (9999-01-01), so what goes up to
``HELD`` (a breaker's hold, the next due time) leaves parked ones alone."""

_WAITING = literal(WAITING, UtcDateTime)


def _older_in_flight(organization_id: Any, callback_url: Any) -> ColumnElement[bool]:
    older = deliveries.alias("older")
    return exists().where(
        _in_flight_text("older"),
        older.c.organization_id == organization_id,
        older.c.callback_url == callback_url,
    )


def _in_flight_text(alias: str) -> TextClause:
    # Written as the partial index's own predicate, so SQLite sees that the index applies.
    return text(" AND ".join(f"{alias}.{term}" for term in ORDERED_IN_FLIGHT.split(" AND ")))


PARKED_AT_INSERT = case(
    (
        and_(
            bindparam("o_status", type_=Text) == DeliveryStatus.PENDING.value,
            _older_in_flight(
                bindparam("o_organization_id", type_=Uuid),
                bindparam("o_callback_url", type_=Text),
            ),
        ),
        _WAITING,
    ),
    else_=bindparam("next_attempt_at", type_=UtcDateTime, required=False),
)
"""A delivery's ``next_attempt_at`` at its insert: ``WAITING`` when an ordered one of its
URL is in flight (it is then ordered itself: switching off clears the flags in flight),
else its own. Parameters ``o_status``, ``o_organization_id``, ``o_callback_url``."""


def waiting_turn() -> ColumnElement[bool]:
    """True for an ordered delivery that has an older ordered one of its organization and
    URL still in flight: not claimable yet. False at once for an unordered delivery, so
    they pay nothing for it; the check of an ordered one is one probe of the partial index
    ``ix_deliveries_ordered_in_flight``."""
    older = deliveries.alias("older")
    return and_(
        deliveries.c.ordered,
        exists().where(
            _in_flight_text("older"),
            older.c.organization_id == deliveries.c.organization_id,
            older.c.callback_url == deliveries.c.callback_url,
            tuple_(older.c.created_at, older.c.id)
            < tuple_(deliveries.c.created_at, deliveries.c.id),
        ),
    )


_LINE = deliveries.alias("line")
_NEXT_IN_LINE = (
    select(_LINE.c.id)
    .where(
        _in_flight_text("line"),
        _LINE.c.organization_id == bindparam("p_organization_id", type_=Uuid),
        _LINE.c.callback_url == bindparam("p_callback_url", type_=Text),
    )
    .order_by(_LINE.c.created_at, _LINE.c.id)
    .limit(1)
    .scalar_subquery()
)
_PROMOTE = prepared(
    update(deliveries)
    .where(
        deliveries.c.id == _NEXT_IN_LINE,
        deliveries.c.status == DeliveryStatus.PENDING.value,
        deliveries.c.next_attempt_at == _WAITING,
    )
    .values(next_attempt_at=bindparam("p_now"))
)
_STRANDED = prepared(
    update(deliveries)
    .where(
        deliveries.c.status == DeliveryStatus.PENDING.value,
        deliveries.c.next_attempt_at == _WAITING,
        not_(waiting_turn()),
    )
    .values(next_attempt_at=bindparam("p_now"))
)


async def promote_next(conn: Connection, ends: list[tuple[UUID, str]], *, now: datetime) -> None:
    """Make the next ordered delivery of each ``(organization, URL)`` whose ordered
    delivery just ended due ``now``, if it is parked: inside the ending's transaction."""
    if ends:
        await conn.execute(
            _PROMOTE,
            [{"p_organization_id": org, "p_callback_url": url, "p_now": now} for org, url in ends],
        )


_ALL = prepared(select(ordered_callbacks.c.organization_id, ordered_callbacks.c.callback_url))
"""Read whole by each process at most once a second: a few rows per organization that
orders anything."""

_GIVE_UP = transition(DELIVERIES, DeliveryStatus.PENDING, DeliveryStatus.FAILED)
"""An operator releases an ordered URL's stuck head: it ends ``failed``, ``released``."""


def _in_flight(organization_id: UUID, callback_url: str) -> list[ColumnElement[bool] | TextClause]:
    return [
        _in_flight_text("deliveries"),
        deliveries.c.organization_id == organization_id,
        deliveries.c.callback_url == callback_url,
    ]


@dataclass(frozen=True, slots=True)
class OrderedUrl:
    """An ordered callback URL with its head (its oldest ordered delivery in flight, if
    any) and how many ordered deliveries are in flight behind it, head included."""

    ordered: OrderedCallback
    head: Delivery | None
    in_flight: int


class OrderingStore:
    """The ``ordered_callbacks`` table, and the heads of the URLs it names."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def all(self) -> set[tuple[UUID, str]]:
        """Every ordered (organization, URL): what a process caches for its hand-off."""
        async with self._db.read() as conn:
            rows = await conn.execute(_ALL)
            return {(row.organization_id, row.callback_url) for row in rows}

    async def switch_on(
        self, organization_id: UUID, callback_url: str, *, now: datetime
    ) -> tuple[OrderedCallback, bool]:
        """Order the organization's callbacks to ``callback_url`` from now on; answers the
        row and whether it is new (switching on twice changes nothing)."""
        values = {
            "organization_id": organization_id,
            "callback_url": callback_url,
            "created_at": now,
        }
        async with self._db.write() as conn:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            made = await conn.execute(
                insert(ordered_callbacks).values(**values).on_conflict_do_nothing()
            )
            row = (await conn.execute(_one(organization_id, callback_url))).first()
        return to_record(OrderedCallback, row), made.rowcount == 1

    async def switch_off(self, organization_id: UUID, callback_url: str, *, now: datetime) -> bool:
        """Stop ordering callbacks to ``callback_url``, those in flight too (they go out
        side by side from now on); answers whether it was on."""
        async with self._db.write() as conn:
            removed = await conn.execute(
                delete(ordered_callbacks).where(*_url_of(organization_id, callback_url))
            )
            await conn.execute(
                update(deliveries)
                .where(*_in_flight(organization_id, callback_url))
                .values(
                    ordered=False,
                    next_attempt_at=case(
                        (deliveries.c.next_attempt_at == _WAITING, now),
                        else_=deliveries.c.next_attempt_at,
                    ),
                )
            )
        return removed.rowcount == 1

    async def listing(self, organization_id: UUID) -> list[OrderedUrl]:
        """The organization's ordered URLs, each with its head, by URL."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(ordered_callbacks)
                .where(ordered_callbacks.c.organization_id == organization_id)
                .order_by(ordered_callbacks.c.callback_url)
            )
            found = [to_record(OrderedCallback, row) for row in rows]
            return [await _with_head(conn, ordered) for ordered in found]

    async def get(self, organization_id: UUID, callback_url: str) -> OrderedUrl | None:
        """One ordered URL with its head; None when ordering is off for it."""
        async with self._db.read() as conn:
            row = (await conn.execute(_one(organization_id, callback_url))).first()
            if row is None:
                return None
            return await _with_head(conn, to_record(OrderedCallback, row))

    async def release_head(
        self, organization_id: UUID, callback_url: str, *, now: datetime
    ) -> Delivery:
        """Give up the head of an ordered URL (an operator's decision): it ends ``failed``
        with ``released``, and the next one is claimable at once. Only a head waiting for
        its next attempt: one being attempted now is ``ConflictError`` (try again when its
        attempt ends)."""
        async with self._db.write() as conn:
            head = await _head(conn, organization_id, callback_url)
            if head is None:
                raise NotFoundError(
                    f"no ordered callback to {callback_url} is in flight", code="NO_HEAD"
                )
            if head.status is not DeliveryStatus.PENDING:
                raise ConflictError(
                    f"delivery {head.id}, the head, is being attempted now; release it once "
                    "this attempt has ended",
                    code="HEAD_DELIVERING",
                )
            detail = "released by an operator: the ordered callbacks behind it go on"
            await conn.execute(
                _GIVE_UP.update(
                    claim=Claim.unclaimed(),
                    where=[deliveries.c.id == head.id],
                    failure_reason_code=FailureReason.RELEASED.value,
                    failure_detail=detail,
                    next_attempt_at=None,
                    held_due_at=None,
                    completed_at=now,
                    updated_at=now,
                )
            )
            await promote_next(conn, [(organization_id, callback_url)], now=now)
        return _released(head, detail, now)

    async def unpark_stranded(self, *, now: datetime) -> int:
        """Make due every parked ordered delivery whose turn it is (an end and an insert
        that committed side by side on PostgreSQL each missed the other); answers how many."""
        async with self._db.write() as conn:
            return (await conn.execute(_STRANDED, {"p_now": now})).rowcount


def _released(head: Delivery, detail: str, now: datetime) -> Delivery:
    return replace(
        head,
        status=DeliveryStatus.FAILED,
        failure_reason_code=FailureReason.RELEASED.value,
        failure_detail=detail,
        next_attempt_at=None,
        completed_at=now,
        updated_at=now,
    )


async def _head(conn: Connection, organization_id: UUID, callback_url: str) -> Delivery | None:
    row = (
        await conn.execute(
            select(deliveries)
            .where(*_in_flight(organization_id, callback_url))
            .order_by(deliveries.c.created_at, deliveries.c.id)
            .limit(1)
        )
    ).first()
    return None if row is None else delivery_of(row)


async def _with_head(conn: Connection, ordered: OrderedCallback) -> OrderedUrl:
    head = await _head(conn, ordered.organization_id, ordered.callback_url)
    if head is None:
        return OrderedUrl(ordered, None, 0)
    count = (
        await conn.execute(
            select(func.count())
            .select_from(deliveries)
            .where(*_in_flight(ordered.organization_id, ordered.callback_url))
        )
    ).scalar()
    return OrderedUrl(ordered, head, int(count or 0))


def _url_of(organization_id: UUID, callback_url: str) -> tuple[ColumnElement[bool], ...]:
    return (
        ordered_callbacks.c.organization_id == organization_id,
        ordered_callbacks.c.callback_url == callback_url,
    )


def _one(organization_id: UUID, callback_url: str) -> Select[Any]:
    """The ``ordered_callbacks`` row of one organization's URL."""
    return select(ordered_callbacks).where(*_url_of(organization_id, callback_url))
