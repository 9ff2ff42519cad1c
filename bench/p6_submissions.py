"""P6: accepted runs per second, beside a bare route on the same server stack answering 201.

    RUNBACK_BENCH_MODE=quick .venv/bin/python bench/p6_submissions.py   # 6,000 runs a phase
    RUNBACK_BENCH_MODE=full .venv/bin/python bench/p6_submissions.py    # 40,000
    RUNBACK_BENCH_MODE=smoke .venv/bin/python bench/p6_submissions.py   # 200, a few seconds

An aiohttp client in this process keeps ``IN_FLIGHT`` requests in flight against a runback
process on loopback: ``POST /v1/models/runback/echo/runs`` with a ``callback_url``, each
answered ``201`` only once its run is committed. The figure is the ``201`` answers per second
after a warm-up (bounded in count and in time); afterwards the database must hold exactly
the runs that were answered ``201``.

The runback process is ``runback api``, on SQLite as on PostgreSQL: no executor runs the
runs, so only accepting them is measured (``runback serve`` would run every echo run and
deliver its callback in the same process, on the same two cores); ``runback serve`` is
measured too on SQLite, for the notes (not in smoke mode). Its CPU milliseconds per accepted
run come from ``/proc`` (and, on PostgreSQL, those of every local ``postgres`` process).

The baseline, in the same run: a bare Starlette route on the same server stack as runback's
API (uvicorn, httptools, uvloop; ``--baseline-server``) answering ``201`` to the same
requests, with no key check, validation or database; the target is half its rate. For the
database's part the notes add the same driver runback uses inserting rows of the same shape
into a freshly migrated ``runs`` table, one commit per row, the same ``IN_FLIGHT`` tasks, no
HTTP (aiosqlite with runback's pragmas on one connection taken in turns; asyncpg with as
many pooled connections as runback's pool may open). Writes
``P6`` (SQLite) and ``P6pg``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import aiosqlite
import asyncpg
import orjson
import uvloop
from client import MODEL, submission
from procstat import cpu_seconds, own_cpu_seconds, postgres_cpu_seconds
from uuid_utils.compat import uuid7

from support import (
    POSTGRES_URL,
    Database,
    Result,
    api_key,
    baseline_server,
    count_rows,
    fast_receiver,
    migrated,
    mode,
    postgres_schema,
    process,
    profiled,
    runback_command,
    save,
    serve_bare_route,
)

COUNT = {"smoke": 200, "quick": 6_000, "full": 40_000}
"""Runs per measured phase."""
BASELINE_COUNT = {"smoke": 200, "quick": 20_000, "full": 100_000}
"""Inserts per measured baseline phase: more, as they go ten times faster."""
WARMUP = {"smoke": 20, "quick": 500, "full": 2_000}
SECONDS = {"smoke": 10.0, "quick": 15.0, "full": 120.0}
"""The longest a measured phase may send for: the phase ends at COUNT or at this."""
IN_FLIGHT = 64
PG_CONNECTIONS = 20
"""runback's PostgreSQL pool: ``pool_size`` 10 (``RUNBACK_DATABASE_POOL_SIZE``) plus as many
overflow connections; the baseline may open as many."""
DEAD_HOOK = "http://127.0.0.1:9/hook"
ROUTE = "a bare Starlette route answering 201 (uvicorn + httptools + uvloop, as P3's)"
"""A callback URL nothing listens on: ``runback api`` never delivers, so it is never called."""

_COLUMNS = (
    "id, organization_id, model, status, input, output, metadata, client_ref, callback_url, "
    "idempotency_key, request_hash, batch_id, execution_count, output_url_ttl, created_at, "
    "updated_at"
)
# The row runback's submit inserts (``store/runs.py``), column for column.
SQLITE_INSERT = f"INSERT INTO runs ({_COLUMNS}) VALUES ({', '.join('?' * 16)})"
PG_INSERT = f"INSERT INTO runs ({_COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, 17))})"


@dataclass
class Phase:
    """What one measured phase got done."""

    done: int = 0
    elapsed: float = 0.0
    finished_at: list[float] = field(default_factory=list)
    """When each item ended, in seconds from the phase's start."""
    cpu_ms: float = 0.0
    """CPU ms per item of the process doing the work (runback, or this one for a baseline)."""
    database_cpu_ms: float = 0.0
    """CPU ms per item of every local ``postgres`` process (PostgreSQL only)."""

    @property
    def rate(self) -> float:
        return self.done / self.elapsed

    def per_second(self) -> list[float]:
        """Items ended in each whole second of the phase (the last, partial one left out)."""
        counts = [0.0] * int(self.elapsed)
        for at in self.finished_at:
            if int(at) < len(counts):
                counts[int(at)] += 1
        return counts


async def drive(count: int, seconds: float, one: Callable[[int], Awaitable[None]]) -> Phase:
    """``one(i)`` for ``i`` in ``range(count)``, ``IN_FLIGHT`` at a time, taking no new item
    once ``seconds`` have passed."""
    phase = Phase()
    items = iter(range(count))
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        for i in items:
            if time.perf_counter() > deadline:
                return
            await one(i)
            phase.finished_at.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    phase.elapsed = time.perf_counter() - start
    phase.done = len(phase.finished_at)
    return phase


async def submissions(
    api: str, key: str, hook: str, *, pid: int, postgres: bool, count: int, warmup: int
) -> Phase:
    """Warm up, then submit up to ``count`` runs; the measured phase, with runback's CPU
    (and PostgreSQL's) per accepted run."""
    url, headers = submission(api, key)
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as http:

        async def submit(n: int) -> None:
            body = orjson.dumps({"input": {"n": n}, "callback_url": hook})
            async with http.post(url, data=body) as response:
                answer = await response.read()
            if response.status != 201:
                raise SystemExit(f"{url} answered {response.status}: {answer[:300]!r}")

        await drive(warmup, SECONDS[mode()], submit)
        cpu, database_cpu = cpu_seconds(pid), postgres_cpu_seconds() if postgres else 0.0
        with profiled(pid, f"p6-{'pg' if postgres else 'sqlite'}-{pid}"):
            phase = await drive(count, SECONDS[mode()], submit)
        phase.cpu_ms = (cpu_seconds(pid) - cpu) * 1000 / phase.done
        if postgres:
            phase.database_cpu_ms = (postgres_cpu_seconds() - database_cpu) * 1000 / phase.done
    return phase


def run_row(
    n: int, organization: Any, *, when: Any, uuid: Callable[[UUID], Any]
) -> tuple[Any, ...]:
    """A queued ``runback/echo`` run with a callback, as runback's submit stores it."""
    return (
        uuid(uuid7()), organization, MODEL, "queued", orjson.dumps({"n": n}).decode(), None,
        None, None, DEAD_HOOK, None, None, None, 0, None, when, when,
    )  # fmt: skip


async def sqlite_baseline(database: Database, *, count: int, warmup: int) -> Phase:
    """aiosqlite inserts into a migrated runback database, one commit each."""
    # SQLAlchemy keeps ids on SQLite as hex text.
    organization = (await migrated(database)).hex
    async with aiosqlite.connect(str(database.file)) as db:
        # runback's pragmas (``store/database.py``).
        await db.execute("PRAGMA busy_timeout = 10000")
        await db.execute("PRAGMA foreign_keys = ON")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")
        lock = asyncio.Lock()

        async def insert(n: int) -> None:
            # SQLAlchemy keeps these on SQLite as hex text and naive-UTC text.
            now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            row = run_row(n, organization, when=now, uuid=lambda u: u.hex)
            async with lock:  # one writer: a transaction at a time on the connection
                await db.execute(SQLITE_INSERT, row)
                await db.commit()

        await drive(warmup, SECONDS[mode()], insert)
        cpu = own_cpu_seconds()
        phase = await drive(count, SECONDS[mode()], insert)
        phase.cpu_ms = (own_cpu_seconds() - cpu) * 1000 / phase.done
    await check_stored(database, warmup + phase.done)
    return phase


async def postgres_baseline(database: Database, *, count: int, warmup: int) -> Phase:
    """asyncpg inserts into a migrated runback schema, each its own transaction."""
    organization = await migrated(database)
    pool = await asyncpg.create_pool(
        POSTGRES_URL,
        min_size=PG_CONNECTIONS,
        max_size=PG_CONNECTIONS,
        server_settings={"search_path": str(database.schema), "application_name": "bench-p6"},
    )
    try:

        async def insert(n: int) -> None:
            row = run_row(n, organization, when=datetime.now(UTC), uuid=lambda u: u)
            await pool.execute(PG_INSERT, *row)  # autocommit: one transaction per row

        await drive(warmup, SECONDS[mode()], insert)
        cpu, database_cpu = own_cpu_seconds(), postgres_cpu_seconds()
        phase = await drive(count, SECONDS[mode()], insert)
        phase.cpu_ms = (own_cpu_seconds() - cpu) * 1000 / phase.done
        phase.database_cpu_ms = (postgres_cpu_seconds() - database_cpu) * 1000 / phase.done
        stored = await pool.fetchval("SELECT count(*) FROM runs")
    finally:
        await pool.close()
    if stored != warmup + phase.done:
        raise SystemExit(f"the baseline inserted {warmup + phase.done} rows, {stored} are there")
    return phase


async def check_stored(database: Database, expected: int) -> None:
    """Every acknowledged insert is in the database: anything else is a broken run."""
    stored = await count_rows(database, "runs")
    if stored != expected:
        raise SystemExit(f"{database}: {expected} runs acknowledged, {stored} stored")


def runback_phase(role: str, database: Database, data_dir: Path, hook: str) -> Phase:
    """``runback <role>`` on ``database`` under the client's load; every accepted run is
    in the database afterwards."""
    count, warmup = COUNT[mode()], WARMUP[mode()]
    key = uvloop.run(api_key(database))
    command = runback_command(role, data_dir)
    with process(command, env=database.env(), log=data_dir.parent / f"{data_dir.name}.log") as api:
        phase = uvloop.run(
            submissions(api.url, key, hook, pid=api.pid, postgres=database.postgres, count=count,
                        warmup=warmup)
        )  # fmt: skip
    uvloop.run(check_stored(database, warmup + phase.done))
    return phase


def route_phase(folder: Path) -> Phase:
    """The bare Starlette route (``--baseline-server``, the same server stack as runback's
    API: uvicorn, httptools, uvloop) under the same client's load: P6's baseline."""
    count, warmup = COUNT[mode()], WARMUP[mode()]
    with baseline_server(__file__, folder / "route.log") as route:
        return uvloop.run(
            submissions(route.url, "none", DEAD_HOOK, pid=route.pid, postgres=False, count=count,
                        warmup=warmup)
        )  # fmt: skip


def describe(name: str, phase: Phase, *, unit: str = "run") -> str:
    line = f"{name}: {phase.rate:,.0f}/s ({phase.done:,} in {phase.elapsed:.1f} s), CPU "
    line += f"{phase.cpu_ms:.2f} ms/{unit}"
    if phase.database_cpu_ms:
        line += f" + {phase.database_cpu_ms:.2f} ms/{unit} in PostgreSQL"
    print(line, flush=True)
    return line


def result(
    id_: str, what: str, runback: Phase, baseline: Phase, baseline_what: str, notes: str
) -> Result:
    ratio = runback.rate / baseline.rate
    return Result(
        id=id_,
        what=what,
        figure=runback.rate,
        unit="runs/s",
        baseline=baseline.rate,
        baseline_what=baseline_what,
        target=">= 0.5x",
        holds=ratio >= 0.5,
        notes=notes,
        series={
            "x: second of the measured phase": [
                float(n) for n in range(int(max(runback.elapsed, baseline.elapsed)))
            ],
            "runback: runs accepted in that second": runback.per_second(),
            "baseline: requests answered in that second": baseline.per_second(),
        },
    )


def main() -> None:
    # Stopped by bench/run.py's timeout: unwind, so the PostgreSQL schemas are dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("P6: stopped by SIGTERM"))
    count, warmup = COUNT[mode()], WARMUP[mode()]
    print(f"P6 ({mode()}): {count:,} runs a phase after {warmup:,}, {IN_FLIGHT} in flight, "
          f"at most {SECONDS[mode()]:g} s")  # fmt: skip
    client = f"an aiohttp client in the bench process, {IN_FLIGHT} in flight, loopback"
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)

        route = route_phase(folder)
        route_line = describe(f"baseline ({ROUTE})", route, unit="request")
        base = Database.sqlite(folder / "base")
        inserts = uvloop.run(sqlite_baseline(base, count=BASELINE_COUNT[mode()], warmup=warmup))
        base_line = describe("aiosqlite, a commit per insert", inserts, unit="insert")
        lite = folder / "lite"
        api = runback_phase("api", Database.sqlite(lite), lite, DEAD_HOOK)
        api_line = describe("runback api (SQLite)", api)
        serve_line = "runback serve: not measured in smoke mode"
        if mode() != "smoke":  # two more processes to start: too slow for the test suite
            receiver = stack.enter_context(fast_receiver(folder))
            served_dir = folder / "served"
            served = runback_phase(
                "serve", Database.sqlite(served_dir), served_dir, f"{receiver}/hook"
            )
            serve_line = describe("runback serve (SQLite; executes and delivers too)", served)
            serve_line += ", with callbacks to the fast receiver"
        save(
            result(
                "P6",
                "accepted runs/s, SQLite (runback api)",
                api,
                route,
                ROUTE,
                f"{api_line}; {route_line}; for the database's part, {base_line} (WAL + "
                f"synchronous=NORMAL, one connection, the tasks take turns as runback's "
                f"writer does). Load: {client}. `runback api` on the SQLite file, so the runs "
                f"stay queued and only accepting them is measured. {serve_line}.",
            )
        )

        database = stack.enter_context(postgres_schema())
        base = stack.enter_context(postgres_schema())
        inserts = uvloop.run(postgres_baseline(base, count=BASELINE_COUNT[mode()], warmup=warmup))
        base_line = describe("asyncpg, a transaction per insert", inserts, unit="insert")
        api = runback_phase("api", database, folder / "pg", DEAD_HOOK)
        api_line = describe("runback api (PostgreSQL)", api)
        save(
            result(
                "P6pg",
                "accepted runs/s, PostgreSQL (runback api)",
                api,
                route,
                ROUTE,
                f"{api_line}; {route_line}; for the database's part, {base_line} "
                f"({PG_CONNECTIONS} pooled connections). Load: {client}. One `runback api` "
                f"(default pool: up to {PG_CONNECTIONS} connections), fresh schemas dropped "
                "afterwards; "
                "PostgreSQL CPU is every local postgres process's, so other load on the "
                "server counts too.",
            )
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["--baseline-server"]:
        serve_bare_route("/v1/models/{owner}/{name}/runs", status=201, body=b'{"id":"0"}')
    else:
        main()
