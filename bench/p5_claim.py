"""P5: time to claim the next due delivery among many pending, beside the same among 10,000.

    RUNBACK_BENCH_MODE=quick .venv/bin/python bench/p5_claim.py

No runback process and no network: this process opens the store and calls the dispatcher's
own claim, ``DeliveryStore.claim_due`` (the statement, its transaction, the rows turned into
``Delivery`` records), on SQLite and on PostgreSQL (a fresh schema, dropped afterwards).

The database holds N pending deliveries (each with its succeeded run), copied in SQL from one
real run and delivery (``bench/seeding.py``): a million take under a minute.
``DUE_FRACTION`` of them are due (spread over the last ten minutes), the rest spread over the
next day, as retries are. PostgreSQL gets ``VACUUM ANALYZE`` after the seeding (autovacuum
would have run on a table that size); SQLite gets nothing (runback never runs ANALYZE).

Each measured claim takes ``limit=1`` ("the next due delivery", where a growing table would
show most), then the claimed row is finished (``succeeded``) and one new due delivery is
inserted, outside the clock: the pending and due counts stay constant, claim after claim, as
in a dispatcher's steady state. A second series claims the dispatcher's full batch (256, its
``RUNBACK_MAX_IN_FLIGHT_DELIVERIES``). Reported: the median (and p95) of each, at N and at
10,000 (the baseline), the two databases claimed in turns so that other load on this machine
weighs on both alike; and the plans of the claim's statements at N, as ``claim_due`` sends
them (``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL, in a transaction rolled back; ``EXPLAIN
QUERY PLAN`` on SQLite), printed in full and summed up in the row's notes. Quick mode uses
N = 100,000; full mode the issue's 1,000,000.
"""

from __future__ import annotations

import inspect
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import uvloop
from client import percentile
from seeding import backlog
from sqlalchemy import func, select, text, update

from runback.core.records import Delivery
from runback.core.states import DeliveryStatus
from runback.store import Store
from runback.store.schema import deliveries, runs
from support import Database, Result, fresh_schema, mode, postgres_admin, save

COUNT = {"smoke": 20_000, "quick": 100_000, "full": 1_000_000}
BASELINE = {"smoke": 10_000, "quick": 10_000, "full": 10_000}
CLAIMS = {"smoke": 30, "quick": 200, "full": 200}
"""Measured claims of one delivery, after ``WARMUP`` unmeasured ones."""
BATCH_CLAIMS = {"smoke": 5, "quick": 30, "full": 50}
"""Measured claims of a full batch."""
WARMUP = 10
BATCH = 256
DUE_FRACTION = 0.05
"""Of the pending deliveries, those due now: 500 of 10,000 (enough for a full batch)."""
SEED_CHUNK = 50_000
"""Rows per seeding transaction (keeps SQLite's WAL and PostgreSQL's locks small)."""
TARGET = 1.5
PAST_US = 600_000_000  # due ones: within the last ten minutes
FUTURE_US = 86_400_000_000  # the others: within the next day

# Fresh ids, in SQL: a fixed prefix and the row's number, sequential like runback's
# time-ordered ids. Runs and deliveries get different prefixes.
_SQLITE_ID = "'{prefix}' || printf('%024x', n.i)"
_POSTGRES_ID = "('{prefix}' || lpad(to_hex(n.i), 24, '0'))::uuid"
_RUN_PREFIX, _DELIVERY_PREFIX = "f0000000", "f1000000"


@dataclass(frozen=True)
class Template:
    """The real run and delivery every seeded row copies."""

    run_id: UUID
    delivery_id: UUID


@dataclass
class Claims:
    """Milliseconds per claim, by series."""

    one: list[float]
    batch: list[float]

    def describe(self) -> str:
        return f"limit 1: {summary(self.one)}; limit {BATCH}: {summary(self.batch)}"


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.2f} / p95 {percentile(values, 95):.2f} ms "
        f"(n={len(values)})"
    )


async def template(store: Store) -> Template:
    """One real succeeded run with its pending delivery (not due), through the seeding
    module: every seeded row is a copy of it."""
    # Never contacted: nothing sends here.
    await backlog(store, count=1, callback_urls=["http://127.0.0.1:9/hook"])
    async with store.database.read() as conn:
        row = (await conn.execute(select(deliveries.c.id, deliveries.c.run_id))).one()
    return Template(run_id=row.run_id, delivery_id=row.id)


def _insert_sql(postgres: bool, table: Any, generated: dict[str, str], *, with_due: bool) -> str:
    """``INSERT INTO table SELECT ...`` copying every column of the template row ``t`` but
    the ``generated`` ones, once for each number ``n.i`` of a series; ``with_due`` (SQLite)
    also draws each row's due time (``n.us``)."""
    names = [column.name for column in table.c]
    values = ", ".join(generated.get(name, f"t.{name}") for name in names)
    head = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {values}"
    if postgres:
        # No lateral subquery for the due time: PostgreSQL would draw it once for all rows.
        return (
            f"{head} FROM generate_series(:start, :stop - 1) AS n(i), "
            f"{table.name} AS t WHERE t.id = :template"
        )
    # SQLite: a recursive series; due times in microseconds, turned into the naive-UTC text
    # runback stores (``UtcDateTime``), so they compare with its bound parameters.
    series = (
        "WITH RECURSIVE n(i) AS (SELECT :start UNION ALL SELECT i + 1 FROM n WHERE i < :stop - 1)"
    )
    if not with_due:
        return f"{series} {head} FROM n, {table.name} AS t WHERE t.id = :template"
    due_us = (
        "CASE WHEN abs(random()) % 1000000 < :due_ppm "
        "THEN :now_us - abs(random()) % :past_us ELSE :now_us + abs(random()) % :future_us END"
    )
    # MATERIALIZED: each row's due time drawn once, though read twice below.
    return (
        f"{series}, d(i, us) AS MATERIALIZED (SELECT i, {due_us} FROM n) "
        f"{head} FROM d AS n, {table.name} AS t WHERE t.id = :template"
    )


_POSTGRES_DUE = (
    "CASE WHEN random() < :due_fraction "
    "THEN CAST(:now AS timestamptz) - random() * CAST(:past AS interval) "
    "ELSE CAST(:now AS timestamptz) + random() * CAST(:future AS interval) END"
)
_SQLITE_DUE = (
    "strftime('%Y-%m-%d %H:%M:%S', n.us / 1000000, 'unixepoch') || printf('.%06d', n.us % 1000000)"
)


async def copy_rows(
    store: Store,
    like: Template,
    *,
    start: int,
    stop: int,
    now: datetime,
    due_fraction: float,
    past_us: int = PAST_US,
) -> None:
    """Insert runs and their pending deliveries numbered ``start`` to ``stop - 1``: copies
    of the template with fresh ids; ``due_fraction`` of them due within ``past_us`` before
    ``now``, the others within a day after it."""
    postgres = not store.database.is_sqlite
    make_id = _POSTGRES_ID if postgres else _SQLITE_ID
    run_id = make_id.format(prefix=_RUN_PREFIX)
    run_sql = _insert_sql(postgres, runs, {"id": run_id}, with_due=False)
    delivery_sql = _insert_sql(
        postgres,
        deliveries,
        {
            "id": make_id.format(prefix=_DELIVERY_PREFIX),
            "run_id": run_id,
            "webhook_id": f"'msg_' || CAST({run_id} AS TEXT)",
            "next_attempt_at": _POSTGRES_DUE if postgres else _SQLITE_DUE,
        },
        with_due=True,
    )
    if postgres:
        due: dict[str, Any] = {
            "now": now,
            "due_fraction": due_fraction,
            "past": timedelta(microseconds=past_us),
            "future": timedelta(microseconds=FUTURE_US),
        }
    else:
        due = {
            "now_us": round(now.timestamp() * 1_000_000),
            "due_ppm": round(due_fraction * 1_000_000),
            "past_us": max(past_us, 1),
            "future_us": FUTURE_US,
        }
    # text() binds go to the driver as they are: SQLite keeps ids as 32 hex characters.
    run_template: Any = like.run_id if postgres else like.run_id.hex
    delivery_template: Any = like.delivery_id if postgres else like.delivery_id.hex
    for first in range(start, stop, SEED_CHUNK):
        bounds = {"start": first, "stop": min(first + SEED_CHUNK, stop)}
        async with store.database.write() as conn:
            await conn.execute(text(run_sql), {**bounds, "template": run_template})
            await conn.execute(text(delivery_sql), {**bounds, **due, "template": delivery_template})


async def finish(store: Store, ids: list[UUID], now: datetime) -> None:
    """What recording a successful attempt does to the claimed rows: out of the due index."""
    async with store.database.write() as conn:
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .values(
                status=DeliveryStatus.SUCCEEDED.value,
                attempt_count=1,
                completed_at=now,
                updated_at=now,
                claimed_by=None,
                lease_until=None,
            )
        )


@dataclass
class Seeded:
    store: Store
    like: Template
    next_number: int
    """The number of the next row to insert."""
    due: int
    """How many were due after the seeding."""


async def claim_and_replace(seeded: Seeded, *, limit: int) -> float:
    """Milliseconds of one claim of ``limit``; then, outside the clock, the claimed rows
    are finished and as many new due ones inserted."""
    store = seeded.store
    now = datetime.now(UTC)
    started = time.perf_counter()
    claimed = await claim(store, limit=limit, now=now)
    elapsed = time.perf_counter() - started
    if len(claimed) != limit:
        raise SystemExit(f"claimed {len(claimed)} of {limit}: the due rows ran out")
    await finish(store, [d.id for d in claimed], now)
    start = seeded.next_number
    seeded.next_number += limit
    await copy_rows(
        store, seeded.like, start=start, stop=seeded.next_number, now=now,
        due_fraction=1.0, past_us=1,
    )  # fmt: skip
    return elapsed * 1000


async def timed_claims(databases: list[Seeded], *, limit: int, claims: int) -> list[list[float]]:
    """Milliseconds of ``claims`` claims of ``limit`` in each database (after ``WARMUP``
    more), taken in turns (the order swapped each turn), so that whatever else loads this
    machine meanwhile weighs on every database alike."""
    times: list[list[float]] = [[] for _ in databases]
    for turn in range(WARMUP + claims):
        order = list(enumerate(databases))
        for index, seeded in order if turn % 2 else order[::-1]:
            elapsed = await claim_and_replace(seeded, limit=limit)
            if turn >= WARMUP:
                times[index].append(elapsed)
    return times


class _RollbackError(Exception):
    """Raised to roll back the transaction an ``EXPLAIN ANALYZE`` ran in."""


@contextmanager
def captured_claims(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """The statements on ``deliveries`` the store runs meanwhile (a claim's ``SELECT`` and
    ``UPDATE``), exactly as the driver got them, with their parameters."""
    with store.database.tracing() as traced:
        seen: list[tuple[str, Any]] = []
        yield seen
        seen.extend(
            (sql, arguments)
            for sql, arguments in traced
            if sql.lstrip()[:6].upper() in ("SELECT", "UPDATE") and "deliveries" in sql
        )


def _shorten(text_: str) -> str:
    """A statement or plan line with long runs of placeholders or ids cut."""
    text_ = re.sub(r"(?:\?, ){4,}\?", "?, ..., ?", text_)
    text_ = re.sub(r"(\$\d+(?:::\w+)?)(?:, \$\d+(?:::\w+)?){3,}, (\$\d+(?:::\w+)?)",
                   r"\1, ..., \2", text_)  # fmt: skip
    return re.sub(r"'\{([^,}]+),[^}]*,([^,}]+)\}'", r"'{\1, ..., \2}'", text_)


def _statement(statement: str, parameters: Any) -> str:
    shown = repr(parameters)
    cut = f"{shown[:200]} ..." if len(shown) > 200 else shown
    return f"{_shorten(' '.join(statement.split()))}\n-- parameters: {cut}"


def claim(store: Store, *, limit: int, now: datetime) -> Awaitable[list[Delivery]]:
    """The dispatcher's claim. Where ``claim_due`` takes ``room`` (room per destination),
    it gets one that never binds: every seeded delivery goes to one destination, and the
    dispatcher's own limit per destination is a separate matter (P4)."""
    extra: dict[str, Any] = {}
    if "room" in inspect.signature(store.deliveries.claim_due).parameters:
        extra["room"] = lambda _destination: limit
    return store.deliveries.claim_due(
        worker="bench-p5", limit=limit, now=now, lease_until=now + timedelta(seconds=60), **extra
    )


@dataclass(frozen=True)
class Plan:
    """A claim's plans: in full (printed), and in one line (the row's notes)."""

    full: str
    brief: str


_NODE = re.compile(
    r"((?:Index Only Scan|Index Scan|Bitmap Heap Scan|Bitmap Index Scan|Seq Scan|Sort|LockRows)"
    r"[^(]*)\(cost=[^)]*\) \(actual time=[^ ]+ rows=(\d+)"
)


def _plan_line(row: tuple[Any, ...], postgres: bool) -> str:
    # PostgreSQL answers one text column; SQLite (id, parent, notused, detail).
    return str(row[0]) if postgres else f"{row[0]:>3} {row[1]:>3} {row[3]}"


def _brief(verb: str, lines: list[str], postgres: bool) -> str:
    """One statement's plan in a few words: its scans (with the rows they gave) and, on
    PostgreSQL, its execution time."""
    if not postgres:
        return f"{verb}: " + "; ".join(line.split(maxsplit=2)[2] for line in lines)
    nodes = [f"{m.group(1).strip()} ({m.group(2)} rows)" for m in map(_NODE.search, lines) if m]
    took = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Execution Time")]
    return f"{verb}: " + " > ".join(nodes) + (f", {took[0]}" if took else "")


async def claim_plan(store: Store, *, limit: int) -> Plan:
    """The plans of the statements of one claim of ``limit``, as ``claim_due`` sends them
    now: ``EXPLAIN (ANALYZE, BUFFERS)`` in a transaction rolled back on PostgreSQL,
    ``EXPLAIN QUERY PLAN`` on SQLite."""
    now = datetime.now(UTC)
    with captured_claims(store) as seen:
        claimed = await claim(store, limit=limit, now=now)
    await store.deliveries.hand_back([d.id for d in claimed], worker="bench-p5", now=now)
    if not seen:
        missing = "(claim_due sent no statement on deliveries)"
        return Plan(missing, missing)
    postgres = not store.database.is_sqlite
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
    shown: list[str] = []
    briefs: list[str] = []
    try:
        async with store.database.write() as conn:
            for statement, parameters in seen:
                shown.append(_statement(statement, parameters))
                found = await conn.sql(prefix + statement, parameters)
                lines = [_shorten(_plan_line(tuple(row), postgres)) for row in found]
                shown.extend(lines)
                briefs.append(_brief(statement.split(maxsplit=1)[0].upper(), lines, postgres))
            raise _RollbackError
    except _RollbackError:
        pass
    return Plan("\n".join(shown), "; ".join(briefs))


async def seed(database: Database, *, count: int, stack: AsyncExitStack) -> Seeded:
    """A store holding ``count`` pending deliveries (``DUE_FRACTION`` due); prints how
    long the seeding took."""
    store = await stack.enter_async_context(database.open())
    like = await template(store)
    now = datetime.now(UTC)
    started = time.perf_counter()
    await copy_rows(store, like, start=1, stop=count, now=now, due_fraction=DUE_FRACTION)
    if database.postgres:
        await postgres_admin(f"VACUUM ANALYZE {database.schema}.runs, {database.schema}.deliveries")
    elapsed = time.perf_counter() - started
    async with store.database.read() as conn:
        due = (
            await conn.execute(
                select(func.count())
                .select_from(deliveries)
                .where(
                    deliveries.c.status == DeliveryStatus.PENDING.value,
                    deliveries.c.next_attempt_at <= now,
                )
            )
        ).scalar_one()
    print(f"  seeded {count:,} pending ({due:,} due) in {elapsed:.1f} s", flush=True)
    return Seeded(store, like, next_number=count, due=int(due))


async def run_database(postgres: bool, folder: Path) -> None:
    large, small = COUNT[mode()], BASELINE[mode()]
    name = "PostgreSQL" if postgres else "SQLite"
    print(f"{name}:", flush=True)
    async with AsyncExitStack() as stack:
        databases = [
            await seed(
                await stack.enter_async_context(fresh_schema())
                if postgres
                else Database(file=folder / f"p5-{count}.db"),
                count=count,
                stack=stack,
            )
            for count in (small, large)
        ]
        one = await timed_claims(databases, limit=1, claims=CLAIMS[mode()])
        batch = await timed_claims(databases, limit=BATCH, claims=BATCH_CLAIMS[mode()])
        plan = await claim_plan(databases[1].store, limit=BATCH)
    base, claims = Claims(one[0], batch[0]), Claims(one[1], batch[1])
    print(f"  {small:,} pending: {base.describe()}", flush=True)
    print(f"  {large:,} pending: {claims.describe()}", flush=True)
    print(f"  the claim of {BATCH} at {large:,} pending on {name}:\n{plan.full}", flush=True)
    figure, baseline = statistics.median(claims.one), statistics.median(base.one)
    due, base_due = databases[1].due, databases[0].due
    save(
        Result(
            id="P5pg" if postgres else "P5",
            what=f"claim of the next due delivery with {large:,} pending, {name} (median)",
            figure=figure,
            unit="ms",
            baseline=baseline,
            baseline_what=f"the same claim with {small:,} pending (median)",
            target=f"<= {TARGET}x",
            holds=figure <= TARGET * baseline,
            notes=(
                f"DeliveryStore.claim_due called in this process, no runback server. "
                f"{large:,} pending ({due:,} due): {claims.describe()}. {small:,} pending "
                f"({base_due:,} due): {base.describe()}. {DUE_FRACTION:.0%} due over the last "
                "10 min, the rest over the next day; each claimed row finished and replaced "
                "by a new due one outside the clock; the two databases claimed in turns."
                + (" VACUUM ANALYZE after seeding." if postgres else " No ANALYZE (as runback).")
                + (
                    f" {mode().capitalize()} mode: {large:,} pending, not the issue's 1,000,000."
                    if large < 1_000_000
                    else ""
                )
                + f" Plan of the claim of {BATCH} (in full on stdout): {plan.brief}"
            ),
        )
    )


async def main() -> None:
    print(
        f"P5 ({mode()}): claims among {COUNT[mode()]:,} and {BASELINE[mode()]:,} pending",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for postgres in (False, True):
            await run_database(postgres, Path(tmp))


if __name__ == "__main__":
    uvloop.run(main())
