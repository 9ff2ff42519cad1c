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
``runback serve``, ``runback api`` + ``runback worker``. The client is ``bench/client.py``,
which P3, P4 and P8 use too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable
from contextlib import ExitStack
from pathlib import Path

import uvloop
from client import WARMUP, Phase, bare_posts, describe, measure_runs, percentile, steady

from support import Database, Result, deployed, fast_receiver, in_turn, mode, save

RATE = 200.0
SECONDS = {"smoke": 3.0, "quick": 15.0, "full": 60.0}
TARGET_RATIO = 1.0
"""runback's p95 over PgQueuer's, at most."""
ROWS = (
    ("P2", "SQLite (runback serve)", "runback serve (SQLite)", "one process"),
    ("P2pg", "PostgreSQL (api + worker)", "runback api + worker (PostgreSQL)",
     "one api and one worker process"),
)  # fmt: skip
"""Per database: the row's id, what it measured, the line's name, the processes."""


def result(
    id_: str, what: str, runs: list[float], baseline: list[float], baseline_what: str, notes: str
) -> Result:
    """runback's p95 beside PgQueuer's (``baseline``), both at ``RATE`` in this run."""
    p95, baseline_p95 = percentile(runs, 95), percentile(baseline, 95)
    return Result(
        id=id_,
        what=f"submit → callback latency at {RATE:g} runs/s, {what}",
        figure=p95,
        unit="ms p95",
        baseline=baseline_p95,
        baseline_what=f"{baseline_what}: enqueue → callback received at {RATE:g}/s, p95",
        target=f"<= {TARGET_RATIO:.1f}x",
        holds=p95 <= TARGET_RATIO * baseline_p95,
        notes=notes,
    )


def baselines(folder: Path, receiver: str) -> tuple[list[float], str, str]:
    """PgQueuer's latencies and name, and the notes' account of both baselines (PgQueuer,
    and a bare POST of the callback body)."""
    seconds, warmup = SECONDS[mode()], WARMUP[mode()]

    def bare(duration: float) -> Awaitable[Phase]:
        return bare_posts(receiver, rate=RATE, seconds=duration)

    phase, posts = uvloop.run(
        steady(receiver, bare, seconds=seconds, warmup=warmup, name="baseline")
    )
    bare_line = describe("bare POST (no queue)", phase, posts)

    # p8_alternatives imports this module: imported here, once this one is loaded.
    from p8_alternatives import (
        PGQUEUER_BATCH_SIZE,
        PGQUEUER_CONCURRENCY,
        pgqueuer_latency,
        pgqueuer_name,
    )

    pgqueuer_what = pgqueuer_name(PGQUEUER_BATCH_SIZE, PGQUEUER_CONCURRENCY)
    phase, pgqueuer = uvloop.run(pgqueuer_latency(folder, receiver, seconds=seconds, warmup=warmup))
    pgqueuer_line = describe(
        f"baseline: {pgqueuer_what}", phase, pgqueuer, cpu="worker CPU {:.2f} ms per job"
    )
    return pgqueuer, pgqueuer_what, f"{pgqueuer_line}. {bare_line}"


def runback_latency(database: Database, data_dir: Path, receiver: str) -> tuple[Phase, list[float]]:
    """P2's paced runs through one deployment on ``database``."""
    with deployed(database, data_dir, logs=data_dir.parent) as (api, key, pids):
        return uvloop.run(
            measure_runs(api.url, key, receiver, rate=RATE, seconds=SECONDS[mode()],
                         warmup=WARMUP[mode()], pids=pids)
        )  # fmt: skip


def main() -> None:
    seconds, warmup = SECONDS[mode()], WARMUP[mode()]
    print(f"P2 ({mode()}): {RATE:g}/s for {seconds:g} s per phase after {warmup:g} s warm-up")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        receiver = stack.enter_context(fast_receiver(folder))
        pgqueuer, pgqueuer_what, both = baselines(folder, receiver)
        for (database, data_dir), (id_, what, name, processes) in zip(
            in_turn(folder), ROWS, strict=True
        ):
            phase, runs = runback_latency(database, data_dir, receiver)
            line = describe(name, phase, runs)
            notes = f"{line}. {both}. Defaults; {processes}."
            save(result(id_, what, runs, pgqueuer, pgqueuer_what, notes))


if __name__ == "__main__":
    main()
