"""The benchmarks' paced client (P2's; P3, P4 and P8 use it too) and the latencies it reads.

A paced phase starts each send at its absolute due time, so a slow answer never delays the
next one. A callback's latency is the fast receiver's arrival time (``bench/receiver.py``)
minus the moment the client sent what caused it: both ``time.time()`` on this machine.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import orjson
from procstat import cpu_seconds

from support import arrivals

WARMUP = {"smoke": 0.5, "quick": 2.0, "full": 5.0}
"""Seconds of paced sending before each measured phase."""
SETTLE_SECONDS = 30.0
"""How long the last callbacks may take to arrive before the run counts as broken."""
MODEL = "runback/echo"


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
    """CPU (ms, the processes measured) per run, where measured."""


Send = Callable[[Phase, int], Awaitable[None]]
"""Sends item ``n`` of a phase, noting in the phase what it sent."""
Settle = Callable[[str, set[str]], Awaitable[dict[str, float]]]
"""Waits for the wanted run ids at a receiver; answers the first arrival of each."""


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolated."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 10) - 1]


def summary(values_ms: list[float]) -> str:
    return (
        f"p50 {percentile(values_ms, 50):.2f} / p95 {percentile(values_ms, 95):.2f} / "
        f"p99 {percentile(values_ms, 99):.2f} ms (n={len(values_ms)})"
    )


async def paced(rate: float, seconds: float, send: Send) -> Phase:
    """Call ``send(phase, i)`` at ``rate`` per second for ``seconds``, each as its own task
    started at its absolute due time; wait for all of them."""
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
        tasks.append(asyncio.ensure_future(send(phase, i)))
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

        async def send(phase: Phase, n: int) -> None:
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

        return await paced(rate, seconds, send)


def submission(api: str, key: str) -> tuple[str, dict[str, str]]:
    """Where a ``runback/echo`` run is submitted, and the headers it takes."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return f"{api}/v1/models/{MODEL}/runs", headers


async def submit_runs(
    api: str, key: str, callback_url: str, *, rate: float, seconds: float
) -> Phase:
    """``runback/echo`` runs with ``callback_url`` submitted at ``rate``."""
    url, headers = submission(api, key)
    async with aiohttp.ClientSession(headers=headers) as http:

        async def send(phase: Phase, n: int) -> None:
            body = orjson.dumps({"input": {"n": n}, "callback_url": callback_url})
            sent = time.time()
            async with http.post(url, data=body) as response:
                answer = await response.read()
            phase.acks.append(time.time() - sent)
            if response.status != 201:
                phase.failures.append(f"{response.status} {answer[:200]!r}")
                return
            phase.sent[orjson.loads(answer)["id"]] = sent

        return await paced(rate, seconds, send)


async def first_arrivals(
    receiver: str, wanted: set[str], *, settle: float = SETTLE_SECONDS
) -> dict[str, float]:
    """The first arrival time of each wanted run id at the receiver, waiting up to
    ``settle`` seconds for the last ones."""
    deadline = time.monotonic() + settle
    async with aiohttp.ClientSession() as http:
        while True:
            first: dict[str, float] = {}
            for at, run_id in await arrivals(http, receiver):
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


async def steady(
    receiver: str,
    phase_of: Callable[[float], Awaitable[Phase]],
    *,
    seconds: float,
    warmup: float,
    name: str,
    pids: Sequence[int] = (),
    settle: Settle = first_arrivals,
) -> tuple[Phase, list[float]]:
    """A warm-up, then the measured phase (``phase_of(seconds)``); its latencies (ms) once
    its callbacks arrived, and, given ``pids``, the CPU they used per run from its start
    until then (``phase.cpu_ms``)."""
    await phase_of(warmup)
    cpu = sum(map(cpu_seconds, pids))
    phase = await phase_of(seconds)
    arrived = await settle(receiver, set(phase.sent))
    if pids:
        phase.cpu_ms = (sum(map(cpu_seconds, pids)) - cpu) * 1000 / max(len(phase.sent), 1)
    check(name, phase, arrived)
    return phase, latencies_ms(phase, arrived)


async def measure_runs(
    api: str,
    key: str,
    receiver: str,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    pids: Sequence[int] = (),
    settle: Settle = first_arrivals,
) -> tuple[Phase, list[float]]:
    """``steady`` submitting ``runback/echo`` runs at ``rate``: submit → callback."""

    def phase_of(duration: float) -> Awaitable[Phase]:
        return submit_runs(api, key, f"{receiver}/hook", rate=rate, seconds=duration)

    return await steady(
        receiver, phase_of, seconds=seconds, warmup=warmup, name=api, pids=pids, settle=settle
    )


def describe(
    name: str, phase: Phase, latencies: list[float], *, cpu: str = "runback CPU {:.2f} ms per run"
) -> str:
    """Print and answer one line about a paced phase."""
    acks = [a * 1000 for a in phase.acks]
    line = (
        f"{name}: {summary(latencies)}; {len(phase.sent) / phase.elapsed:.0f}/s sent, "
        f"client lag max {phase.lag * 1000:.1f} ms; answer {summary(acks)}"
    )
    if phase.cpu_ms is not None:
        line += "; " + cpu.format(phase.cpu_ms)
    print(line, flush=True)
    return line
