"""P1: durable deliveries per second to a fast loopback receiver, beside a bare POST loop.

    RUNBACK_BENCH_MODE=quick .venv/bin/python bench/p1_deliveries.py

N finished runs with pending, signed (a current callback secret: ``Runflow-Signature`` and
``webhook-signature``) deliveries are written to the database first, not yet due. One
runback process starts (``runback serve`` on an SQLite data directory; ``runback worker
--no-executor`` on PostgreSQL), the deliveries are made due at a moment T a little ahead,
and the clock runs from T until the receiver (``bench/receiver.py``, its own process) has
counted N POSTs and the database holds N recorded attempts and no open delivery.

The baseline, measured right after each runback figure: a bare aiohttp loop in this process
POSTing the same N bodies to the same receiver, 256 in flight, no database. Also reported:
CPU milliseconds per delivery of the runback process (and of PostgreSQL's processes), read
from ``/proc`` before and after. A third row measures SQLite with ``synchronous=FULL``, the
setting that also survives a power loss.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import uvloop
from procstat import cpu_seconds, postgres_cpu_seconds
from seeding import attempts_recorded, backlog, make_due, unfinished

from support import (
    Result,
    arrivals,
    database_in,
    fast_receiver,
    mode,
    polled,
    process,
    profiled,
    received,
    runback_command,
    save,
)

COUNT = {"smoke": 500, "quick": 20_000, "full": 100_000}
IN_FLIGHT = 256
LEAD_SECONDS = 1.5
"""From making the deliveries due to their due time: the dispatcher polls at least every
second, so it has seen the new due time before it comes and wakes on it exactly."""
DEADLINE_SECONDS = 600


@dataclass(frozen=True)
class Measured:
    rate: float
    cpu_ms: float
    """CPU milliseconds per delivery of the runback process."""
    database_cpu_ms: float
    """CPU milliseconds per delivery of PostgreSQL's processes (0 on SQLite)."""
    first_ms: float
    """From the due time to the first arrival at the receiver."""


async def bare_loop(url: str, bodies: list[bytes]) -> tuple[float, float]:
    """POSTs per second of a bare aiohttp loop, and its CPU ms per POST."""
    pending = iter(bodies)
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def sender() -> None:
            for body in pending:
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"the receiver answered {response.status}")

        used = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    return len(bodies) / elapsed, cpu * 1000 / len(bodies)


async def runback_rate(
    folder: Path, receiver: str, *, count: int, postgres: bool, synchronous: str = "normal"
) -> tuple[Measured, list[bytes]]:
    """Deliveries per second of one runback process draining ``count`` due deliveries."""
    role, options = ("worker", ("--no-executor",)) if postgres else ("serve", ())
    # The same concurrency as the baseline: every delivery goes to one receiver, which the
    # default per-destination limit (16, to spare receivers) would make the bound.
    env = {"RUNBACK_MAX_IN_FLIGHT_PER_DESTINATION": str(IN_FLIGHT)}
    if not postgres:
        env["RUNBACK_SQLITE_SYNCHRONOUS"] = synchronous
    async with (
        database_in(folder, postgres=postgres) as database,
        database.open() as store,
        aiohttp.ClientSession() as http,
    ):
        _, bodies = await backlog(store, count=count, callback_urls=[f"{receiver}/hook"])
        before = await received(http, receiver)
        command = runback_command(role, folder, *options)
        with process(command, env=database.env(**env), log=folder / "runback.log") as runback:
            due = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
            await make_due(store, at=due)
            await asyncio.sleep((due - datetime.now(UTC)).total_seconds())
            with profiled(runback.pid, folder.name):
                cpu, database_cpu = cpu_seconds(runback.pid), postgres_cpu_seconds()
                deadline = time.monotonic() + DEADLINE_SECONDS

                async def all_received() -> bool:
                    return await received(http, receiver) >= before + count

                async def all_recorded() -> bool:
                    return not await unfinished(store)

                for ready, what in ((all_received, f"{count} deliveries"),
                                    (all_recorded, f"{count} attempts recorded")):  # fmt: skip
                    await polled(ready, seconds=deadline - time.monotonic(), every=0.01,
                                 broken=f"runback did not get to {what} in time")  # fmt: skip
                ended = time.time()
            cpu = cpu_seconds(runback.pid) - cpu
            database_cpu = postgres_cpu_seconds() - database_cpu
        got = await received(http, receiver) - before
        recorded = await attempts_recorded(store)
        if got != count or recorded != count:
            raise SystemExit(f"sent {got} and recorded {recorded} attempts of {count}")
        first = (await arrivals(http, receiver))[before][0]
    elapsed = ended - due.timestamp()
    measured = Measured(
        rate=count / elapsed,
        cpu_ms=cpu * 1000 / count,
        database_cpu_ms=database_cpu * 1000 / count if postgres else 0.0,
        first_ms=(first - due.timestamp()) * 1000,
    )
    return measured, bodies


def result(
    id: str, what: str, measured: Measured, bare: tuple[float, float], *, target: float, count: int
) -> Result:
    rate, bare_cpu = bare
    database = (
        f" + {measured.database_cpu_ms:.2f} ms in PostgreSQL" if measured.database_cpu_ms else ""
    )
    return Result(
        id=id,
        what=what,
        figure=measured.rate,
        unit="deliveries/s",
        baseline=rate,
        baseline_what=f"bare aiohttp POSTs/s, {IN_FLIGHT} in flight, no database",
        target=f">= {target}x",
        holds=measured.rate / rate >= target,
        notes=(
            f"{count:,} deliveries, {IN_FLIGHT} in flight; "
            f"CPU {measured.cpu_ms:.2f} ms/delivery in runback{database}; "
            f"the bare loop {bare_cpu:.2f} ms/POST; first arrival {measured.first_ms:.0f} ms "
            "after the due time"
        ),
    )


async def main() -> None:
    count = COUNT[mode()]
    rows = [
        ("P1", "durable deliveries/s, SQLite (runback serve)", False, "normal", 0.7),
        ("P1pg", "durable deliveries/s, PostgreSQL (runback worker)", True, "normal", 0.5),
        ("P1full", "durable deliveries/s, SQLite synchronous=FULL (power loss)", False, "full",
         0.7),
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, fast_receiver(Path(tmp)) as receiver:
        for id, what, postgres, synchronous, target in rows:
            folder = Path(tmp) / id
            folder.mkdir()
            measured, bodies = await runback_rate(
                folder, receiver, count=count, postgres=postgres, synchronous=synchronous
            )
            bare = await bare_loop(f"{receiver}/hook", bodies)
            save(result(id, what, measured, bare, target=target, count=count))
            print(f"  {measured}", file=sys.stderr)


if __name__ == "__main__":
    uvloop.run(main())
