"""Every status write in ``runback.store`` goes through the guarded moves, and the moves are
exactly the transition tables: a walk over the store's source, then every pair of statuses
against a real database."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, update

import runback.store
from runback.core.delivery import new_delivery
from runback.core.ids import new_id
from runback.core.retry import DEFAULT_RETRY_POLICY
from runback.core.states import DELIVERY_TRANSITIONS, RUN_TRANSITIONS, DeliveryStatus, RunStatus
from runback.errors import InvalidTransitionError
from runback.store import Store
from runback.store.moves import DELIVERIES, RUNS, Claim, Machine, Step, transition
from runback.testing import ManualClock
from support.factories import queued_run

STORE = Path(runback.store.__file__).parent
GUARDED_TABLES = {"runs", "deliveries"}
_RAW_STATUS_WRITE = re.compile(r"update\s+(runs|deliveries)\b.*\bset\b.*\bstatus\b", re.I | re.S)


def _root_update(node: ast.expr) -> str | None:
    """The table a ``update(table)...`` or ``table.update()...`` chain updates, if any."""
    while True:
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "update" and node.args:
                target = node.args[0]
                return target.id if isinstance(target, ast.Name) else "?"
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "update"
                and isinstance(func.value, ast.Name)
            ):
                return func.value.id
            node = func
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            return None


def bypasses(source: str) -> list[str]:
    """The status writes in ``source`` that do not go through ``runback.store.moves``:
    ``.values(status=...)`` (or a ``**`` splat, which could hide one) on an update of a
    guarded table, and raw SQL updating a guarded table's status."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _RAW_STATUS_WRITE.search(node.value)
        ):
            found.append(f"line {node.lineno}: raw SQL sets a status")
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "values" or _root_update(node.func.value) not in GUARDED_TABLES:
            continue
        for keyword in node.keywords:
            if keyword.arg in (None, "status"):
                found.append(f"line {node.lineno}: .values({keyword.arg or '**'}=...)")
        for arg in node.args:
            if isinstance(arg, ast.Dict) and any(
                isinstance(key, ast.Constant) and key.value == "status" for key in arg.keys
            ):
                found.append(f"line {node.lineno}: .values({{'status': ...}})")
    return found


def test_no_module_of_the_store_writes_a_status_but_through_the_moves() -> None:
    modules = [path for path in STORE.rglob("*.py") if "migrations" not in path.parts]
    assert len(modules) > 10  # the walk found the store

    found = {
        str(path.relative_to(STORE)): hits
        for path in modules
        if path.name != "moves.py" and (hits := bypasses(path.read_text()))
    }

    assert found == {}


@pytest.mark.parametrize(
    "source",
    [
        "update(runs).where(runs.c.id == 1).values(status='failed')",
        "runs.update().values(status='failed')",
        "update(deliveries).where(x).values(**values)",
        "update(deliveries).values({'status': 'pending'})",
        "conn.exec_driver_sql('UPDATE deliveries SET status = ? WHERE id = ?')",
    ],
)
def test_the_walk_finds_a_status_write_that_bypasses_the_moves(source: str) -> None:
    assert bypasses(source)


@pytest.mark.parametrize(
    "source",
    [
        "update(runs).where(runs.c.id == 1).values(cancel_requested_at=now)",
        "update(destinations).values(status='x')",  # not a guarded table
        "_HAND_BACK.update(claim=claim, status_note=1)",
    ],
)
def test_the_walk_lets_other_writes_be(source: str) -> None:
    assert bypasses(source) == []


# -- every pair of statuses, through the moves, on each database --------------------------


async def _run_in(store: Store, clock: ManualClock, status: RunStatus, holder: str | None) -> UUID:
    organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
    run = queued_run(organization_id=organization.id, now=clock.now())
    await store.runs.insert(run)
    await _force(store, RUNS, run.id, status, holder)
    return run.id


async def _delivery_in(
    store: Store, clock: ManualClock, status: DeliveryStatus, holder: str | None
) -> UUID:
    organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
    run = replace(
        queued_run(organization_id=organization.id, now=clock.now()),
        status=RunStatus.SUCCEEDED,
        output="{}",
        completed_at=clock.now(),
    )
    await store.runs.insert(run)
    delivery = new_delivery(
        run,
        delivery_id=new_id(),
        now=clock.now(),
        policy=DEFAULT_RETRY_POLICY,
        is_automatic=True,
        output=None,
    )
    await store.outbox.add(delivery)
    await _force(store, DELIVERIES, delivery.id, status, holder)
    return delivery.id


async def _force(
    store: Store, machine: Machine[Any], row_id: UUID, status: Any, holder: str | None
) -> None:
    """Put a row in a state directly, as a test's setup (the store never does this)."""
    table = machine.table
    async with store.database.write() as conn:
        await conn.execute(
            update(table).where(table.c.id == row_id).values(status=status, claimed_by=holder)
        )


async def _state(store: Store, machine: Machine[Any], row_id: UUID) -> tuple[str, str | None]:
    table = machine.table
    async with store.database.read() as conn:
        row = (
            await conn.execute(
                select(table.c.status, table.c.claimed_by).where(table.c.id == row_id)
            )
        ).one()
    return row.status, row.claimed_by


async def _try_every_target(
    store: Store,
    clock: ManualClock,
    machine: Machine[Any],
    source: Any,
    table: dict[Any, frozenset[Any]],
) -> None:
    make = _run_in if machine is RUNS else _delivery_in
    for target in type(source):
        if target not in table.get(source, frozenset()):
            with pytest.raises(InvalidTransitionError, match=f"from {source} to {target}"):
                transition(machine, source, target)
            continue
        move = transition(machine, source, target)
        mine = await make(store, clock, source, "w1")
        theirs = await make(store, clock, source, "w2")
        for row_id in (mine, theirs):
            async with store.database.write() as conn:
                result = await conn.execute(
                    move.update(claim=Claim.held_by("w1"), where=[machine.table.c.id == row_id])
                )
            assert result.rowcount == (1 if row_id == mine else 0), (source, target)
        assert await _state(store, machine, mine) == (target.value, "w1"), (source, target)
        assert await _state(store, machine, theirs) == (source.value, "w2"), (source, target)

        # Once moved, the row is no longer where the move starts: the same write is refused.
        async with store.database.write() as conn:
            again = await conn.execute(
                move.update(claim=Claim.held_by("w1"), where=[machine.table.c.id == mine])
            )
        assert again.rowcount == 0, (source, target)


@pytest.mark.parametrize("source", list(RunStatus))
async def test_every_run_transition_is_allowed_exactly_as_the_table_says(
    store: Store, clock: ManualClock, source: RunStatus
) -> None:
    await _try_every_target(store, clock, RUNS, source, dict(RUN_TRANSITIONS))


@pytest.mark.parametrize("source", list(DeliveryStatus))
async def test_every_delivery_transition_is_allowed_exactly_as_the_table_says(
    store: Store, clock: ManualClock, source: DeliveryStatus
) -> None:
    await _try_every_target(store, clock, DELIVERIES, source, dict(DELIVERY_TRANSITIONS))


# -- per-row moves answer what they refused, and why ------------------------------------

_FINISH = transition(DELIVERIES, DeliveryStatus.DELIVERING, DeliveryStatus.SUCCEEDED).per_row()


def _finish(delivery_id: UUID, holder: str | None) -> Step[DeliveryStatus]:
    return Step(delivery_id, DeliveryStatus.DELIVERING, DeliveryStatus.SUCCEEDED, holder, {})


async def test_a_per_row_move_applies_only_for_the_holder_and_says_why_it_refused(
    store: Store, clock: ManualClock
) -> None:
    held = await _delivery_in(store, clock, DeliveryStatus.DELIVERING, "w1")
    pending = await _delivery_in(store, clock, DeliveryStatus.PENDING, None)

    async with store.database.write() as conn:
        verdicts = await _FINISH.apply(
            conn,
            [_finish(held, "w2"), _finish(held, "w1"), _finish(held, "w1"), _finish(pending, "w1")],
        )

    wrong_holder, applied, twice, not_claimed = verdicts
    assert applied is None
    assert str(wrong_holder).startswith(
        f"delivery {held} is delivering, claimed by w1, not delivering, claimed by w2"
    )
    assert twice is not None
    assert twice.found == "succeeded, unclaimed"  # the earlier step won
    assert not_claimed is not None
    assert not_claimed.found == "pending, unclaimed"
    assert await _state(store, DELIVERIES, held) == ("succeeded", None)
    assert await _state(store, DELIVERIES, pending) == ("pending", None)


async def test_a_per_row_step_the_move_does_not_declare_is_refused_before_any_write(
    store: Store, clock: ManualClock
) -> None:
    held = await _delivery_in(store, clock, DeliveryStatus.DELIVERING, "w1")
    undeclared = Step(held, DeliveryStatus.DELIVERING, DeliveryStatus.FAILED, "w1", {})

    async with store.database.write() as conn:
        with pytest.raises(InvalidTransitionError, match="not declared by this move"):
            await _FINISH.apply(conn, [undeclared])

    assert await _state(store, DELIVERIES, held) == ("delivering", "w1")
