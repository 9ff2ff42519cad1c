"""The store's hot statements: each defined once for both databases, compiled for each, and
the only statements a run's way from submission to recorded callback runs."""

from __future__ import annotations

import importlib
import pkgutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import Dialect

import runback.store
from runback.store import Store, open_store, sqlite_url
from runback.store.moves import RowMoves
from runback.store.schema import metadata
from runback.store.sql import Compiled, Prepared
from runback.testing import ManualClock
from support.harness import make_harness

DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite_dialect(paramstyle="qmark"),
    "postgresql": asyncpg_dialect(),  # type: ignore[no-untyped-call]
}


def _stores_statements() -> list[Prepared]:
    """Every prepared statement the store's modules define (a ``RowMoves`` holds two)."""
    found: dict[int, Prepared] = {}
    for module in pkgutil.walk_packages(runback.store.__path__, "runback.store."):
        if ".migrations" in module.name:
            continue
        for value in vars(importlib.import_module(module.name)).values():
            held = [value] if isinstance(value, Prepared) else []
            if isinstance(value, RowMoves):
                held = [value.statement, value.current]
            found.update((id(p), p) for p in held)
    return list(found.values())


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_no_statement_is_defined_twice(dialect: str) -> None:
    texts = Counter(prepared.compiled(DIALECTS[dialect]).sql for prepared in _stores_statements())

    assert len(texts) > 15  # the registry holds the store's hot statements
    assert [text for text, count in texts.items() if count > 1] == []


async def test_a_run_from_submission_to_recorded_callback_runs_only_prepared_statements(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    dialect = store.database.dialect
    with store.database.tracing() as seen:
        run = await h.submit()
        await h.executor.run_until_idle()
        await h.dispatcher.deliver_due()
        await h.store.runs.get(run.id)
    prepared = {c.sql for p in _stores_statements() for c in p.compiled_for(dialect)}

    assert [sql for sql, _ in seen if sql not in prepared] == []
    assert len(seen) >= 8


SCANNED_WHOLE = {
    "destinations",  # the troubled few: read whole every dispatcher round, by design
    "callback_secrets",  # a handful per organization
}


def _planned_arguments(compiled: Compiled) -> list[Any]:
    """The statement's own values (a status the partial index names), None for the rest."""
    return [
        None if required or value is None else (convert(value) if convert else value)
        for value, required, convert in zip(
            compiled.defaults, compiled.required, compiled.converters, strict=True
        )
    ]


async def test_no_hot_statement_scans_a_table_on_sqlite(tmp_path: Path) -> None:
    # A list once compared '= 1' read every row of the table: this caught it.
    scanned: set[str] = set()
    async with (
        open_store(sqlite_url(tmp_path / "plans.db")) as store,
        store.database.read() as conn,
    ):
        for statement in _stores_statements():
            compiled = statement.compiled(store.database.dialect)
            plan = await conn.sql(
                "EXPLAIN QUERY PLAN " + compiled.sql, _planned_arguments(compiled)
            )
            scanned.update(
                line.split()[1]
                for line in (str(row[3]) for row in plan)
                if line.startswith("SCAN ")
                and "USING" not in line  # an index walked in order
                and "json_each" not in line
                and line.split()[1] in metadata.tables  # not a CTE's few rows
            )

    assert scanned == SCANNED_WHOLE
