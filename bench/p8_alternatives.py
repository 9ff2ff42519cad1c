"""P8: runback beside the alternatives users would otherwise pick, in one run on this machine.

    RUNBACK_BENCH_MODE=quick .venv/bin/python bench/p8_alternatives.py  # 2,000 callbacks, 10 s
    RUNBACK_BENCH_MODE=smoke .venv/bin/python bench/p8_alternatives.py  # 100 callbacks, 1 s
    RUNBACK_BENCH_MODE=full .venv/bin/python bench/p8_alternatives.py   # 20,000, 60 s
    .venv/bin/python bench/p8_alternatives.py --only pgqueuer  # measure some, write no row

Five systems deliver the same callbacks (runback's own bodies, from ``seeding``) to the same
fast receiver (``bench/receiver.py``, its own process):

* runback on SQLite: one ``runback serve``;
* runback on PostgreSQL (a fresh schema): one ``runback worker --no-executor``;
* Celery (``bench/alternatives/celery_app.py``): a Redis broker, ``acks_late`` and
  ``task_reject_on_worker_lost``, one prefork worker;
* procrastinate (``bench/alternatives/procrastinate_app.py``): its own tables in a fresh
  schema, one worker;
* PgQueuer (``bench/alternatives/pgqueuer_app.py``): its own tables in a fresh schema, one
  worker on asyncpg (``pgqueuer.run``, as ``pgq run``), dequeueing in batches of
  ``PGQUEUER_BATCH_SIZE`` with at most ``PGQUEUER_CONCURRENCY`` jobs in flight.

Each alternative task does what runback does per attempt: both signatures
(``runback.core.signing``), a POST with a 10 s timeout over a kept-alive connection, one
committed row per attempt in a PostgreSQL ``attempts`` table, retries with backoff.

Two figures per system. **Throughput** (P1's workload): N callbacks wait, not yet released
(runback: pending deliveries not yet due; Celery: tasks in a queue no worker consumes yet;
procrastinate and PgQueuer: jobs enqueued in one commit once the worker waits); the clock
runs from their release until the receiver has counted N and all N attempts are recorded.
CPU per delivery is ``utime + stime`` of the system's own processes (the runback process;
Celery's main process and its pool; the procrastinate worker; the PgQueuer worker) between
those two moments, and beside it what the servers spent: all of PostgreSQL's processes on
the machine (none for runback on SQLite), and Redis for Celery. **Latency** (P2's
workload): after a warm-up, callbacks are submitted at a steady 200/s by P2's paced client,
each timed from its submission to its arrival: a ``runback/echo`` run through the API
(``serve`` on SQLite; ``api`` + ``worker`` on PostgreSQL, as in P2), a ``send_task``, a
``defer``, an ``enqueue``. runback's figure so covers more (the API's submission, the run,
then its delivery) than the alternatives' (an enqueued delivery). Writes ``P8`` (runback on
SQLite vs Celery) and ``P8pg`` (runback on PostgreSQL vs PgQueuer); procrastinate is
measured and reported in both rows' notes. P2 (``p2_latency.py``) reuses the PgQueuer
measurement below (``pgqueuer_latency``) as its baseline.

Celery here needs kombu 5.4 (5.4.2 tried) beside celery 5.4 and redis-py 5: kombu 5.7's
Redis transport refuses redis-py < 6.1. Every schema and Redis key a run makes is removed
afterwards, and each system's measurement, PgQueuer's included, has its own deadline
(``SYSTEM_DEADLINE``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis
import uvloop
from alternatives import attempts, celery_app, pgqueuer_app, procrastinate_app
from client import WARMUP, Phase, first_arrivals, measure_runs, paced, percentile, steady
from p2_latency import RATE
from pgqueuer.db import AsyncpgPoolDriver
from pgqueuer.queries import Queries
from procrastinate.schema import SchemaManager
from procstat import cpu_seconds, pids_named, postgres_cpu_seconds, with_children
from seeding import (
    attempts_recorded,
    backlog,
    callback_delivery,
    finished_run,
    make_due,
    unfinished,
)

from runback.core.ids import new_id
from runback.core.signing import generate_secret
from support import (
    BENCH,
    POSTGRES_URL,
    Result,
    child,
    database_in,
    deployment,
    fast_receiver,
    fresh_schema,
    mode,
    polled,
    process,
    received,
    runback_command,
    save,
)

COUNT = {"smoke": 100, "quick": 2_000, "full": 20_000}
SECONDS = {"smoke": 1.0, "quick": 10.0, "full": 60.0}
DEADLINE = {"smoke": 60.0, "quick": 120.0, "full": 900.0}
"""Seconds one drain (or one latency phase's backlog) may take before the run counts as
broken."""
SYSTEM_DEADLINE = {"smoke": 120.0, "quick": 360.0, "full": 2_400.0}
"""Seconds one system's whole measurement may take, start-up and clean-up aside."""
SETTLE_SECONDS = 15.0
"""After the last paced send, how long to wait for the next callback to arrive before the
rest count as lost (as long as they keep arriving, a backlog is waited for, up to
``DEADLINE``)."""
LEAD_SECONDS = 1.5
"""From making runback's deliveries due to their due time (its dispatcher polls each second)."""
CELERY_CONCURRENCY = 4
"""Prefork pool processes: each handles one task at a time and waits on the POST and the
commit, so two per core keep both cores busy (2, 4 and 8 were tried; see the notes)."""
PROCRASTINATE_CONCURRENCY = 16
"""Jobs in flight on the worker's event loop (procrastinate's ``--concurrency``)."""
PGQUEUER_BATCH_SIZE = 8
"""Jobs one dequeue of the PgQueuer worker picks (its ``--batch-size``)."""
PGQUEUER_CONCURRENCY = 16
"""Jobs in flight on the PgQueuer worker's event loop (its ``--max-concurrent-tasks``,
which PgQueuer wants at least twice the batch size): as many as procrastinate's, and as
runback's default per destination. Unbounded, one worker would pick every queued job at
once."""
REDIS_URL = os.environ.get("RUNBACK_TEST_REDIS", "redis://127.0.0.1:6379/0")
ALTERNATIVES = BENCH / "alternatives"


@dataclass(frozen=True)
class Measured:
    name: str
    rate: float
    """Deliveries per second, from release until all N arrived and were recorded."""
    cpu_ms: float
    """CPU ms per delivery of the system's own processes."""
    server_cpu_ms: float
    """CPU ms per delivery of PostgreSQL's processes (and Redis's, for Celery)."""
    latencies: list[float]
    """Submission → arrival at 200/s, ms."""

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    @property
    def total_cpu_ms(self) -> float:
        return self.cpu_ms + self.server_cpu_ms

    def line(self) -> str:
        p50, p95 = percentile(self.latencies, 50), percentile(self.latencies, 95)
        return (
            f"{self.name}: {self.rate:,.0f} deliveries/s, CPU {self.cpu_ms:.2f} ms/delivery "
            f"+ {self.server_cpu_ms:.2f} in the servers; at {RATE:g}/s p50 {p50:.1f} / "
            f"p95 {p95:.1f} / p99 {self.p99:.1f} ms"
        )


async def drained(
    receiver: str, *, before: int, count: int, recorded: Callable[[], Awaitable[int]]
) -> float:
    """Wait until the receiver has counted ``count`` more POSTs and ``recorded()`` reaches
    ``count``; answers that moment (``time.time()``)."""
    async with aiohttp.ClientSession() as http:

        async def done() -> bool:
            return await received(http, receiver) >= before + count and await recorded() >= count

        broken = f"{count} deliveries were not made in {DEADLINE[mode()]:g} s"
        await polled(done, seconds=DEADLINE[mode()], every=0.02, broken=broken)
    return time.time()


async def settled(receiver: str, wanted: set[str]) -> dict[str, float]:
    """P2's arrivals (``first_arrivals``), waited for as long as callbacks keep arriving (a
    system that fell behind drains its backlog), up to ``DEADLINE``."""
    deadline = time.monotonic() + DEADLINE[mode()]
    arrived: dict[str, float] = {}
    while True:
        before = len(arrived)
        arrived = await first_arrivals(receiver, wanted, settle=SETTLE_SECONDS)
        if len(arrived) in (len(wanted), before) or time.monotonic() > deadline:
            return arrived


async def paced_latency(
    receiver: str,
    send: Callable[[Phase, int], Awaitable[None]],
    *,
    seconds: float | None = None,
    warmup: float | None = None,
    pids: Sequence[int] = (),
) -> tuple[Phase, list[float]]:
    """P2's paced client: a warm-up, then ``send`` at 200/s for ``seconds`` (this mode's
    ``WARMUP`` and ``SECONDS`` unless given). Answers the measured phase, with the CPU the
    ``pids`` used per callback from its start until its last arrival (``cpu_ms``), and each
    callback's latency (ms)."""

    def phase_of(duration: float) -> Awaitable[Phase]:
        return paced(RATE, duration, send)

    return await steady(
        receiver,
        phase_of,
        seconds=SECONDS[mode()] if seconds is None else seconds,
        warmup=WARMUP[mode()] if warmup is None else warmup,
        name="alternative",
        pids=pids,
        settle=settled,
    )


def server_cpu(broker: int | None = None) -> float:
    """CPU seconds of PostgreSQL's processes, and of the broker's if given."""
    return postgres_cpu_seconds() + (cpu_seconds(broker) if broker else 0.0)


def worker_env(schema: str, **extra: str) -> dict[str, str]:
    """What an alternative's worker is told (``attempts.setting``): where to record, how to
    sign."""
    return {**os.environ, "P8_POSTGRES_URL": POSTGRES_URL, "P8_SCHEMA": schema,
            "P8_SECRET": generate_secret(), **extra}  # fmt: skip


@contextmanager
def worker(command: list[str], *, env: dict[str, str], log: Path) -> Iterator[int]:
    """An alternative's worker process, run from ``bench/alternatives``; yields its pid."""
    # Its module from this folder, ``alternatives.attempts`` from bench/.
    env = {**env, "PYTHONPATH": os.pathsep.join((str(ALTERNATIVES), str(BENCH)))}
    with child(command, env=env, log=log, cwd=ALTERNATIVES) as started:
        yield started.pid


async def until(ready: Callable[[], Awaitable[bool]], *, what: str, log: Path) -> None:
    """Wait until a worker is ``ready``: a minute, at most."""
    await polled(ready, seconds=60, every=0.1,
                 broken=lambda: f"{what} did not start:\n{log.read_text()[-3000:]}")  # fmt: skip


async def until_listening(admin: asyncpg.Connection, system: str, schema: str, log: Path) -> None:
    """Wait until a worker on PostgreSQL's ``LISTEN`` waits for its jobs."""

    async def ready() -> bool:
        listening = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
            "AND query ILIKE 'LISTEN%'",
            attempts.application_name(system, schema),
        )
        return bool(listening)

    await until(ready, what=f"the {system} worker", log=log)


async def drain(
    receiver: str,
    *,
    pids: Callable[[], Sequence[int]],
    recorded: Callable[[], Awaitable[int]],
    enqueue: Callable[[], Awaitable[None]] | None = None,
    consume: Callable[[], Awaitable[None]] | None = None,
    broker: int | None = None,
) -> tuple[float, float, float]:
    """Release ``COUNT`` callbacks, ``enqueue``d at once just before the clock starts or
    waiting until the worker starts to ``consume`` them, and wait until all arrived and were
    recorded; answers deliveries per second, and the CPU ms per delivery of ``pids()`` and of
    the servers."""
    count = COUNT[mode()]
    async with aiohttp.ClientSession() as http:
        before = await received(http, receiver)
    if enqueue is not None:
        await enqueue()
    own = pids()
    cpu, servers = sum(map(cpu_seconds, own)), server_cpu(broker)
    released = time.time()
    if consume is not None:
        await consume()
    ended = await drained(receiver, before=before, count=count, recorded=recorded)
    cpu, servers = sum(map(cpu_seconds, own)) - cpu, server_cpu(broker) - servers
    return count / (ended - released), cpu * 1000 / count, servers * 1000 / count


# runback ----------------------------------------------------------------------------------


async def runback_system(
    folder: Path, receiver: str, admin: asyncpg.Connection, *, postgres: bool
) -> Measured:
    """Drain N seeded deliveries with one dispatcher, then P2's paced runs."""
    count, hook = COUNT[mode()], f"{receiver}/hook"
    role, options = ("worker", ("--no-executor",)) if postgres else ("serve", ())
    async with database_in(folder, postgres=postgres, admin=admin) as database:
        async with database.open() as store:
            organization, _ = await backlog(store, count=count, callback_urls=[hook])
            now = datetime.now(UTC)
            key = await store.accounts.create_api_key([organization], now=now, label="p8")
            async with aiohttp.ClientSession() as http:
                before = await received(http, receiver)
            command = runback_command(role, folder, *options)
            with process(command, env=database.env(), log=folder / "drain.log") as runback:
                due = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
                await make_due(store, at=due)
                await asyncio.sleep((due - datetime.now(UTC)).total_seconds())
                cpu, servers = cpu_seconds(runback.pid), server_cpu()

                async def recorded() -> int:
                    return 0 if await unfinished(store) else await attempts_recorded(store)

                ended = await drained(receiver, before=before, count=count, recorded=recorded)
                cpu, servers = cpu_seconds(runback.pid) - cpu, server_cpu() - servers
                if not postgres:
                    servers = 0.0  # no server: PostgreSQL's CPU here is someone else's
                    latencies = await runs_latency(runback.url, key, receiver)
        if postgres:
            with deployment(database, folder, logs=folder) as (api, _):
                latencies = await runs_latency(api.url, key, receiver)
    elapsed = ended - due.timestamp()
    name = "runback worker (PostgreSQL)" if postgres else "runback serve (SQLite)"
    return Measured(name, count / elapsed, cpu * 1000 / count, servers * 1000 / count, latencies)


async def runs_latency(api: str, key: str, receiver: str) -> list[float]:
    """P2's measurement: ``runback/echo`` runs submitted at 200/s, submit → callback."""
    _, latencies = await measure_runs(
        api, key, receiver, rate=RATE, seconds=SECONDS[mode()], warmup=WARMUP[mode()],
        settle=settled,
    )  # fmt: skip
    return latencies


# the alternatives -------------------------------------------------------------------------


def task_kwargs(n: int, hook: str, organization: Any) -> tuple[str, dict[str, str]]:
    """A callback exactly as runback would send it: its run id and the task's arguments."""
    now = datetime.now(UTC)
    delivery = callback_delivery(
        finished_run(organization, n=n, callback_url=hook, now=now), now=now
    )
    arguments = {
        "delivery_id": str(delivery.id),
        "url": delivery.callback_url,
        "body": delivery.payload_bytes.decode(),
        "webhook_id": delivery.webhook_id,
    }
    return str(delivery.run_id), arguments


@asynccontextmanager
async def attempts_table(
    admin: asyncpg.Connection,
) -> AsyncIterator[tuple[str, Callable[[], Awaitable[int]]]]:
    """A fresh schema with an ``attempts`` table, dropped afterwards; yields its name and
    a counter of its rows."""
    async with fresh_schema(admin) as database:
        schema = str(database.schema)
        await admin.execute(f"SET search_path TO {schema}")
        await admin.execute(attempts.ATTEMPTS_DDL)
        await admin.execute("SET search_path TO DEFAULT")

        async def recorded() -> int:
            return int(await admin.fetchval(f"SELECT count(*) FROM {schema}.attempts"))

        yield schema, recorded


async def celery_system(
    folder: Path, receiver: str, admin: asyncpg.Connection, *, concurrency: int
) -> Measured:
    hook, organization = f"{receiver}/hook", new_id()
    command = [
        sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork",
        "--concurrency", str(concurrency), "--queues", "p8_hold", "--without-gossip",
        "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING",
    ]  # fmt: skip
    queue = attempts.QUEUE
    async with attempts_table(admin) as (schema, recorded):
        prefix = f"{schema}:"
        app = celery_app.make_app(REDIS_URL, key_prefix=prefix)
        env = worker_env(schema, P8_REDIS_URL=REDIS_URL, P8_KEY_PREFIX=prefix)
        log = folder / "celery.log"
        try:
            with worker(command, env=env, log=log) as pid:

                async def ready() -> bool:
                    return bool(app.control.ping(timeout=0.5))

                await until(ready, what="the Celery worker", log=log)
                for n in range(COUNT[mode()]):
                    app.send_task(
                        attempts.TASK, kwargs=task_kwargs(n, hook, organization)[1], queue=queue
                    )

                async def consume() -> None:
                    app.control.add_consumer(queue, reply=True, timeout=5, limit=1)

                rate, cpu_ms, servers_ms = await drain(
                    receiver, pids=lambda: with_children(pid), recorded=recorded, consume=consume,
                    broker=next(pids_named("redis-server"), None),
                )  # fmt: skip

                async def send(phase: Phase, n: int) -> None:
                    run_id, arguments = task_kwargs(n, hook, organization)
                    sent = time.time()
                    app.send_task(attempts.TASK, kwargs=arguments, queue=queue)
                    phase.sent[run_id] = sent

                _, latencies = await paced_latency(receiver, send)
        finally:
            app.close()
            keys = redis.Redis.from_url(REDIS_URL)
            for key in keys.scan_iter(match=f"{prefix}*"):
                keys.delete(key)
            keys.close()
    name = f"Celery (prefork x{concurrency}, Redis, acks_late)"
    return Measured(name, rate, cpu_ms, servers_ms, latencies)


async def procrastinate_system(
    folder: Path, receiver: str, admin: asyncpg.Connection, *, concurrency: int
) -> Measured:
    count, hook, organization = COUNT[mode()], f"{receiver}/hook", new_id()
    pool_size = concurrency + 4  # a fetch, a finish and an attempt per job, and the heartbeat
    command = [sys.executable, "-m", "procrastinate", "--app=procrastinate_app.app", "worker",
               "--queues", attempts.QUEUE, "--concurrency", str(concurrency)]  # fmt: skip
    async with attempts_table(admin) as (schema, recorded):
        env = worker_env(schema, P8_POOL_SIZE=str(pool_size))
        app = procrastinate_app.make_app(POSTGRES_URL, schema=schema, pool_size=4)
        await admin.execute(f"SET search_path TO {schema}")
        await admin.execute(SchemaManager.get_schema())  # procrastinate's own tables
        await admin.execute("SET search_path TO DEFAULT")
        log = folder / "procrastinate.log"
        async with app.open_async():
            deferrer = app.configure_task(attempts.TASK, queue=attempts.QUEUE)
            with worker(command, env=env, log=log) as pid:
                await until_listening(admin, procrastinate_app.SYSTEM, schema, log)
                jobs = [task_kwargs(n, hook, organization)[1] for n in range(count)]

                async def enqueue() -> None:
                    # One commit: all visible at once.
                    await deferrer.batch_defer_async(*jobs)  # type: ignore[arg-type]  # str is JSON

                rate, cpu_ms, servers_ms = await drain(
                    receiver, pids=lambda: [pid], recorded=recorded, enqueue=enqueue
                )

                async def send(phase: Phase, n: int) -> None:
                    run_id, arguments = task_kwargs(n, hook, organization)
                    sent = time.time()
                    await deferrer.defer_async(**arguments)
                    phase.sent[run_id] = sent

                _, latencies = await paced_latency(receiver, send)
    name = f"procrastinate (one worker, concurrency {concurrency})"
    return Measured(name, rate, cpu_ms, servers_ms, latencies)


def pgqueuer_name(batch_size: int, concurrency: int) -> str:
    return f"PgQueuer (one worker, batches of {batch_size}, {concurrency} in flight)"


@dataclass(frozen=True)
class PgQueuerWorker:
    """A PgQueuer worker waiting on a fresh schema, and the client side that feeds it."""

    pid: int
    queries: Queries
    """PgQueuer's queries on this process's own small pool (enqueueing)."""
    recorded: Callable[[], Awaitable[int]]
    """How many attempts its ``attempts`` table holds."""

    async def enqueue_all(self, jobs: list[dict[str, str]]) -> None:
        """Every job in one statement: one commit, all visible at once."""
        await self.queries.enqueue(
            [attempts.TASK] * len(jobs),
            [pgqueuer_app.payload(job) for job in jobs],
            [0] * len(jobs),
        )

    async def steady(
        self, receiver: str, *, seconds: float | None = None, warmup: float | None = None
    ) -> tuple[Phase, list[float]]:
        """P2's paced client enqueueing one job at a time at 200/s, enqueue → receipt; the
        worker's CPU per job in ``cpu_ms``."""
        hook, organization = f"{receiver}/hook", new_id()

        async def send(phase: Phase, n: int) -> None:
            run_id, arguments = task_kwargs(n, hook, organization)
            sent = time.time()
            await self.queries.enqueue(attempts.TASK, pgqueuer_app.payload(arguments))
            phase.acks.append(time.time() - sent)
            phase.sent[run_id] = sent

        return await paced_latency(receiver, send, seconds=seconds, warmup=warmup, pids=[self.pid])


@asynccontextmanager
async def pgqueuer_worker(
    folder: Path, admin: asyncpg.Connection, *, batch_size: int, concurrency: int
) -> AsyncIterator[PgQueuerWorker]:
    """PgQueuer's tables and ``attempts`` in a fresh schema, and its worker, yielded once it
    listens; the worker stopped and the schema dropped afterwards."""
    pool_size = concurrency + 4  # an attempt per job; the listener, dequeues, logs, heartbeats
    command = [sys.executable, "pgqueuer_app.py", "--batch-size", str(batch_size),
               "--max-concurrent-tasks", str(concurrency)]  # fmt: skip
    async with attempts_table(admin) as (schema, recorded):
        env = worker_env(schema, P8_POOL_SIZE=str(pool_size))
        await pgqueuer_app.install(admin, schema)
        log = folder / "pgqueuer.log"
        pool = await asyncpg.create_pool(POSTGRES_URL, min_size=4, max_size=4)
        try:
            with worker(command, env=env, log=log) as pid:
                await until_listening(admin, pgqueuer_app.SYSTEM, schema, log)
                client = pgqueuer_app.queries(AsyncpgPoolDriver(pool), schema)
                yield PgQueuerWorker(pid, client, recorded)
        finally:
            await pool.close()


async def pgqueuer_system(
    folder: Path, receiver: str, admin: asyncpg.Connection, *, batch_size: int, concurrency: int
) -> Measured:
    count, hook, organization = COUNT[mode()], f"{receiver}/hook", new_id()
    async with pgqueuer_worker(
        folder, admin, batch_size=batch_size, concurrency=concurrency
    ) as pgqueuer:
        jobs = [task_kwargs(n, hook, organization)[1] for n in range(count)]

        async def enqueue() -> None:
            await pgqueuer.enqueue_all(jobs)

        rate, cpu_ms, servers_ms = await drain(
            receiver, pids=lambda: [pgqueuer.pid], recorded=pgqueuer.recorded, enqueue=enqueue
        )
        _, latencies = await pgqueuer.steady(receiver)
    return Measured(pgqueuer_name(batch_size, concurrency), rate, cpu_ms, servers_ms, latencies)


async def pgqueuer_latency(
    folder: Path,
    receiver: str,
    *,
    seconds: float,
    warmup: float,
    batch_size: int = PGQUEUER_BATCH_SIZE,
    concurrency: int = PGQUEUER_CONCURRENCY,
) -> tuple[Phase, list[float]]:
    """PgQueuer's enqueue → receipt latencies (ms) at 200/s after a warm-up, and the measured
    phase (its worker's CPU per job in ``cpu_ms``): P2's baseline. Bounded by
    ``SYSTEM_DEADLINE``, as in P8."""
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        async with (
            asyncio.timeout(SYSTEM_DEADLINE[mode()]),
            pgqueuer_worker(
                folder, admin, batch_size=batch_size, concurrency=concurrency
            ) as pgqueuer,
        ):
            return await pgqueuer.steady(receiver, seconds=seconds, warmup=warmup)
    except TimeoutError:
        raise SystemExit(f"PgQueuer: not measured within {SYSTEM_DEADLINE[mode()]:g} s") from None
    finally:
        await admin.close()


# the rows ---------------------------------------------------------------------------------


def result(
    id_: str,
    what: str,
    runback: Measured,
    baseline: Measured,
    target: float,
    everyone: list[Measured],
) -> Result:
    others = [m for m in everyone if not m.name.startswith("runback")]
    ratio = runback.rate / baseline.rate
    lower_p99 = all(runback.p99 < m.p99 for m in others)
    less_cpu = all(runback.total_cpu_ms < m.total_cpu_ms for m in others)
    verdict = (
        f"ratio {ratio:.1f}x ({'holds' if ratio >= target else 'missed'}); p99 "
        f"{'lower' if lower_p99 else 'NOT lower'} than every alternative; CPU per delivery "
        f"(own processes + servers) {'lower' if less_cpu else 'NOT lower'} than every one"
    )
    return Result(
        id=id_,
        what=what,
        figure=runback.rate,
        unit="deliveries/s",
        baseline=baseline.rate,
        baseline_what=baseline.name,
        target=(
            f">= {target:g}x; lower p99 and CPU/delivery than Celery, procrastinate and PgQueuer"
        ),
        holds=ratio >= target and lower_p99 and less_cpu,
        notes=(
            f"{verdict}. {COUNT[mode()]:,} callbacks drained per system; latency at "
            f"{RATE:g}/s for {SECONDS[mode()]:g} s after a {WARMUP[mode()]:g} s warm-up. "
            + " ".join(f"{m.line()}." for m in everyone)
        ),
    )


SYSTEMS = ("sqlite", "postgres", "celery", "procrastinate", "pgqueuer")


async def measure(
    name: str, folder: Path, receiver: str, admin: asyncpg.Connection, arguments: argparse.Namespace
) -> Measured:
    if name == "celery":
        return await celery_system(
            folder, receiver, admin, concurrency=arguments.celery_concurrency
        )
    if name == "procrastinate":
        return await procrastinate_system(
            folder, receiver, admin, concurrency=arguments.procrastinate_concurrency
        )
    if name == "pgqueuer":
        return await pgqueuer_system(
            folder,
            receiver,
            admin,
            batch_size=arguments.pgqueuer_batch_size,
            concurrency=arguments.pgqueuer_concurrency,
        )
    return await runback_system(folder, receiver, admin, postgres=name == "postgres")


async def main(arguments: argparse.Namespace) -> None:
    print(f"P8 ({mode()}): {COUNT[mode()]:,} callbacks per drain", flush=True)
    measured: dict[str, Measured] = {}
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        with tempfile.TemporaryDirectory() as tmp, fast_receiver(Path(tmp)) as receiver:
            for name in arguments.only or SYSTEMS:
                folder = Path(tmp) / name
                folder.mkdir()
                try:
                    async with asyncio.timeout(SYSTEM_DEADLINE[mode()]):
                        measured[name] = await measure(name, folder, receiver, admin, arguments)
                except TimeoutError:
                    raise SystemExit(
                        f"{name}: not measured within {SYSTEM_DEADLINE[mode()]:g} s"
                    ) from None
                print(f"  {measured[name].line()}", flush=True)
    finally:
        await admin.close()
    if len(measured) < len(SYSTEMS):
        return  # a partial run (--only) measures, but writes no row
    everyone = list(measured.values())
    save(
        result(
            "P8",
            "deliveries/s, runback on SQLite vs a Celery task",
            measured["sqlite"],
            measured["celery"],
            8,
            everyone,
        )
    )
    save(
        result(
            "P8pg",
            "deliveries/s, runback on PostgreSQL vs a PgQueuer job",
            measured["postgres"],
            measured["pgqueuer"],
            2,
            everyone,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--celery-concurrency", type=int, default=CELERY_CONCURRENCY)
    parser.add_argument("--procrastinate-concurrency", type=int, default=PROCRASTINATE_CONCURRENCY)
    parser.add_argument("--pgqueuer-batch-size", type=int, default=PGQUEUER_BATCH_SIZE)
    parser.add_argument("--pgqueuer-concurrency", type=int, default=PGQUEUER_CONCURRENCY)
    parser.add_argument("--only", nargs="+", choices=SYSTEMS, help="measure these, write no row")
    uvloop.run(main(parser.parse_args()))
