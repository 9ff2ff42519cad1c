"""Guarded state moves: the one way the store changes a run's or a delivery's status.

A move is declared once, as data: the statuses it leaves, the statuses it reaches, and the
tables of ``runback.core.states`` are checked when it is declared, so a transition they do
not allow never reaches the database. Every write through it matches, in the same
statement, the source status and whoever must hold the claim (a worker, nobody, a lapsed
lease, or anyone while this process holds the database alone). A writer that lost its claim
meanwhile (a worker stalled past its lease, a cancel that raced the run's end) changes
nothing, and is told why.

Two shapes: ``Move.update`` for set-wise moves (claims, releases, recovery), and
``Move.per_row`` for batches where each row has its own source, target and holder (a run's
end, an attempt's outcome), which answer row by row what applied and what was refused.
Which rows a claim takes is chosen here too: ``claimable`` (side by side with other
workers) and ``fitting`` (within each destination's or model's room).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from sqlalchemy import (
    CTE,
    BindParameter,
    ColumnElement,
    Select,
    Table,
    Text,
    Update,
    bindparam,
    select,
    update,
)

from runback.core.states import (
    DELIVERY_TRANSITIONS,
    RUN_TRANSITIONS,
    DeliveryStatus,
    RunStatus,
    check_transition,
)
from runback.errors import InvalidTransitionError
from runback.store.schema import deliveries, runs
from runback.store.sql import Connection, Prepared, any_of, prepared

S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class Machine(Generic[S]):
    """A table whose ``status`` column moves by a transition table."""

    noun: str
    table: Table
    transitions: Mapping[S, frozenset[S]]


RUNS: Machine[RunStatus] = Machine("run", runs, RUN_TRANSITIONS)
DELIVERIES: Machine[DeliveryStatus] = Machine("delivery", deliveries, DELIVERY_TRANSITIONS)


def _current(table: Table) -> Prepared:
    """The status and holder of rows by id, read (on PostgreSQL locked, in one order) before
    a batch of per-row moves."""
    return prepared(
        select(table.c.id, table.c.status, table.c.claimed_by)
        .where(any_of(table.c.id, "m_ids"))
        .order_by(table.c.id)
        .with_for_update()
    )


_CURRENT = {machine.noun: _current(machine.table) for machine in (RUNS, DELIVERIES)}


@dataclass(frozen=True, slots=True)
class Claim:
    """Who must hold the rows for a move to apply to them."""

    kind: Literal["held", "unclaimed", "lapsed", "exclusive"]
    worker: str | BindParameter[str] | None = None
    now: datetime | BindParameter[datetime] | None = None

    @classmethod
    def held_by(cls, worker: str | BindParameter[str]) -> Claim:
        """Rows ``worker`` claimed and still holds (a ``bindparam`` in a prepared
        statement)."""
        return cls("held", worker=worker)

    @classmethod
    def unclaimed(cls) -> Claim:
        """Rows nobody holds (queued runs, pending deliveries)."""
        return cls("unclaimed")

    @classmethod
    def lapsed(cls, now: datetime | BindParameter[datetime]) -> Claim:
        """Rows whose holder's lease ran out before ``now``: it died, or stalled."""
        return cls("lapsed", now=now)

    @classmethod
    def exclusive(cls) -> Claim:
        """Rows held by anyone: only while this process holds the database alone (a start
        with the data directory's lock), when no other holder can be alive."""
        return cls("exclusive")

    def clauses(self, table: Table) -> list[ColumnElement[bool]]:
        match self.kind:
            case "held":
                return [table.c.claimed_by == self.worker]
            case "unclaimed":
                return [table.c.claimed_by.is_(None)]
            case "lapsed":
                return [table.c.lease_until < self.now]
            case "exclusive":
                return []


@dataclass(frozen=True, slots=True)
class Step(Generic[S]):
    """One row's move in a batch: from ``source`` to ``target`` by ``holder`` (None: the row
    is unclaimed), with the statement's other parameters."""

    id: UUID
    source: S
    target: S
    holder: str | None
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A move whose row was not where its writer thought: it changed nothing."""

    noun: str
    id: UUID
    expected: str
    found: str

    def __str__(self) -> str:
        return (
            f"{self.noun} {self.id} is {self.found}, not {self.expected}: another writer "
            "moved it first (its lease expired and it was taken back, or it was cancelled "
            "or recovered); this write was refused"
        )


def _state(status: str | None, holder: str | None) -> str:
    if status is None:
        return "gone"
    return f"{status}, claimed by {holder}" if holder is not None else f"{status}, unclaimed"


@dataclass(frozen=True, slots=True)
class Move(Generic[S]):
    """Declared transitions of ``machine``'s rows: ``(source, target)`` pairs, each one the
    machine's transition table allows (checked when declared)."""

    machine: Machine[S]
    pairs: frozenset[tuple[S, S]]

    def __post_init__(self) -> None:
        for source, target in self.pairs:
            check_transition(self.machine.transitions, source, target, self.machine.noun)

    def __or__(self, other: Move[S]) -> Move[S]:
        return Move(self.machine, self.pairs | other.pairs)

    def update(
        self, *, claim: Claim, where: Iterable[ColumnElement[bool]] = (), **values: Any
    ) -> Update:
        """The ``UPDATE`` that moves every row matching ``where``, in a source status and
        held as ``claim`` says, to the move's one target; ``values`` sets other columns."""
        (target,) = {target for _, target in self.pairs}
        table = self.machine.table
        sources = sorted(source.value for source, _ in self.pairs)
        status = table.c.status == sources[0] if len(sources) == 1 else table.c.status.in_(sources)
        return (
            update(table)
            .where(status, *claim.clauses(table), *where)
            .values(status=target.value, **values)
        )

    def claiming(self, *returning: ColumnElement[Any]) -> Prepared:
        """The prepared claim of unclaimed rows by id, for a worker: parameters ``ids``,
        ``worker``, ``lease_until`` and ``now``; answers the ``returning`` columns."""
        table = self.machine.table
        return prepared(
            self.update(
                claim=Claim.unclaimed(),
                where=[any_of(table.c.id, "ids")],
                claimed_by=bindparam("worker"),
                lease_until=bindparam("lease_until"),
                updated_at=bindparam("now"),
            ).returning(*returning)
        )

    def per_row(self, **values: Any) -> RowMoves[S]:
        """A statement that moves one row by id and ends its claim, for batches of ``Step``;
        ``values`` are the other columns it sets (``bindparam`` for those each step gives)."""
        table = self.machine.table
        statement = (
            update(table)
            .where(
                table.c.id == bindparam("m_id", type_=table.c.id.type),
                table.c.status == bindparam("m_source", type_=Text),
                table.c.claimed_by.is_not_distinct_from(bindparam("m_holder", type_=Text)),
            )
            .values(
                status=bindparam("m_target", type_=Text),
                claimed_by=None,
                lease_until=None,
                **values,
            )
        )
        return RowMoves(self, prepared(statement), _CURRENT[self.machine.noun])


def transition(machine: Machine[S], source: S | Iterable[S], target: S | Iterable[S]) -> Move[S]:
    """Declare a move from each ``source`` to each ``target``: ``InvalidTransitionError``
    at once if the machine's table forbids any pair."""
    sources = [source] if isinstance(source, StrEnum) else list(source)
    targets = [target] if isinstance(target, StrEnum) else list(target)
    return Move(machine, frozenset((s, t) for s in sources for t in targets))


@dataclass(frozen=True, slots=True)
class RowMoves(Generic[S]):
    """A move's per-row statement, compiled once and executed for many steps."""

    move: Move[S]
    statement: Prepared
    current: Prepared
    """Reads (and on PostgreSQL locks, in one order) the rows' status and holder."""

    async def apply(self, conn: Connection, steps: Sequence[Step[S]]) -> list[Refusal | None]:
        """Apply ``steps`` in order inside the caller's transaction; answers for each None
        (applied) or why it was refused. A later step of one row sees the earlier ones."""
        move = self.move
        for step in steps:
            if (step.source, step.target) not in move.pairs:
                check_transition(move.machine.transitions, step.source, step.target, "row")
                raise InvalidTransitionError(
                    f"{move.machine.noun} {step.id}: {step.source} to {step.target} is "
                    "allowed, but not declared by this move"
                )
        if not steps:
            return []
        # Read the rows first to say which steps apply; the statement's own WHERE matches
        # the same again.
        found = await conn.execute(self.current, {"m_ids": list({step.id for step in steps})})
        now: dict[UUID, tuple[str | None, str | None]] = {
            row.id: (row.status, row.claimed_by) for row in found
        }
        verdicts: list[Refusal | None] = []
        applying: list[dict[str, Any]] = []
        for step in steps:
            status, holder = now.get(step.id, (None, None))
            if (status, holder) != (step.source.value, step.holder):
                expected = _state(step.source.value, step.holder)
                noun = move.machine.noun
                verdicts.append(Refusal(noun, step.id, expected, _state(status, holder)))
                continue
            now[step.id] = (step.target.value, None)
            verdicts.append(None)
            applying.append(
                {
                    "m_id": step.id,
                    "m_source": step.source.value,
                    "m_target": step.target.value,
                    "m_holder": step.holder,
                    **step.params,
                }
            )
        if applying:
            await conn.execute(self.statement, applying)
        return verdicts


# -- choosing what to claim -------------------------------------------------------------


def claimable(rows: Select[Any]) -> CTE:
    """The rows a claim takes, as a CTE an ``UPDATE ... FROM`` joins.

    ``FOR UPDATE SKIP LOCKED`` lets workers claim side by side without waiting on each
    other's rows. It must sit in a CTE, which PostgreSQL runs once: in an ``IN (subquery)``
    it may run again for each row and claim past the ``LIMIT``. (SQLite ignores the lock
    clause: its writes are serialised anyway.)
    """
    return rows.with_for_update(skip_locked=True).cte()


MAX_SCAN = 1000
"""The most candidate rows one claim reads (ids and what their room goes by)."""


def fitting(
    candidates: Sequence[Any],
    *,
    limit: int,
    room: Callable[[str], int] | None,
    key: Callable[[Any], str],
) -> list[UUID]:
    """The ids to claim of ``candidates`` (earliest first): up to ``limit``, and at most
    ``room(key(row))`` of each group (a destination, a model) when ``room`` is given."""
    if room is None:
        return [row.id for row in candidates[:limit]]
    chosen: list[UUID] = []
    left: dict[str, int] = {}
    for row in candidates:
        group = key(row)
        if group not in left:
            left[group] = room(group)
        if left[group] > 0:
            left[group] -= 1
            chosen.append(row.id)
            if len(chosen) == limit:
                break
    return chosen
