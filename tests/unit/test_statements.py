"""The store's hot statements: each defined once for both databases, compiled for each, and
the only statements a run's way from submission to recorded callback runs."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import Dialect

from runback.store import Store
from runback.store.sql import Prepared
from runback.testing import ManualClock
from support.harness import make_harness

DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite_dialect(paramstyle="qmark"),
    "postgresql": asyncpg_dialect(),  # type: ignore[no-untyped-call]
}


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_no_statement_is_defined_twice(dialect: str) -> None:
    texts = Counter(prepared.compiled(DIALECTS[dialect]).sql for prepared in Prepared.registry)

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
    prepared = {compiled.sql for p in Prepared.registry for compiled in p.compiled_for(dialect)}

    assert [sql for sql, _ in seen if sql not in prepared] == []
    assert len(seen) >= 8
