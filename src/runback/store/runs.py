"""Runs: insert, read, claim for execution, hand back, recover."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, select, tuple_, update

from runback.batching import GroupCommit
from runback.core.events import events_column, events_of
from runback.core.records import Run
from runback.core.states import RunStatus
from runback.store.database import Database, retrying_conflicts
from runback.store.idempotency import Idempotency, keyed_row
from runback.store.moves import MAX_SCAN, RUNS, Claim, fitting, transition
from runback.store.rows import to_record
from runback.store.schema import runs
from runback.store.sql import Connection, Row, any_of, prepared


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a list shows; every field set narrows it."""

    statuses: tuple[RunStatus, ...] = ()
    model: str | None = None
    client_ref: str | None = None
    created_after: datetime | None = None
    """Inclusive."""
    created_before: datetime | None = None
    """Exclusive."""


def run_record(row: Row) -> Run:
    """The run a ``runs`` row holds."""
    return to_record(Run, row, status=RunStatus(row.status), events=events_of(row.events))


def run_row(run: Run, idempotency: Idempotency | None = None) -> dict[str, Any]:
    """A run's columns, for an insert of one or many."""
    return {
        "id": run.id,
        "organization_id": run.organization_id,
        "model": run.model,
        "status": run.status.value,
        "input": run.input,
        "output": run.output,
        "metadata": run.metadata,
        "client_ref": run.client_ref,
        "callback_url": run.callback_url,
        "failure_code": run.failure_code,
        "failure_message": run.failure_message,
        "idempotency_key": None if idempotency is None else idempotency.key,
        "request_hash": None if idempotency is None else idempotency.request_hash,
        "batch_id": run.batch_id,
        "execution_count": run.execution_count,
        "output_url_ttl": run.output_url_ttl,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "updated_at": run.updated_at,
        "sequence_index": run.sequence_index,
        "events": events_column(run.events),
        "event_sequence": run.event_sequence,
        "traceparent": run.traceparent,
    }


# Every status a run takes here but its end (``runback.store.outbox``), each named.
_CLAIM = transition(RUNS, RunStatus.QUEUED, RunStatus.DISPATCHING)
"""An executor takes a queued run..."""
_START = transition(RUNS, RunStatus.DISPATCHING, RunStatus.RUNNING)
"""...and starts its model at once."""
_HAND_BACK = transition(RUNS, RunStatus.RUNNING, RunStatus.QUEUED)
"""A stopping executor queues its runs again, as if never started."""
_REQUEUE_UNSTARTED = transition(RUNS, RunStatus.DISPATCHING, RunStatus.QUEUED)
"""Recovery: a dead executor's claimed run whose model never started goes back."""
_REQUEUE_INTERRUPTED = transition(RUNS, RunStatus.RUNNING, RunStatus.QUEUED)
"""Recovery: a dead executor's running run with executions left is queued again."""


_ANY_TIME = datetime(9999, 1, 1, tzinfo=UTC)

# The hot statements: every run goes through them.
_INSERT = prepared(runs.insert())
_BY_ID = prepared(select(runs).where(runs.c.id == bindparam("id")))
_BY_ID_OF = prepared(
    select(runs).where(runs.c.id == bindparam("id"), runs.c.organization_id == bindparam("org"))
)
_QUEUED = prepared(
    select(runs.c.id, runs.c.model)
    .where(
        runs.c.status == RunStatus.QUEUED.value,
        any_of(runs.c.model, "models"),
        runs.c.created_at <= bindparam("before"),
    )
    .order_by(runs.c.created_at)
    .limit(bindparam("scan"))
    .with_for_update(skip_locked=True)
)
_TAKE = _CLAIM.claiming(runs.c.id)
_STARTED = prepared(
    _START.update(
        claim=Claim.held_by(bindparam("worker")),
        where=[any_of(runs.c.id, "ids")],
        started_at=bindparam("now"),
        execution_count=runs.c.execution_count + 1,
    ).returning(*runs.c)
)


async def insert_runs(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert runs (``run_row``) in the caller's transaction."""
    await conn.execute(_INSERT, rows)


class RunStore:
    """The ``runs`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._inserts: GroupCommit[dict[str, Any], None] = GroupCommit(self._insert_many)

    async def insert(self, run: Run, *, idempotency: Idempotency | None = None) -> Run:
        """Commit a new run and answer it; with ``idempotency``, answer instead the earlier
        run made with the same key inside the window (``IdempotencyKeyReusedError`` if that
        one came from another request).

        Without a key, runs submitted together commit together (a group commit: the commit
        rate stops bounding submissions). With one, the check and the insert share one
        write transaction, and writes are serialised, so concurrent requests with one key
        create one run: the later ones replay it.
        """
        if idempotency is None:
            await self._inserts.submit(run_row(run))
            return run

        async def attempt() -> Run:
            async with self._db.write() as conn:
                earlier = await keyed_row(conn, runs, run.organization_id, idempotency, noun="run")
                if earlier is not None:
                    return run_record(earlier)
                await conn.execute(_INSERT, [run_row(run, idempotency)])
            return run

        return await retrying_conflicts(attempt, constraints=("ux_runs_idempotency",))

    async def _insert_many(self, rows: list[dict[str, Any]]) -> None:
        async with self._db.write() as conn:
            await insert_runs(conn, rows)

    async def page(
        self,
        organization_id: UUID,
        *,
        filters: RunFilter,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> tuple[list[Run], tuple[datetime, UUID] | None]:
        """Runs newest first, after the ``(created_at, id)`` position ``after``; answers a
        page and the position of its last run when more follow."""
        query = select(runs).where(runs.c.organization_id == organization_id)
        if filters.statuses:
            query = query.where(runs.c.status.in_([s.value for s in filters.statuses]))
        if filters.model is not None:
            query = query.where(runs.c.model == filters.model)
        if filters.client_ref is not None:
            query = query.where(runs.c.client_ref == filters.client_ref)
        if filters.created_after is not None:
            query = query.where(runs.c.created_at >= filters.created_after)
        if filters.created_before is not None:
            query = query.where(runs.c.created_at < filters.created_before)
        if after is not None:
            query = query.where(tuple_(runs.c.created_at, runs.c.id) < tuple_(*after))
        query = query.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit + 1)
        async with self._db.read() as conn:
            found = [run_record(row) for row in await conn.execute(query)]
        if len(found) <= limit:
            return found, None
        last = found[limit - 1]
        return found[:limit], (last.created_at, last.id)

    async def by_key(self, organization_id: UUID, key: str) -> Run | None:
        """The run an organization created with ``Idempotency-Key`` ``key`` (a front door
        that names its tasks keeps their names so)."""
        query = select(runs).where(
            runs.c.organization_id == organization_id, runs.c.idempotency_key == key
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else run_record(row)

    async def get(self, run_id: UUID, *, organization_id: UUID | None = None) -> Run | None:
        """One run; with ``organization_id``, only if it belongs to that organization."""
        async with self._db.read() as conn:
            if organization_id is None:
                found = await conn.execute(_BY_ID, {"id": run_id})
            else:
                found = await conn.execute(_BY_ID_OF, {"id": run_id, "org": organization_id})
            row = found.first()
        return None if row is None else run_record(row)

    async def claim_queued(
        self,
        *,
        worker: str,
        limit: int,
        now: datetime,
        lease_until: datetime,
        models: Collection[str],
        room: Callable[[str], int] | None = None,
        created_before: datetime = _ANY_TIME,
    ) -> list[Run]:
        """Move up to ``limit`` of the oldest queued runs of ``models`` (those ``worker``
        serves and has room for: it never takes a run it cannot execute) and, with ``room``,
        at most ``room(model)`` of each model, to ``running`` for ``worker``: one
        transaction whatever the models. ``created_before`` limits it to runs submitted
        by then.

        ``dispatching`` is the state in between: claimed, model not yet started. Both steps
        happen in one transaction here because this executor starts every run it claims
        at once; the state exists for executors that will hold claimed runs back.
        """
        scan = limit if room is None else min(limit * 2, MAX_SCAN)
        async with self._db.write() as conn:
            given = {"models": list(models), "scan": scan, "before": created_before}
            found = (await conn.execute(_QUEUED, given)).all()
            chosen = fitting(found, limit=limit, room=room, key=lambda row: row.model)
            if not chosen:
                return []
            taken = {"ids": chosen, "worker": worker, "now": now}
            ids = list((await conn.execute(_TAKE, {**taken, "lease_until": lease_until})).scalars())
            if not ids:
                return []
            rows = await conn.execute(_STARTED, {**taken, "ids": ids})
            return sorted((run_record(row) for row in rows), key=lambda run: run.created_at)

    async def hand_back(self, run_ids: list[UUID], *, worker: str, now: datetime) -> None:
        """Queue again runs whose models ``worker`` stopped at its shutdown, as if never
        started; runs it no longer holds (recovered elsewhere meanwhile) stay as they are."""
        async with self._db.write() as conn:
            await conn.execute(
                _HAND_BACK.update(
                    claim=Claim.held_by(worker),
                    where=[runs.c.id.in_(run_ids)],
                    execution_count=runs.c.execution_count - 1,
                    started_at=None,
                    claimed_by=None,
                    lease_until=None,
                    updated_at=now,
                )
            )

    async def recover(
        self, *, now: datetime, max_executions: int, expired_only: bool = False
    ) -> list[Run]:
        """Hand back claimed runs; answer those to fail as interrupted.

        Every claim after a restart while this process holds the data directory exclusively
        (then no other executor can own one); only claims whose lease has expired otherwise
        (their executor died). Runs that never started go back to the queue; runs whose
        model was running are queued again while they have executions left, and answered
        (still ``running``) for the caller to fail.
        """
        claim = Claim.lapsed(now) if expired_only else Claim.exclusive()
        async with self._db.write() as conn:
            await conn.execute(
                _REQUEUE_UNSTARTED.update(
                    claim=claim, claimed_by=None, lease_until=None, updated_at=now
                )
            )
            await conn.execute(
                _REQUEUE_INTERRUPTED.update(
                    claim=claim,
                    where=[runs.c.execution_count < max_executions],
                    claimed_by=None,
                    lease_until=None,
                    updated_at=now,
                )
            )
            # What is left running there is out of executions: the caller fails it, from
            # this state (the claim of the dead holder) through the outbox.
            rows = await conn.execute(
                select(runs).where(runs.c.status == RunStatus.RUNNING.value, *claim.clauses(runs))
            )
            return [run_record(row) for row in rows]

    async def request_cancel(self, run_id: UUID, *, now: datetime) -> None:
        """Ask whichever executor holds a running run to cancel it."""
        async with self._db.write() as conn:
            await conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.cancel_requested_at.is_(None))
                .values(cancel_requested_at=now)
            )

    async def cancels_requested(self, run_ids: list[UUID]) -> list[UUID]:
        """Which of these runs someone asked to cancel."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(runs.c.id).where(
                    runs.c.id.in_(run_ids), runs.c.cancel_requested_at.is_not(None)
                )
            )
            return list(rows.scalars())

    async def extend_leases(
        self, run_ids: list[UUID], *, worker: str, lease_until: datetime
    ) -> None:
        """Keep ``worker``'s claims of runs it still executes (the executor's heartbeat);
        a claim it lost meanwhile stays lost."""
        async with self._db.write() as conn:
            await conn.execute(
                update(runs)
                .where(
                    runs.c.id.in_(run_ids),
                    runs.c.status == RunStatus.RUNNING.value,
                    *Claim.held_by(worker).clauses(runs),
                )
                .values(lease_until=lease_until)
            )

    async def count_by_status(self) -> dict[RunStatus, int]:
        """How many runs are in each status (for start-up reports and tests)."""
        async with self._db.read() as conn:
            rows = await conn.execute(select(runs.c.status, func.count()).group_by(runs.c.status))
            return {RunStatus(status): count for status, count in rows}
