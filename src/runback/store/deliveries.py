"""Deliveries and their attempts: the outbox the dispatcher drains."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, bindparam, func, not_, select, tuple_, update

from runback.core.delivery import NextStep
from runback.core.destinations import BreakerPolicy, Destination, Transition
from runback.core.records import Attempt, Delivery, Recovery
from runback.core.states import DeliveryStatus
from runback.store.database import Database
from runback.store.destinations import HELD, apply_outcomes
from runback.store.moves import (
    DELIVERIES,
    MAX_SCAN,
    Claim,
    Refusal,
    Step,
    fitting,
    transition,
)
from runback.store.ordering import promote_next, waiting_turn
from runback.store.rows import delivery_of, to_record
from runback.store.schema import callback_secrets, deliveries, delivery_attempts, recoveries
from runback.store.sql import Connection, Row, any_of, prepared


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """One finished attempt and the delivery state it leads to: recorded together."""

    organization_id: UUID
    attempt: Attempt
    step: NextStep
    now: datetime
    destination: str = ""
    ordered_url: str | None = None
    """The delivery's callback URL when it is ordered: its end makes the next one due."""


def _attempt(row: Row) -> Attempt:
    return to_record(Attempt, row)


# Every status a delivery takes after its birth (``runback.store.outbox``), each named.
_CLAIM = transition(DELIVERIES, DeliveryStatus.PENDING, DeliveryStatus.DELIVERING)
"""A dispatcher takes a due delivery to make an attempt."""
_RELEASE = transition(DELIVERIES, DeliveryStatus.DELIVERING, DeliveryStatus.PENDING)
"""An attempt that never finished: its worker stopped, died, or could not send it now."""
_RECORD = transition(
    DELIVERIES,
    DeliveryStatus.DELIVERING,
    {DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED},
).per_row(
    attempt_count=bindparam("b_attempt_count"),
    next_attempt_at=bindparam("b_next_attempt_at"),
    failure_reason_code=bindparam("b_failure_reason_code"),
    failure_detail=bindparam("b_failure_detail"),
    signing_secret_id=bindparam("b_signing_secret_id"),
    completed_at=bindparam("b_completed_at"),
    updated_at=bindparam("b_now"),
)
"""An attempt's outcome, by the worker that made it: retry later, delivered, or given up."""


def _step(outcome: AttemptOutcome, worker: str) -> Step[DeliveryStatus]:
    attempt, step = outcome.attempt, outcome.step
    return Step(
        id=attempt.delivery_id,
        source=DeliveryStatus.DELIVERING,
        target=step.status,
        holder=worker,
        params={
            "b_attempt_count": attempt.attempt_number,
            "b_next_attempt_at": step.next_attempt_at,
            "b_failure_reason_code": step.failure_reason_code,
            "b_failure_detail": step.failure_detail,
            "b_signing_secret_id": attempt.signing_secret_id,
            "b_completed_at": outcome.now if step.status.is_final else None,
            "b_now": outcome.now,
        },
    )


def _attempt_row(outcome: AttemptOutcome, refused: Refusal | None) -> dict[str, Any]:
    attempt = outcome.attempt
    return {
        "id": attempt.id,
        "delivery_id": attempt.delivery_id,
        "organization_id": outcome.organization_id,
        "attempt_number": attempt.attempt_number,
        "status_code": attempt.status_code,
        "response_body": attempt.response_body,
        "response_time_ms": attempt.response_time_ms,
        "error_message": attempt.error_message,
        "failure_reason_code": attempt.failure_reason_code,
        "signing_secret_id": attempt.signing_secret_id,
        "created_at": attempt.created_at,
        "refused_reason": None if refused is None else str(refused),
    }


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a batch of attempts led to: for each, None or why its outcome was refused;
    and the destinations whose circuit changed."""

    refused: list[Refusal | None]
    transitions: list[tuple[Destination, Transition]]


_DUE = prepared(
    select(deliveries.c.id, deliveries.c.destination)
    .where(
        deliveries.c.status == DeliveryStatus.PENDING.value,
        deliveries.c.next_attempt_at <= bindparam("now"),
        not_(any_of(deliveries.c.destination, "skip")),
        not_(waiting_turn()),
    )
    .order_by(deliveries.c.next_attempt_at)
    .limit(bindparam("scan"))
    .with_for_update(skip_locked=True)
)
_TAKE = _CLAIM.claiming(*deliveries.c)
_NEXT_DUE = prepared(
    # The first in the due index's order rather than min(): SQLite gives up the early stop
    # of min() for a WHERE with a correlated subquery, and would read every pending row.
    select(deliveries.c.next_attempt_at)
    .where(
        deliveries.c.status == DeliveryStatus.PENDING.value,
        # Not those parked: their turn comes with a wake-up.
        deliveries.c.next_attempt_at <= HELD,
        not_(any_of(deliveries.c.destination, "skip")),
        # A delivery waiting its turn is not due: counted, the loop would spin.
        not_(waiting_turn()),
    )
    .order_by(deliveries.c.next_attempt_at)
    .limit(1)
)
_ATTEMPT = prepared(delivery_attempts.insert())
_SECRETS_USED = prepared(
    update(callback_secrets)
    .where(any_of(callback_secrets.c.id, "ids"))
    .values(last_used_at=bindparam("now"))
)


async def claim_due(
    conn: Connection,
    *,
    worker: str,
    limit: int,
    now: datetime,
    lease_until: datetime,
    skip_destinations: Collection[str] = (),
    room: Callable[[str], int] | None = None,
) -> list[Delivery]:
    """``DeliveryStore.claim_due`` inside the caller's write transaction.

    Candidates are read first (ids only, locked with ``SKIP LOCKED`` so workers claim side
    by side) and only those that fit are taken: claiming rows just to hand them back would
    cost a full row each, many times over, when one busy destination has a backlog.
    """
    scan = limit if room is None else min(limit * 2, MAX_SCAN)
    found = (
        await conn.execute(_DUE, {"now": now, "skip": list(skip_destinations), "scan": scan})
    ).all()
    chosen = fitting(found, limit=limit, room=room, key=lambda row: row.destination)
    if not chosen:
        return []
    rows = await conn.execute(
        _TAKE, {"ids": chosen, "worker": worker, "lease_until": lease_until, "now": now}
    )
    claimed = [delivery_of(row) for row in rows]
    return sorted(claimed, key=lambda d: (d.next_attempt_at or now, d.id))


async def release(
    conn: Connection, claim: Claim, *, now: datetime, ids: Collection[UUID] | None = None
) -> int:
    """Hand claimed deliveries held as ``claim`` says (of ``ids``, if given) back to
    ``pending``, inside the caller's transaction; answers how many."""
    # The interrupted attempt was never recorded; it is sent again at once, and receivers
    # dedupe on ``webhook-id``.
    which = [] if ids is None else [deliveries.c.id.in_(list(ids))]
    result = await conn.execute(
        _RELEASE.update(claim=claim, where=which, claimed_by=None, lease_until=None, updated_at=now)
    )
    return result.rowcount


async def next_due_at(
    conn: Connection, *, skip_destinations: Collection[str] = ()
) -> datetime | None:
    """``DeliveryStore.next_due_at`` inside the caller's transaction."""
    due: datetime | None = (
        await conn.execute(_NEXT_DUE, {"skip": list(skip_destinations)})
    ).scalar()
    return due


class DeliveryStore:
    """The ``deliveries`` and ``delivery_attempts`` tables."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(
        self, delivery_id: UUID, *, organization_id: UUID
    ) -> tuple[Delivery, list[Attempt]] | None:
        """One delivery with its attempts, if it belongs to the organization."""
        found = await self._with_attempts(
            select(deliveries).where(
                deliveries.c.id == delivery_id, deliveries.c.organization_id == organization_id
            )
        )
        return found[0] if found else None

    async def claim_due(
        self,
        *,
        worker: str,
        limit: int,
        now: datetime,
        lease_until: datetime,
        skip_destinations: Collection[str] = (),
        room: Callable[[str], int] | None = None,
    ) -> list[Delivery]:
        """Claim up to ``limit`` pending deliveries due by ``now``, earliest first, none to
        ``skip_destinations`` (open circuits, disabled, or at their concurrency limit) and,
        with ``room``, at most ``room(destination)`` to each destination."""
        async with self._db.write() as conn:
            return await claim_due(
                conn,
                worker=worker,
                limit=limit,
                now=now,
                lease_until=lease_until,
                skip_destinations=skip_destinations,
                room=room,
            )

    async def record(
        self,
        outcomes: Sequence[AttemptOutcome],
        *,
        worker: str,
        breaker: BreakerPolicy | None = None,
    ) -> Recorded:
        """Commit a batch of ``worker``'s finished attempts, the delivery states they lead
        to, the secrets' ``last_used_at`` and (with ``breaker``) the destinations' circuit
        breakers.

        An outcome counts only while ``worker`` still holds the delivery: one that stalled
        past its lease (and lost the delivery to another worker) keeps its attempt row, with
        the reason it was refused, and changes nothing else.
        """
        if not outcomes:
            return Recorded([], [])
        transitions: list[tuple[Destination, Transition]] = []
        async with self._db.write() as conn:
            refused = await _RECORD.apply(conn, [_step(o, worker) for o in outcomes])
            await conn.execute(
                _ATTEMPT, [_attempt_row(o, r) for o, r in zip(outcomes, refused, strict=True)]
            )
            counted = [o for o, r in zip(outcomes, refused, strict=True) if r is None]
            ends = [(o.organization_id, o.ordered_url) for o in counted
                    if o.ordered_url is not None and o.step.status.is_final]  # fmt: skip
            await promote_next(conn, ends, now=max(o.now for o in outcomes))
            used = {o.attempt.signing_secret_id for o in counted} - {None}
            if used:
                await conn.execute(
                    _SECRETS_USED, {"ids": list(used), "now": max(o.now for o in counted)}
                )
            if breaker is not None and counted:
                transitions = await apply_outcomes(
                    conn,
                    [(o.destination, o.attempt.failure_reason_code is None) for o in counted],
                    now=max(o.now for o in counted),
                    policy=breaker,
                )
        return Recorded(refused, transitions)

    async def next_due_at(self, *, skip_destinations: Collection[str] = ()) -> datetime | None:
        """When the earliest pending delivery is due, none to ``skip_destinations``; None
        when none is pending but those waiting their turn."""
        async with self._db.read() as conn:
            return await next_due_at(conn, skip_destinations=skip_destinations)

    async def hand_back(self, ids: Collection[UUID], *, worker: str, now: datetime) -> int:
        """Hand ``worker``'s claimed deliveries back to ``pending`` (it is stopping, or
        cannot send them now); answers how many it still held."""
        return await self._release(Claim.held_by(worker), now=now, ids=ids)

    async def release_lapsed(self, *, now: datetime) -> int:
        """Take back the deliveries whose lease expired (their worker died or stalled)."""
        return await self._release(Claim.lapsed(now), now=now)

    async def release_all(self, *, now: datetime) -> int:
        """Take back every claimed delivery: only at a start holding the database alone,
        when no worker that claimed one can be alive."""
        return await self._release(Claim.exclusive(), now=now)

    async def _release(
        self, claim: Claim, *, now: datetime, ids: Collection[UUID] | None = None
    ) -> int:
        async with self._db.write() as conn:
            return await release(conn, claim, now=now, ids=ids)

    async def failed_between(
        self, recovery: Recovery, *, after: tuple[datetime, UUID] | None, limit: int = 500
    ) -> tuple[list[Delivery], tuple[datetime, UUID] | None]:
        """A page of the failed deliveries a recovery covers, oldest first."""
        query = select(deliveries).where(
            deliveries.c.organization_id == recovery.organization_id,
            deliveries.c.status == DeliveryStatus.FAILED.value,
            deliveries.c.created_at >= recovery.created_from,
            deliveries.c.created_at < recovery.created_to,
        )
        if recovery.destination is not None:
            query = query.where(deliveries.c.destination == recovery.destination)
        if after is not None:
            query = query.where(tuple_(deliveries.c.created_at, deliveries.c.id) > tuple_(*after))
        query = query.order_by(deliveries.c.created_at, deliveries.c.id).limit(limit)
        async with self._db.read() as conn:
            found = [delivery_of(row) for row in await conn.execute(query)]
        if len(found) < limit:
            return found, None
        return found, (found[-1].created_at, found[-1].id)

    async def latest_failed(self, organization_id: UUID, *, limit: int) -> list[Delivery]:
        """The organization's newest failed deliveries (the dashboard's list of what to
        redeliver or recover)."""
        query = (
            select(deliveries)
            .where(
                deliveries.c.organization_id == organization_id,
                deliveries.c.status == DeliveryStatus.FAILED.value,
            )
            .order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [delivery_of(row) for row in await conn.execute(query)]

    async def save_recovery(self, recovery: Recovery) -> None:
        """Commit a recovery (its counts once it has queued everything)."""
        values = {
            "organization_id": recovery.organization_id,
            "created_from": recovery.created_from,
            "created_to": recovery.created_to,
            "destination": recovery.destination,
            "queued": recovery.queued,
            "skipped": recovery.skipped,
            "created_at": recovery.created_at,
        }
        async with self._db.write() as conn:
            updated = await conn.execute(
                update(recoveries).where(recoveries.c.id == recovery.id).values(**values)
            )
            if updated.rowcount == 0:
                await conn.execute(recoveries.insert().values(id=recovery.id, **values))

    async def recovery(
        self, recovery_id: UUID, *, organization_id: UUID
    ) -> tuple[Recovery, dict[str, int]] | None:
        """A recovery and how many of its deliveries are in each status."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(recoveries).where(
                        recoveries.c.id == recovery_id,
                        recoveries.c.organization_id == organization_id,
                    )
                )
            ).first()
            if row is None:
                return None
            counts = await conn.execute(
                select(deliveries.c.status, func.count())
                .where(deliveries.c.recovery_id == recovery_id)
                .group_by(deliveries.c.status)
            )
            return to_record(Recovery, row), {str(row[0]): int(row[1]) for row in counts}

    async def for_run(
        self, run_id: UUID, *, organization_id: UUID
    ) -> list[tuple[Delivery, list[Attempt]]]:
        """A run's deliveries, oldest first, each with its attempts in order."""
        return await self._with_attempts(
            select(deliveries)
            .where(deliveries.c.run_id == run_id, deliveries.c.organization_id == organization_id)
            .order_by(deliveries.c.created_at, deliveries.c.id)
        )

    async def for_batch(
        self, batch_id: UUID, *, organization_id: UUID
    ) -> list[tuple[Delivery, list[Attempt]]]:
        """A batch's own callback deliveries (not its items'), oldest first, with attempts."""
        return await self._with_attempts(
            select(deliveries)
            .where(
                deliveries.c.batch_id == batch_id,
                deliveries.c.run_id.is_(None),
                deliveries.c.organization_id == organization_id,
            )
            .order_by(deliveries.c.created_at, deliveries.c.id)
        )

    async def _with_attempts(self, query: Select[Any]) -> list[tuple[Delivery, list[Attempt]]]:
        async with self._db.read() as conn:
            found = [delivery_of(row) for row in await conn.execute(query)]
            if not found:
                return []
            attempt_rows = await conn.execute(
                select(delivery_attempts)
                .where(delivery_attempts.c.delivery_id.in_([d.id for d in found]))
                .order_by(delivery_attempts.c.attempt_number)
            )
        attempts: dict[UUID, list[Attempt]] = {d.id: [] for d in found}
        for row in attempt_rows:
            attempt = _attempt(row)
            attempts[attempt.delivery_id].append(attempt)
        return [(d, attempts[d.id]) for d in found]
