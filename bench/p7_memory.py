"""P7: memory of a runback process working through a large backlog, beside the idle process.

    RUNBACK_BENCH_MODE=quick .venv/bin/python bench/p7_memory.py

One runback process starts on an empty database (``runback serve`` on SQLite; ``runback
worker``, executor and dispatcher, on PostgreSQL in a fresh schema dropped afterwards). Its
resident memory (``VmRSS``, ``bench/procstat.py``) is sampled every ``SAMPLE_SECONDS``
from then on: the idle figure is the median over ``IDLE_SECONDS`` after a warm-up (a few
``/healthz`` and ``/readyz`` requests, then a pause).

Then N succeeded runs with pending deliveries are written (``bench/seeding.py``), not yet
due, and made due all at once. They go to a slow receiver (``bench/blackhole.py``): it
answers ``200`` after ``SLOW_SECONDS``, on ``PORTS`` ports, so that with runback's default
16 attempts per destination the dispatcher keeps all of its 256 slots busy, each attempt a
signed request held open, and most of the backlog stays pending while it works. The figure:
the peak RSS over ``LOADED_SECONDS`` of that, minus the idle RSS. Quick mode uses N =
30,000; full mode the issue's 100,000.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import uvloop
from blackhole import SlowReceiver, slow_receiver
from procstat import cpu_seconds, rss_mb
from seeding import backlog, make_due, unfinished

from support import Database, Result, in_turn, mode, process, runback_command, save

COUNT = {"smoke": 2_000, "quick": 30_000, "full": 100_000}
LOADED_SECONDS = {"smoke": 4.0, "quick": 20.0, "full": 60.0}
"""How long the RSS is watched once the backlog is due."""
IDLE_SECONDS = {"smoke": 1.0, "quick": 3.0, "full": 5.0}
WARMUP_SECONDS = 2.0
SAMPLE_SECONDS = 0.1
SLOW_SECONDS = 1.0
PORTS = 20
"""Destinations: 20 of them, 16 attempts each, more than the dispatcher's 256 slots."""
TARGET_MB = 100.0
ROWS = (("P7", "serve", "SQLite"), ("P7pg", "worker", "PostgreSQL"))
"""Per database: the row's id, the runback process measured, the database."""


@dataclass
class Sampler:
    """RSS of one process every ``SAMPLE_SECONDS``, in a thread, as (monotonic time, MiB)."""

    pid: int
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                self.samples.append((time.monotonic(), rss_mb(self.pid)))
            except (OSError, RuntimeError):
                return  # the process ended

    def between(self, start: float, end: float) -> list[float]:
        return [mb for at, mb in self.samples if start <= at <= end]

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Measured:
    idle: float
    peak: float
    lines: list[str]


async def warm_up(base: str) -> None:
    """A few requests, so the idle figure is that of a process that has answered some."""
    async with aiohttp.ClientSession() as http:
        for _ in range(10):
            for path in ("/healthz", "/readyz"):
                async with http.get(f"{base}{path}") as response:
                    await response.read()


async def load(
    base: str,
    *,
    database: Database,
    sampler: Sampler,
    receivers: list[str],
    counts: SlowReceiver,
    pid: int,
    name: str,
) -> Measured:
    await warm_up(base)
    await asyncio.sleep(WARMUP_SECONDS)
    idle_from = time.monotonic()
    await asyncio.sleep(IDLE_SECONDS[mode()])
    idle_samples = sampler.between(idle_from, time.monotonic())
    if not idle_samples:
        raise SystemExit("no RSS sample of the idle process")
    idle = statistics.median(idle_samples)
    print(f"{name}: idle RSS {idle:.1f} MiB ({len(idle_samples)} samples)", flush=True)

    count = COUNT[mode()]
    async with database.open() as store:
        started = time.perf_counter()
        await backlog(store, count=count, callback_urls=[f"{r}/hook" for r in receivers])
        seeded_in = time.perf_counter() - started
        after_seeding = sampler.samples[-1][1] if sampler.samples else idle
        cpu = cpu_seconds(pid)
        await make_due(store, at=datetime.now(UTC))
        loaded_from = time.monotonic()
        await asyncio.sleep(LOADED_SECONDS[mode()])
        loaded_to = time.monotonic()
        cpu = cpu_seconds(pid) - cpu
        left = await unfinished(store)
    loaded = sampler.between(loaded_from, loaded_to)
    if not loaded:
        raise SystemExit("no RSS sample of the loaded process")
    if counts.answered == 0:
        raise SystemExit("runback delivered nothing to the slow receiver")
    peak = max(loaded)
    quarters = [loaded[min(len(loaded) - 1, len(loaded) * q // 4)] for q in (1, 2, 3, 4)]
    lines = [
        f"{name}: idle {idle:.1f} MiB; {count:,} deliveries seeded (not due) in "
        f"{seeded_in:.1f} s, RSS then {after_seeding:.1f} MiB; made due: peak {peak:.1f} MiB "
        f"over {LOADED_SECONDS[mode()]:g} s ({len(loaded)} samples; at each quarter "
        + " / ".join(f"{mb:.1f}" for mb in quarters)
        + f" MiB); {counts.answered:,} delivered meanwhile, at most {counts.peak_waiting} "
        f"in flight at the receivers, {left:,} still open at the end; runback CPU "
        f"{cpu:.1f} s"
    ]
    print(lines[0], flush=True)
    return Measured(idle=idle, peak=peak, lines=lines)


def measured_process(role: str, database: Database, data_dir: Path, *, name: str) -> Measured:
    """``runback <role>`` on ``database``: idle, then loaded, its RSS sampled throughout."""
    with ExitStack() as stack:
        # Entered first, left last: runback stops while the receivers still answer.
        receivers, counts = stack.enter_context(slow_receiver(delay=SLOW_SECONDS, ports=PORTS))
        runback = stack.enter_context(
            process(runback_command(role, data_dir), env=database.env(),
                    log=data_dir / "runback.log")
        )  # fmt: skip
        sampler = Sampler(runback.pid)
        thread = threading.Thread(target=sampler.run, name="rss", daemon=True)
        thread.start()
        stack.callback(thread.join, 5)
        stack.callback(sampler.stop)
        return uvloop.run(
            load(runback.url, database=database, sampler=sampler, receivers=receivers,
                 counts=counts, pid=runback.pid, name=name)
        )  # fmt: skip


def result(id_: str, what: str, measured: Measured, count: int) -> Result:
    growth = measured.peak - measured.idle
    quick = (
        f" {mode().capitalize()} mode: {count:,}, not the issue's 100,000."
        if count < 100_000
        else ""
    )
    return Result(
        id=id_,
        what=what,
        figure=growth,
        unit="MiB over idle",
        baseline=measured.idle,
        baseline_what="RSS of the idle process (MiB)",
        target=f"<= +{TARGET_MB:g} MB",
        holds=growth <= TARGET_MB,
        notes=(
            ". ".join(measured.lines)
            + f". Slow receiver: 200 after {SLOW_SECONDS:g} s on {PORTS} ports (destinations); "
            f"RSS sampled every {SAMPLE_SECONDS * 1000:.0f} ms; runback defaults.{quick}"
        ),
    )


def main() -> int:
    count = COUNT[mode()]
    print(f"P7 ({mode()}): RSS idle, then with {count:,} deliveries due", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for (database, data_dir), (id_, role, what) in zip(in_turn(Path(tmp)), ROWS, strict=True):
            name = f"runback {role} ({what})"
            measured = measured_process(role, database, data_dir, name=name)
            save(
                result(
                    id_, f"RSS growth of runback {role} with {count:,} pending, {what}", measured,
                    count,
                )
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
