"""P3: the receiver, ``runback receive``: verified and durably persisted callbacks per second,
and the ack latency at a steady 1,000 requests/s.

    RUNBACK_BENCH_MODE=quick .venv/bin/python bench/p3_receiver.py  # 2,000 callbacks, 3 s
    RUNBACK_BENCH_MODE=smoke .venv/bin/python bench/p3_receiver.py  # 200 callbacks, 0.5 s
    RUNBACK_BENCH_MODE=full .venv/bin/python bench/p3_receiver.py   # 30,000 callbacks, 30 s

Every request is a callback as runback sends it: a run-completed body, a unique
``webhook-id``, both signatures (Standard Webhooks and ``Runflow-Signature``), signed just
before its phase starts (the receiver accepts timestamps up to 5 minutes old). ``runback
receive`` verifies each, persists it and only then answers ``200``; the run checks afterwards
that every acknowledged callback is in the inbox. Three set-ups, each its own receiver:

* ``P3`` / ``P3ack``: SQLite, WAL with ``synchronous=NORMAL`` (the default: it survives
  SIGKILL);
* ``P3full``: SQLite with ``synchronous=FULL`` (``RUNBACK_SQLITE_SYNCHRONOUS=full``: it also
  survives a power loss);
* ``P3pg``: PostgreSQL, a fresh schema (``RUNBACK_DATABASE_URL`` and
  ``RUNBACK_DATABASE_SCHEMA``) dropped afterwards.

Each set-up gets a warm-up, then a flood at concurrency 64 (callbacks/s, and the receiver's
CPU per callback, plus PostgreSQL's on ``P3pg``), then a paced phase at 1,000 requests/s
(P2's client: absolute send times) whose send → answer times give the ack percentiles.

The baseline, measured right before each set-up: a bare Starlette route that reads the body
and answers ``200`` on the same server stack (uvicorn with httptools and uvloop, one process),
started from this file (``--baseline-server``), given the same phases.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import uvloop
from client import Phase, callback_body, paced, percentile, summary
from procstat import cpu_seconds, postgres_cpu_seconds

from runback.core.signing import generate_secret, signature_headers
from support import (
    POSTGRES_URL,
    Result,
    baseline_server,
    count_rows,
    database_in,
    mode,
    process,
    profiled,
    runback_command,
    save,
    serve_bare_route,
)

CALLBACKS = {"smoke": 200, "quick": 2_000, "full": 30_000}
"""Callbacks of the flood phase."""
ACK_SECONDS = {"smoke": 0.5, "quick": 3.0, "full": 30.0}
WARMUP = {"smoke": 50, "quick": 300, "full": 1_000}
DEADLINE_SECONDS = {"smoke": 120.0, "quick": 300.0, "full": 1_800.0}
"""How long one set-up's phases may take before the run counts as broken."""
ACK_RATE = 1_000.0
CONCURRENCY = 64
ACK_CONNECTIONS = 256
"""The paced client's connection pool: ample at 1,000/s unless the server falls behind."""
TARGET_RATIO = 0.5
TARGET_ACK_P99_MS = 5.0

Request = tuple[bytes, dict[str, str]]


def signed_requests(secret: str, count: int) -> list[Request]:
    """``count`` callbacks signed the way runback signs them, each with its own id."""
    now = int(time.time())
    made = []
    for n in range(count):
        body = callback_body(str(uuid.uuid4()), n)
        headers = signature_headers(
            body=body, msg_id=f"msg_{uuid.uuid4().hex}", timestamp=now, current=secret,
            active=[secret],
        )  # fmt: skip
        made.append((body, headers | {"Content-Type": "application/json"}))
    return made


@dataclass
class Outcome:
    rate: float = 0.0
    """Requests per second of the flood."""
    cpu_ms: float = 0.0
    """CPU (ms) of the server process per request, during the flood."""
    database_cpu_ms: float = 0.0
    """CPU (ms) of PostgreSQL's processes per request, during the flood (P3pg only)."""
    acks_ms: list[float] = field(default_factory=list)
    """Send → answer of each paced request."""
    ack_rate: float = 0.0
    """Answers per second the paced phase achieved."""
    lag_ms: float = 0.0
    requests: int = 0
    """Requests answered 200 in all (warm-up, flood, paced)."""

    @property
    def p99(self) -> float:
        return percentile(self.acks_ms, 99)


def check(url: str, status: int, answer: bytes) -> None:
    """Anything but a fresh ``200`` is a broken run, not a slow one."""
    if status != 200 or (answer and orjson.loads(answer).get("duplicate")):
        raise SystemExit(f"{url}: {status} {answer[:300]!r}")


async def flood(url: str, requests: list[Request], pid: int, *, postgres: bool) -> Outcome:
    """All ``requests`` POSTed ``CONCURRENCY`` at a time: requests per second, and CPU."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as http:
        pending = iter(requests)

        async def lane() -> None:
            for body, headers in pending:
                async with http.post(url, data=body, headers=headers) as response:
                    check(url, response.status, await response.read())

        cpu, database = cpu_seconds(pid), postgres_cpu_seconds() if postgres else 0.0
        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu
        database = postgres_cpu_seconds() - database if postgres else 0.0
    count = len(requests)
    return Outcome(
        rate=count / elapsed,
        cpu_ms=cpu * 1000 / count,
        database_cpu_ms=database * 1000 / count,
        requests=count,
    )


async def ack_latency(url: str, requests: list[Request], seconds: float) -> Outcome:
    """The requests at a steady ``ACK_RATE``: the time from send to answer of each."""
    acks: list[float] = []
    connector = aiohttp.TCPConnector(limit=ACK_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def send(_phase: Phase, n: int) -> None:
            body, headers = requests[n]
            sent = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as response:
                answer = await response.read()
            acks.append((time.perf_counter() - sent) * 1000)
            check(url, response.status, answer)

        phase = await paced(ACK_RATE, seconds, send)
    return Outcome(
        acks_ms=acks,
        ack_rate=len(acks) / phase.elapsed,
        lag_ms=phase.lag * 1000,
        requests=len(acks),
    )


async def measure(url: str, pid: int, secret: str, *, name: str, postgres: bool = False) -> Outcome:
    """Warm-up, flood, paced phase, each with freshly signed requests, within a deadline."""
    seconds, deadline = ACK_SECONDS[mode()], DEADLINE_SECONDS[mode()]
    try:
        async with asyncio.timeout(deadline):
            warm = await flood(url, signed_requests(secret, WARMUP[mode()]), pid, postgres=False)
            with profiled(pid, name):
                outcome = await flood(
                    url, signed_requests(secret, CALLBACKS[mode()]), pid, postgres=postgres
                )
            steady = signed_requests(secret, round(ACK_RATE * seconds))
            acked = await ack_latency(url, steady, seconds)
    except TimeoutError:
        raise SystemExit(f"{url}: the phases did not end within {deadline:g} s") from None
    outcome.acks_ms, outcome.ack_rate, outcome.lag_ms = acked.acks_ms, acked.ack_rate, acked.lag_ms
    outcome.requests += warm.requests + acked.requests
    return outcome


def describe(name: str, outcome: Outcome) -> str:
    database = (
        f" + {outcome.database_cpu_ms:.2f} ms in PostgreSQL" if outcome.database_cpu_ms else ""
    )
    line = (
        f"{name}: {outcome.rate:,.0f}/s at concurrency {CONCURRENCY}, CPU "
        f"{outcome.cpu_ms:.2f} ms per request{database}; at {ACK_RATE:,.0f}/s "
        f"({outcome.ack_rate:,.0f}/s answered) ack {summary(outcome.acks_ms)}, "
        f"client lag max {outcome.lag_ms:.1f} ms"
    )
    print(line, flush=True)
    return line


def saturated(outcome: Outcome) -> str:
    """A warning for the notes when the server could not keep up with the paced phase."""
    if outcome.ack_rate >= 0.95 * ACK_RATE:
        return ""
    return (
        f"The receiver answered only {outcome.ack_rate:,.0f} of {ACK_RATE:,.0f} requests/s: "
        f"saturated, its ack times are queueing and grow with the phase "
        f"({ACK_SECONDS[mode()]:g} s). "
    )


@dataclass(frozen=True)
class Setup:
    id: str
    what: str
    synchronous: str = "normal"
    postgres: bool = False


SETUPS = (
    Setup("P3", "SQLite, synchronous=NORMAL (survives SIGKILL)"),
    Setup("P3full", "SQLite, synchronous=FULL (survives a power loss)", synchronous="full"),
    Setup("P3pg", "PostgreSQL (a fresh schema)", postgres=True),
)


async def receiver_run(setup: Setup, folder: Path, secret: str) -> tuple[Outcome, int, str]:
    """One ``runback receive`` measured; answers the outcome, the events in its inbox
    afterwards, and its command line."""
    data = folder / setup.id
    extra: dict[str, str] = {}
    if setup.postgres:
        how = f"RUNBACK_DATABASE_URL={POSTGRES_URL} RUNBACK_DATABASE_SCHEMA=<fresh schema>"
    else:
        extra["RUNBACK_SQLITE_SYNCHRONOUS"] = setup.synchronous
        how = f"RUNBACK_SQLITE_SYNCHRONOUS={setup.synchronous}"
    command = runback_command("receive", data, "--secret", secret)
    async with database_in(data, postgres=setup.postgres) as database:
        env = database.env(**extra)
        with process(command, env=env, log=folder / f"{setup.id}.log") as receive:
            outcome = await measure(f"{receive.url}/webhooks/bench", receive.pid, secret,
                                    name=setup.id, postgres=setup.postgres)  # fmt: skip
        stored = await count_rows(database, "inbox_events")
    return outcome, stored, f"{how} runback receive --secret <one secret>"


def rows(setup: Setup, runback: Outcome, bare: Outcome, notes: str) -> list[Result]:
    made = [
        Result(
            id=setup.id,
            what=f"runback receive: verified and durably persisted callbacks/s, {setup.what}",
            figure=runback.rate,
            unit="callbacks/s",
            baseline=bare.rate,
            baseline_what=(
                f"bare Starlette route answering 200 (uvicorn + httptools + uvloop), "
                f"concurrency {CONCURRENCY}"
            ),
            target=f">= {TARGET_RATIO:g}x baseline",
            holds=runback.rate >= TARGET_RATIO * bare.rate,
            notes=notes,
        )
    ]
    if setup.id == "P3":
        made.append(
            Result(
                id="P3ack",
                what=f"runback receive: ack latency p99 at {ACK_RATE:,.0f} requests/s, SQLite",
                figure=runback.p99,
                unit="ms p99",
                baseline=bare.p99,
                baseline_what="the bare Starlette route at the same rate, p99",
                target=f"p99 <= {TARGET_ACK_P99_MS:g} ms",
                holds=runback.p99 <= TARGET_ACK_P99_MS,
                notes=notes,
            )
        )
    return made


async def main() -> None:
    seconds = ACK_SECONDS[mode()]
    total = WARMUP[mode()] + CALLBACKS[mode()] + round(ACK_RATE * seconds)
    print(
        f"P3 ({mode()}): {CALLBACKS[mode()]:,} callbacks at concurrency {CONCURRENCY}, then "
        f"{ACK_RATE:,.0f}/s for {seconds:g} s; {total:,} requests per server",
        flush=True,
    )
    secret = generate_secret()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        base = stack.enter_context(baseline_server(__file__, folder / "baseline.log"))
        for setup in SETUPS:
            bare = await measure(f"{base.url}/webhooks/bench", base.pid, secret, name="P3-bare")
            bare_line = describe("  baseline (bare Starlette route)", bare)
            runback, stored, how = await receiver_run(setup, folder, secret)
            line = describe(f"  runback receive, {setup.what}", runback)
            if stored != runback.requests:
                raise SystemExit(
                    f"{setup.id}: the inbox holds {stored} events, not the "
                    f"{runback.requests} acknowledged"
                )
            notes = (
                f"{line.strip()}. {bare_line.strip()}. {saturated(runback)}{how}; "
                f"all {stored:,} acknowledged "
                f"callbacks found in its inbox afterwards. CPU is the receiver process's "
                f"(and on PostgreSQL every postgres process on the machine) during the "
                f"flood, per callback."
            )
            for result in rows(setup, runback, bare, notes):
                save(result)


if __name__ == "__main__":
    if sys.argv[1:] == ["--baseline-server"]:
        serve_bare_route("/webhooks/{source}", status=200)
    else:
        uvloop.run(main())
