"""P2: submit → callback received latency at a steady 200 runs/s, on SQLite and PostgreSQL,
beside PgQueuer's enqueue → callback received latency at the same rate.

    .venv/bin/python bench/p2_latency.py                        # quick: 15 s per phase
    RUNBACK_BENCH_MODE=full .venv/bin/python bench/p2_latency.py  # 60 s per phase
    RUNBACK_BENCH_MODE=smoke .venv/bin/python bench/p2_latency.py # 3 s: proves it runs

A paced client (absolute send times, so a slow answer never delays the next send) submits
``runback/echo`` runs whose ``callback_url`` is the fast receiver (``bench/receiver.py``, its
own process). A run's latency is the receiver's arrival time minus the moment the client sent
its ``POST``: both ``time.time()`` on this machine. Each phase has a warm-up first.

The baseline, in the same run, is PgQueuer (``bench/alternatives/pgqueuer_app.py``, measured
by P8's ``pgqueuer_latency``): the same client enqueues one job per callback at the same rate
(a runback callback's bytes as its payload) into PgQueuer's tables in a fresh schema, and
one PgQueuer worker (asyncpg; batches of 8, 16 jobs in flight) signs, POSTs and records
each attempt as runback does; its latency is enqueue → arrival. The target is runback's p95
at most PgQueuer's (``<= 1.0x``), for ``runback serve`` on SQLite (``P2``) and for one
``runback api`` + one ``runback worker`` on PostgreSQL (``P2pg``, a fresh schema dropped
afterwards). runback's figure covers more than PgQueuer's (the API's submission and the run
before the delivery). The notes also give a bare POST of a callback-shaped body straight to
the receiver at the same rate (one hop, no queue, no database), the CPU per run of the
runback processes (``utime + stime``, from the measured phase's start until its last
callback arrived) and that of the PgQueuer worker per job. Phases: bare POST, PgQueuer,
``runback serve``, ``runback api`` + ``runback worker``. P4 (``p4_isolation.py``) reuses
the client below.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import uvloop

from support import (
    POSTGRES_URL,
    RUNBACK,
    Result,
    base_env,
    fast_receiver,
    mode,
    new_schema_name,
    postgres_env,
    process,
    save,
)

RATE = 200.0
SECONDS = {"smoke": 3.0, "quick": 15.0, "full": 60.0}
WARMUP = {"smoke": 0.5, "quick": 2.0, "full": 5.0}
SETTLE_SECONDS = 30.0
"""How long the last callbacks may take to arrive before the run counts as broken."""
TARGET_RATIO = 1.0
"""runback's p95 over PgQueuer's, at most."""
COMMAND = "RUNBACK_BENCH_MODE={mode} .venv/bin/python bench/p2_latency.py"


@dataclass
class Phase:
    """What one paced phase sent: the send time of each run (by id), and the answers."""

    sent: dict[str, float] = field(default_factory=dict)
    acks: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lag: float = 0.0
    """The client's worst lateness against its schedule, in seconds."""
    elapsed: float = 0.0
    cpu_ms: float | None = None
    """CPU (ms, the runback processes) per run, where measured."""


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolated."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 10) - 1]


def summary(values_ms: list[float]) -> str:
    return (
        f"p50 {percentile(values_ms, 50):.2f} / p95 {percentile(values_ms, 95):.2f} / "
        f"p99 {percentile(values_ms, 99):.2f} ms (n={len(values_ms)})"
    )


async def paced(rate: float, seconds: float, send: Callable[[int], Awaitable[None]]) -> Phase:
    """Call ``send(i)`` at ``rate`` per second for ``seconds``, each as its own task started
    at its absolute due time; wait for all of them."""
    phase = Phase()
    count = round(rate * seconds)
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter() + 0.05
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            phase.lag = max(phase.lag, -delay)
        tasks.append(asyncio.create_task(send(i)))
    await asyncio.gather(*tasks)
    phase.elapsed = time.perf_counter() - start
    return phase


def callback_body(run_id: str, n: int) -> bytes:
    """A body shaped like runback's callback about an ended ``runback/echo`` run."""
    now = "2026-01-01T00:00:00.000000+00:00"
    return orjson.dumps(
        {
            "event": "run.completed",
            "run_id": run_id,
            "status": "succeeded",
            "output": {"n": n},
            "duration_ms": 1,
            "created_at": now,
            "completed_at": now,
            "metadata": None,
        }
    )


async def bare_posts(receiver: str, *, rate: float, seconds: float) -> Phase:
    """The baseline: the callback body POSTed straight to the receiver at ``rate``."""
    async with aiohttp.ClientSession() as http:
        phase = Phase()

        async def send(n: int) -> None:
            run_id = str(uuid.uuid4())
            body = callback_body(run_id, n)
            sent = time.time()
            async with http.post(
                f"{receiver}/hook", data=body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
            phase.acks.append(time.time() - sent)
            phase.sent[run_id] = sent
            if response.status != 200:
                phase.failures.append(f"{response.status}")

        done = await paced(rate, seconds, send)
        phase.lag, phase.elapsed = done.lag, done.elapsed
        return phase


async def submit_runs(
    api: str, key: str, callback_url: str, *, rate: float, seconds: float
) -> Phase:
    """``runback/echo`` runs with ``callback_url`` submitted at ``rate``."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    url = f"{api}/v1/models/runback/echo/runs"
    async with aiohttp.ClientSession(headers=headers) as http:
        phase = Phase()

        async def send(n: int) -> None:
            body = orjson.dumps({"input": {"n": n}, "callback_url": callback_url})
            sent = time.time()
            async with http.post(url, data=body) as response:
                answer = await response.read()
            phase.acks.append(time.time() - sent)
            if response.status != 201:
                phase.failures.append(f"{response.status} {answer[:200]!r}")
                return
            phase.sent[orjson.loads(answer)["id"]] = sent

        done = await paced(rate, seconds, send)
        phase.lag, phase.elapsed = done.lag, done.elapsed
        return phase


async def arrivals(receiver: str, wanted: set[str], *, settle: float) -> dict[str, float]:
    """The first arrival time of each wanted run id at the receiver, waiting up to
    ``settle`` seconds for the last ones."""
    deadline = time.monotonic() + settle
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{receiver}/arrivals") as response:
                listed = orjson.loads(await response.read())
            first: dict[str, float] = {}
            for at, run_id in listed:
                if run_id in wanted and run_id not in first:
                    first[run_id] = at
            if len(first) == len(wanted) or time.monotonic() > deadline:
                return first
            await asyncio.sleep(0.2)


def latencies_ms(phase: Phase, arrived: dict[str, float]) -> list[float]:
    return [(arrived[run_id] - sent) * 1000 for run_id, sent in phase.sent.items()]


def check(name: str, phase: Phase, arrived: dict[str, float]) -> None:
    """A run that lost callbacks or got errors is broken, not slow: stop."""
    missing = len(phase.sent) - len(arrived)
    if phase.failures or missing:
        raise SystemExit(
            f"{name}: {len(phase.failures)} failed submissions "
            f"({phase.failures[:3]}), {missing} callbacks missing after {SETTLE_SECONDS:g} s"
        )


async def measure_runs(
    api: str,
    key: str,
    receiver: str,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    pids: list[int],
) -> tuple[Phase, list[float]]:
    """A warm-up, then the measured paced phase; its submit → callback latencies (ms), and
    the CPU the ``pids`` used per run (``phase.cpu_ms``)."""
    hook = f"{receiver}/hook"
    await submit_runs(api, key, hook, rate=rate, seconds=warmup)
    cpu = sum(cpu_seconds(pid) for pid in pids)
    phase = await submit_runs(api, key, hook, rate=rate, seconds=seconds)
    arrived = await arrivals(receiver, set(phase.sent), settle=SETTLE_SECONDS)
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu
    check(api, phase, arrived)
    phase.cpu_ms = cpu * 1000 / max(len(phase.sent), 1)
    return phase, latencies_ms(phase, arrived)


async def measure_bare(
    receiver: str, *, rate: float, seconds: float, warmup: float
) -> tuple[Phase, list[float]]:
    await bare_posts(receiver, rate=rate, seconds=warmup)
    phase = await bare_posts(receiver, rate=rate, seconds=seconds)
    arrived = await arrivals(receiver, set(phase.sent), settle=SETTLE_SECONDS)
    check("baseline", phase, arrived)
    return phase, latencies_ms(phase, arrived)


def child_pid(*arguments: str) -> int:
    """The pid of this process's child whose command line has all of ``arguments``."""
    for listing in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        for pid in listing.read_text().split():
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            if all(argument in command for argument in arguments):
                return int(pid)
    raise SystemExit(f"no child process runs {' '.join(arguments)}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create_key(folder: Path, env: dict[str, str]) -> str:
    made = subprocess.run(
        [*RUNBACK, "keys", "create", "--data-dir", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip().splitlines()[-1]


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema for one benchmark, dropped afterwards."""
    schema = new_schema_name()

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    uvloop.run(execute(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        uvloop.run(execute(f"DROP SCHEMA {schema} CASCADE"))


def describe(
    name: str, phase: Phase, latencies: list[float], *, cpu: str = "runback CPU {:.2f} ms per run"
) -> str:
    acks = [a * 1000 for a in phase.acks]
    line = (
        f"{name}: {summary(latencies)}; {len(phase.sent) / phase.elapsed:.0f}/s sent, "
        f"client lag max {phase.lag * 1000:.1f} ms; answer {summary(acks)}"
    )
    if phase.cpu_ms is not None:
        line += "; " + cpu.format(phase.cpu_ms)
    print(line, flush=True)
    return line


def result(
    id_: str, what: str, runs: list[float], baseline: list[float], baseline_what: str, notes: str
) -> Result:
    """runback's p95 beside PgQueuer's (``baseline``), both at ``RATE`` in this run."""
    p95, baseline_p95 = percentile(runs, 95), percentile(baseline, 95)
    return Result(
        id=id_,
        what=what,
        figure=p95,
        unit="ms p95",
        baseline=baseline_p95,
        baseline_what=f"{baseline_what}: enqueue → callback received at {RATE:g}/s, p95",
        target=f"<= {TARGET_RATIO:.1f}x",
        holds=p95 <= TARGET_RATIO * baseline_p95,
        mode=mode(),
        command=COMMAND.format(mode=mode()),
        notes=notes,
    )


def main() -> None:
    seconds, warmup = SECONDS[mode()], WARMUP[mode()]
    paced_at = {"rate": RATE, "seconds": seconds, "warmup": warmup}
    print(f"P2 ({mode()}): {RATE:g}/s for {seconds:g} s per phase after {warmup:g} s warm-up")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        receiver = stack.enter_context(fast_receiver(folder))

        phase, bare = uvloop.run(measure_bare(receiver, **paced_at))
        bare_line = describe("bare POST (no queue)", phase, bare)

        # p8_alternatives imports this module: imported here, once this one is loaded.
        from p8_alternatives import (
            PGQUEUER_BATCH_SIZE,
            PGQUEUER_CONCURRENCY,
            pgqueuer_latency,
            pgqueuer_name,
        )

        pgqueuer_what = pgqueuer_name(PGQUEUER_BATCH_SIZE, PGQUEUER_CONCURRENCY)
        phase, pgqueuer = uvloop.run(
            pgqueuer_latency(folder, receiver, seconds=seconds, warmup=warmup)
        )
        pgqueuer_line = describe(
            f"baseline: {pgqueuer_what}", phase, pgqueuer, cpu="worker CPU {:.2f} ms per job"
        )
        baselines = f"{pgqueuer_line}. {bare_line}"

        lite = folder / "sqlite"
        env = base_env()
        key = create_key(lite, env)
        with process(
            [*RUNBACK, "serve", "--port", "0", "--data-dir", str(lite)],
            env=env,
            log=folder / "serve.log",
        ) as api:
            pids = [child_pid("serve", str(lite))]
            phase, runs = uvloop.run(measure_runs(api, key, receiver, **paced_at, pids=pids))
        line = describe("runback serve (SQLite)", phase, runs)
        save(
            result(
                "P2",
                f"submit → callback latency at {RATE:g} runs/s, SQLite (runback serve)",
                runs,
                pgqueuer,
                pgqueuer_what,
                f"{line}. {baselines}. Defaults; one process.",
            )
        )

        schema = stack.enter_context(postgres_schema())
        env = postgres_env(schema)
        pg = folder / "pg"
        key = create_key(pg, env)
        api_command = [*RUNBACK, "api", "--port", "0", "--data-dir", str(pg)]
        worker_command = [*RUNBACK, "worker", "--port", "0", "--data-dir", str(pg)]
        with (
            process(api_command, env=env, log=folder / "api.log") as api,
            process(worker_command, env=env, log=folder / "worker.log"),
        ):
            pids = [child_pid("api", str(pg)), child_pid("worker", str(pg))]
            phase, runs = uvloop.run(measure_runs(api, key, receiver, **paced_at, pids=pids))
        line = describe("runback api + worker (PostgreSQL)", phase, runs)
        save(
            result(
                "P2pg",
                f"submit → callback latency at {RATE:g} runs/s, PostgreSQL (api + worker)",
                runs,
                pgqueuer,
                pgqueuer_what,
                f"{line}. {baselines}. Defaults; one api and one worker process.",
            )
        )


if __name__ == "__main__":
    sys.exit(main())
