"""P4: a healthy destination's callback latency while a dead one holds a backlog, beside the
same without it.

    RUNBACK_BENCH_MODE=quick .venv/bin/python bench/p4_isolation.py

P2's paced client (``bench/p2_latency.py``) submits ``runback/echo`` runs at a steady
``RATE`` whose ``callback_url`` is the fast receiver (``bench/receiver.py``, its own
process); a run's latency is from the client sending its ``POST`` to the receiver getting
the callback. Three paced phases in one runback deployment, one after the other:

1. the baseline: nothing else is pending;
2. ``BACKLOG`` succeeded runs with pending deliveries, all due at once, to a blackhole
   (``bench/blackhole.py``: a listener on another port of 127.0.0.1, hence another
   destination, that accepts connections and never answers) are written to the database
   (``bench/seeding.py``); once the dispatcher holds attempts open on the blackhole, the
   paced phase runs again;
3. the blackhole's deliveries still pending are marked failed, and the baseline runs again.

Figure: the healthy destination's p99 in phase 2; baseline: its p99 over phases 1 and 3
together (they bracket phase 2, so a change in the load other work puts on this machine
weighs on both sides). Every setting is runback's default (attempt timeout 10 s, 16 attempts
per destination, breaker after 5 failures), so the blackhole holds its 16 slots for 10 s
before its circuit opens; only ``RUNBACK_SHUTDOWN_GRACE`` is cut to 2 s, so that stopping a
process with attempts on the blackhole takes 2 s and not 10 (teardown only). ``RATE`` (50/s,
P2 uses 200/s) is below what one deployment sustains on this shared 2-core machine, so the
p99 shows the dead destination's cost rather than a queue. Also reported: the runback
processes' CPU per run in each phase, and when the blackhole got its connections. On
SQLite: ``runback serve``; on PostgreSQL (a fresh schema, dropped afterwards): one
``runback api`` and one ``runback worker``. Writes ``P4`` and ``P4pg``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvloop
from blackhole import Blackhole, blackhole
from client import WARMUP, Phase, describe, measure_runs, percentile
from procstat import cpu_seconds
from seeding import backlog
from sqlalchemy import update

from runback.core.destinations import destination_of
from runback.core.states import DeliveryStatus
from runback.store.schema import deliveries
from support import (
    Database,
    Result,
    deployed,
    fast_receiver,
    in_turn,
    mode,
    polled,
    save,
)

RATE = 50.0
"""Runs per second submitted in each phase."""
SECONDS = {"smoke": 1.0, "quick": 10.0, "full": 40.0}
BACKLOG = {"smoke": 1_000, "quick": 10_000, "full": 10_000}
"""Pending deliveries to the blackhole."""
PER_DESTINATION = 16
"""runback's default ``RUNBACK_MAX_IN_FLIGHT_PER_DESTINATION``: what the blackhole holds."""
HOLD_DEADLINE = 30.0
"""How long the dispatcher may take to reach the blackhole before the run counts as broken."""
TARGET = 1.2
ROWS = (
    ("P4", "SQLite", "runback serve (SQLite)"),
    ("P4pg", "PostgreSQL", "runback api + worker (PostgreSQL)"),
)
"""Per database: the row's id, the database, the deployment."""


@dataclass
class Measured:
    """Both phases of one database."""

    baseline: list[float]
    loaded: list[float]
    lines: list[str]
    """What ``describe`` printed for each phase, and the blackhole's account."""


async def seed_backlog(database: Database, hole: str, count: int) -> float:
    """``count`` succeeded runs with deliveries to ``hole`` due now; answers the seconds
    the seeding took."""
    started = time.perf_counter()
    async with database.open() as store:
        await backlog(store, count=count, callback_urls=[f"{hole}/hook"], due_in=timedelta(0))
    return time.perf_counter() - started


async def held(hole: Blackhole, at_least: int) -> float:
    """Wait until the blackhole holds ``at_least`` connections; answers how long it took."""

    async def holds() -> bool:
        return hole.held >= at_least

    return await polled(
        holds,
        seconds=HOLD_DEADLINE,
        every=0.05,
        broken=lambda: (
            f"the dispatcher opened {hole.held} connections to the blackhole, not "
            f"{at_least}, in {HOLD_DEADLINE:g} s"
        ),
    )


async def retire_backlog(database: Database, hole: str) -> int:
    """Take the blackhole's pending deliveries out of the dispatcher's way (marked
    ``failed``, as if exhausted); answers how many."""
    async with database.open() as store, store.database.write() as conn:
        now = datetime.now(UTC)
        done = await conn.execute(
            update(deliveries)
            .where(
                deliveries.c.destination == destination_of(hole),
                deliveries.c.status == DeliveryStatus.PENDING.value,
            )
            .values(
                status=DeliveryStatus.FAILED.value,
                failure_detail="retired by bench/p4_isolation.py",
                next_attempt_at=None,
                completed_at=now,
                updated_at=now,
            )
        )
        return int(done.rowcount)


async def three_phases(
    api: str,
    key: str,
    receiver: str,
    *,
    database: Database,
    hole_url: str,
    hole: Blackhole,
    pids: list[int],
    name: str,
) -> Measured:
    """Baseline, backlog, baseline again: the two baselines bracket the loaded phase, so a
    change in what else runs on this machine weighs on both sides."""
    seconds, warmup = SECONDS[mode()], WARMUP[mode()]

    async def paced() -> tuple[Phase, list[float]]:
        return await measure_runs(
            api, key, receiver, rate=RATE, seconds=seconds, warmup=warmup, pids=pids
        )

    phase, before = await paced()
    lines = [describe(f"{name}, baseline before (no backlog)", phase, before)]

    count = BACKLOG[mode()]
    since = time.monotonic()
    cpu = sum(cpu_seconds(pid) for pid in pids)
    seeded_in = await seed_backlog(database, hole_url, count)
    waited = await held(hole, PER_DESTINATION)
    cpu = sum(cpu_seconds(pid) for pid in pids) - cpu
    print(
        f"{name}: {count:,} deliveries to the blackhole seeded in {seeded_in:.1f} s; it held "
        f"{hole.held} connections {waited:.1f} s later (runback CPU meanwhile "
        f"{cpu * 1000:.0f} ms)",
        flush=True,
    )
    phase, loaded = await paced()
    lines.append(describe(f"{name}, {count:,} pending to a blackhole", phase, loaded))
    waves = ", ".join(f"{n} at +{at:.1f} s" for at, n in hole.waves(since))
    left = await retire_backlog(database, hole_url)
    lines.append(
        f"blackhole: {hole.accepted} connections accepted ({waves} after the seeding began), "
        f"at most {hole.peak_held} held at once, {hole.refused} refused; {left:,} of its "
        f"{count:,} deliveries still pending at the end of the phase, then marked failed"
    )
    print(lines[-1], flush=True)

    phase, after = await paced()
    lines.append(describe(f"{name}, baseline after (backlog marked failed)", phase, after))
    return Measured(before + after, loaded, lines)


def result(id_: str, what: str, measured: Measured) -> Result:
    figure, baseline = percentile(measured.loaded, 99), percentile(measured.baseline, 99)
    return Result(
        id=id_,
        what=what,
        figure=figure,
        unit="ms p99",
        baseline=baseline,
        baseline_what="the same, same deployment, before and after the backlog (p99 of both)",
        target=f"<= {TARGET}x",
        holds=figure <= TARGET * baseline,
        notes=(
            ". ".join(measured.lines)
            + f". {RATE:g} runs/s for {SECONDS[mode()]:g} s per phase after "
            f"{WARMUP[mode()]:g} s warm-up; runback defaults (attempt timeout 10 s, "
            f"{PER_DESTINATION} per destination, breaker after 5 failures) but "
            "RUNBACK_SHUTDOWN_GRACE=2 (teardown only)."
        ),
    )


def row(id_: str, what: str, name: str, database: Database, folder: Path, receiver: str) -> Result:
    """One deployment on ``database`` (its data in ``folder``) through the three phases."""
    with ExitStack() as stack:
        api, key, pids = stack.enter_context(
            deployed(database, folder, logs=folder.parent, RUNBACK_SHUTDOWN_GRACE="2")
        )
        # Entered last, left first: the held sockets close before runback stops.
        (hole_url,), hole = stack.enter_context(blackhole())
        measured = uvloop.run(
            three_phases(api.url, key, receiver, database=database, hole_url=hole_url, hole=hole,
                         pids=pids, name=name)
        )  # fmt: skip
    return result(id_, f"healthy destination's p99 beside a blackholed backlog, {what}", measured)


def main() -> int:
    print(
        f"P4 ({mode()}): {RATE:g} runs/s to a fast receiver, before and with "
        f"{BACKLOG[mode()]:,} deliveries pending to a blackhole",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp, fast_receiver(Path(tmp)) as receiver:
        for (database, data_dir), (id_, what, name) in zip(in_turn(Path(tmp)), ROWS, strict=True):
            save(row(id_, what, name, database, data_dir, receiver))
    return 0


if __name__ == "__main__":
    sys.exit(main())
