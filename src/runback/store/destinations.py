"""Destinations' circuit breakers: one row per ``host:port`` that is failing or disabled.

A success deletes the row, so the table holds only the troubled few and reading all of it
each dispatcher round stays cheap.

While a destination's circuit is open its pending deliveries are held out of the due index
(all but one, the probe that half-opens it), released when it recovers or an operator
enables it: otherwise every claim would walk past its whole backlog (a dead receiver with
10,000 waiting callbacks made every round of the dispatcher several milliseconds slower).
A held delivery keeps the time its own ladder would try it (``held_due_at``): the probe
goes no later than the earliest of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import case, delete, func, not_, select, update

from runback.core.destinations import (
    BreakerPolicy,
    Destination,
    Transition,
    after_outcome,
    probe_time,
)
from runback.core.states import DeliveryStatus
from runback.store.database import Database
from runback.store.ordering import waiting_turn
from runback.store.rows import to_record
from runback.store.schema import deliveries, destinations
from runback.store.sql import Connection, Row, any_of, prepared

_ALL = prepared(select(destinations))
_OF_HOSTS = prepared(
    select(destinations).where(any_of(destinations.c.host, "hosts")).with_for_update()
)


def _destination(row: Row) -> Destination:
    return to_record(Destination, row)


async def apply_outcomes(
    conn: Connection,
    outcomes: Iterable[tuple[str, bool]],
    *,
    now: datetime,
    policy: BreakerPolicy,
) -> list[tuple[Destination, Transition]]:
    """Update the breakers of ``(host, succeeded)`` outcomes, inside the caller's
    transaction (rows locked, so concurrent dispatchers take turns); answers transitions."""
    outcomes = list(outcomes)
    hosts = sorted({host for host, _ in outcomes})
    rows = await conn.execute(_OF_HOSTS, {"hosts": hosts})
    known = {row.host: _destination(row) for row in rows}
    current = {host: known.get(host, Destination(host)) for host in hosts}
    transitions: list[tuple[Destination, Transition]] = []
    for host, succeeded in outcomes:
        current[host], transition = after_outcome(
            current[host], succeeded=succeeded, now=now, policy=policy
        )
        if transition is not None:
            transitions.append((current[host], transition))
    for host, destination in current.items():
        before = known.get(host)
        after = await _held_or_released(conn, before, destination, now=now)
        await _save(conn, after, existed=before is not None, now=now)
    return transitions


async def _held_or_released(
    conn: Connection, before: Destination | None, after: Destination, *, now: datetime
) -> Destination:
    """Hold a destination's deliveries when its circuit has just opened (its probe due no
    later than a held delivery's ladder says) or it was disabled; release them when it has
    recovered. Answers the destination as it is to be saved."""
    host = after.host
    if after.disabled_at is not None:
        if before is None or before.disabled_at is None:
            await _hold(conn, host, now=now)
    elif after.open_until is not None and after.open_until > now:
        if before is None or before.open_until != after.open_until:
            at = probe_time(after.open_until, await _hold(conn, host, now=now))
            await _probe(conn, host, at=at)
            return replace(after, open_until=at)
    elif before is not None and after.consecutive_failures == 0 and before.tripped:
        await _release(conn, host, now=now)  # recovered: what waited goes out now
    return after


async def troubled(conn: Connection) -> dict[str, Destination]:
    """Every destination that is failing or disabled, by host, in the caller's transaction."""
    rows = await conn.execute(_ALL)
    return {row.host: _destination(row) for row in rows}


HELD = datetime(9999, 1, 1, tzinfo=UTC)
"""The due time of a troubled destination's held deliveries: not before it recovers (or an
operator enables it)."""


async def _hold(conn: Connection, host: str, *, now: datetime) -> datetime | None:
    """Hold every pending delivery to ``host``, keeping when its own ladder would try it;
    answers the earliest such time still ahead (those passed were covered by the attempt
    that held them, or by an earlier probe)."""
    pending = (
        deliveries.c.destination == host,
        deliveries.c.status == DeliveryStatus.PENDING.value,
    )
    await conn.execute(
        update(deliveries)
        .where(*pending, deliveries.c.next_attempt_at < HELD)
        .values(held_due_at=deliveries.c.next_attempt_at, next_attempt_at=HELD)
    )
    earliest: datetime | None = (
        await conn.execute(
            select(func.min(deliveries.c.held_due_at)).where(
                *pending, deliveries.c.held_due_at > now
            )
        )
    ).scalar()
    return earliest


async def _probe(conn: Connection, host: str, *, at: datetime) -> None:
    """Make one held delivery to ``host`` due ``at``, when its circuit half-opens: the one
    its ladder wants first, else the oldest. A success releases the rest."""
    probe = (
        select(deliveries.c.id)
        .where(
            deliveries.c.destination == host,
            deliveries.c.status == DeliveryStatus.PENDING.value,
            deliveries.c.next_attempt_at == HELD,
            # One waiting its turn could not be claimed: the circuit would never close.
            not_(waiting_turn()),
        )
        .order_by(
            # The one whose ladder time it is; those passed were covered by earlier attempts.
            case((deliveries.c.held_due_at >= at, 0), else_=1),
            deliveries.c.held_due_at,
            deliveries.c.created_at,
            deliveries.c.id,
        )
        .limit(1)
        .scalar_subquery()
    )
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == probe)
        .values(next_attempt_at=at, held_due_at=None)
    )


async def _release(conn: Connection, host: str, *, now: datetime) -> None:
    """Make every delivery waiting for ``host`` due ``now``: it is back (or an operator says
    so), and what waited for it goes out at once, held or scheduled."""
    await conn.execute(
        update(deliveries)
        .where(
            deliveries.c.destination == host,
            deliveries.c.status == DeliveryStatus.PENDING.value,
            deliveries.c.next_attempt_at > now,
            # Those waiting their turn stay parked: it comes when the one before them ends.
            deliveries.c.next_attempt_at <= HELD,
        )
        .values(next_attempt_at=now, held_due_at=None)
    )


async def _save(
    conn: Connection, destination: Destination, *, existed: bool, now: datetime
) -> None:
    healthy = destination.consecutive_failures == 0 and destination.disabled_at is None
    if healthy:
        if existed:
            await conn.execute(delete(destinations).where(destinations.c.host == destination.host))
        return
    values = {
        "consecutive_failures": destination.consecutive_failures,
        "trips": destination.trips,
        "failing_since": destination.failing_since,
        "open_until": destination.open_until,
        "disabled_at": destination.disabled_at,
        "updated_at": now,
    }
    if existed:
        await conn.execute(
            destinations.update().where(destinations.c.host == destination.host).values(**values)
        )
    else:
        await conn.execute(destinations.insert().values(host=destination.host, **values))


class DestinationStore:
    """The ``destinations`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def troubled(self) -> dict[str, Destination]:
        """Every destination that is failing or disabled, by host."""
        async with self._db.read() as conn:
            return await troubled(conn)

    async def enable(self, host: str, *, now: datetime) -> bool:
        """Forget a destination's failures (an operator's decision) and make its pending
        deliveries due now; answers whether it had any failures."""
        async with self._db.write() as conn:
            result = await conn.execute(delete(destinations).where(destinations.c.host == host))
            await _release(conn, host, now=now)
            return result.rowcount == 1

    async def disable(self, host: str, *, now: datetime) -> None:
        """Stop delivering to ``host`` (an operator's decision) until it is enabled: its
        pending deliveries are held, its failures so far kept."""
        async with self._db.write() as conn:
            found = (await conn.execute(_OF_HOSTS, {"hosts": [host]})).first()
            current = Destination(host=host) if found is None else _destination(found)
            disabled = replace(current, disabled_at=current.disabled_at or now)
            await _save(conn, disabled, existed=found is not None, now=now)
            await _hold(conn, host, now=now)
