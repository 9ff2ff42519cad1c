"""What every benchmark shares: processes on loopback, databases, a fast receiver, results on disk.

Each benchmark is a script ``bench/pN_*.py`` that measures its figure *and its baseline in
the same run*, prints both with their ratio, and writes ``bench/results/PN.json`` (a
``Result``); ``bench/run.py`` runs them all and rewrites the table in
``docs/benchmarks.md``. A benchmark exits non-zero only when the run itself broke, never
for a missed target.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import orjson
import uvloop

from runback.store import DATABASE_FILE, Store, open_store, sqlite_url

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# ``bench/run.py --results-dir`` (a test) points this elsewhere, so a smoke run never
# overwrites the real results.
RESULTS = Path(os.environ.get("RUNBACK_BENCH_RESULTS") or BENCH / "results")
POSTGRES_URL = os.environ.get("RUNBACK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
RUNBACK = [sys.executable, "-m", "runback"]
MODES = ("quick", "full", "smoke")
START_SECONDS = 60.0
"""How long a process may take to say it serves before the run counts as broken."""
STOP_SECONDS = 30.0
_SERVING = re.compile(r"runback (?:serving|receiving at) (http://[^\s/]+)")


# --- modes and results ---------------------------------------------------------------------


def mode() -> str:
    """``quick`` (``make bench``), ``full`` (``make bench-full``) or ``smoke`` (a tiny run
    that only proves a script works, for the test suite)."""
    chosen = os.environ.get("RUNBACK_BENCH_MODE", "quick")
    if chosen not in MODES:
        raise SystemExit(f"RUNBACK_BENCH_MODE={chosen!r}: use one of {', '.join(MODES)}")
    return chosen


def command() -> str:
    """The command that reruns the running benchmark script in this mode."""
    return f"RUNBACK_BENCH_MODE={mode()} .venv/bin/python bench/{Path(sys.argv[0]).name}"


@dataclass(frozen=True)
class Result:
    """One row of the benchmarks table."""

    id: str
    what: str
    figure: float
    unit: str
    baseline: float | None
    baseline_what: str
    target: str
    holds: bool | None
    mode: str = field(default_factory=mode)
    command: str = field(default_factory=command)
    notes: str = ""
    series: dict[str, list[float]] | None = None
    """Optional plot data: named series of numbers (one named ``x`` or ``x: <label>`` is the
    others' x axis); ``bench/run.py`` draws them into ``docs/benchmarks/<id>.png``."""

    @property
    def ratio(self) -> float | None:
        if not self.baseline:
            return None
        return self.figure / self.baseline


def save(result: Result) -> None:
    """Print a result and write it for the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    ratio = f"{result.ratio:.2f}x" if result.ratio is not None else "-"
    print(
        f"{result.id} {result.what}: {result.figure:,.1f} {result.unit} "
        f"(baseline {result.baseline_what}: {result.baseline or 0:,.1f}; ratio {ratio}; "
        f"target {result.target}: {'holds' if result.holds else 'missed'})"
    )
    (RESULTS / f"{result.id}.json").write_text(json.dumps(asdict(result), indent=2))


# --- waiting -------------------------------------------------------------------------------


Broken = str | Callable[[], str]
"""Why a wait that ran out broke the run (a callable: said as it ran out)."""


def _said(broken: Broken) -> str:
    return broken if isinstance(broken, str) else broken()


def waited(ready: Callable[[], bool], *, seconds: float, every: float, broken: Broken) -> None:
    """Wait until ``ready()``; past ``seconds`` the run is broken."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(_said(broken))
        time.sleep(every)


async def polled(
    ready: Callable[[], Awaitable[bool]],
    *,
    seconds: float,
    every: float,
    broken: Broken,
) -> float:
    """Wait until ``ready()`` without blocking the loop; answers how long it took. Past
    ``seconds`` the run is broken."""
    started = time.monotonic()
    while not await ready():
        if time.monotonic() - started > seconds:
            raise SystemExit(_said(broken))
        await asyncio.sleep(every)
    return time.monotonic() - started


# --- processes -----------------------------------------------------------------------------


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a runback process under measurement, with ``extra`` on top."""
    # api and worker processes need a public URL and one files directory: no benchmark
    # fetches an output, and they all run on this host.
    return {**os.environ, "RUNBACK_LOG_LEVEL": "warning", "RUNBACK_CALLBACK_ALLOW": "127.0.0.0/8",
            "RUNBACK_PUBLIC_URL": "http://127.0.0.1:8000", "RUNBACK_FILES_SHARED": "true",
            **extra}  # fmt: skip


def runback_command(role: str, data_dir: Path, *options: str) -> list[str]:
    """``runback <role>`` on ``data_dir``, on a free port."""
    return [*RUNBACK, role, *options, "--port", "0", "--data-dir", str(data_dir)]


@contextmanager
def child(
    command: list[str], *, env: dict[str, str], log: Path | None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process of this benchmark (its output in ``log``, else in ours), stopped on exit:
    SIGTERM, then SIGKILL if it outlives ``STOP_SECONDS``."""
    if log is None:
        started = subprocess.Popen(command, env=env, cwd=cwd)
    else:
        with log.open("wb") as handle:
            started = subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd
            )
    try:
        yield started
    finally:
        started.terminate()
        try:
            started.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait()


@dataclass(frozen=True)
class Running:
    """A server this benchmark started: where it serves, and its pid (for its CPU)."""

    url: str
    pid: int


@contextmanager
def process(command: list[str], *, env: dict[str, str], log: Path) -> Iterator[Running]:
    """A ``runback`` process, yielded once it says where it serves."""
    found: list[str] = []

    def broken() -> str:
        return f"{' '.join(command)} did not start:\n{log.read_text()}"

    def serving() -> bool:
        found.extend(match.group(1) for match in _SERVING.finditer(log.read_text()))
        if not found and started.poll() is not None:
            raise SystemExit(broken())
        return bool(found)

    with child(command, env=env, log=log) as started:
        waited(serving, seconds=START_SECONDS, every=0.05, broken=broken)
        yield Running(found[0], started.pid)


@contextmanager
def deployment(
    database: Database, data_dir: Path, *, logs: Path, **extra_env: str
) -> Iterator[tuple[Running, list[int]]]:
    """runback as a user deploys it on ``database``: ``runback serve`` on SQLite; one
    ``runback api`` and one ``runback worker`` on PostgreSQL. Yields the API, and the pids
    of every runback process."""
    env = database.env(**extra_env)
    if not database.postgres:
        with process(runback_command("serve", data_dir), env=env, log=logs / "serve.log") as api:
            yield api, [api.pid]
        return
    with (
        process(runback_command("api", data_dir), env=env, log=logs / "api.log") as api,
        process(runback_command("worker", data_dir), env=env, log=logs / "worker.log") as worker,
    ):
        yield api, [api.pid, worker.pid]


@contextmanager
def deployed(
    database: Database, data_dir: Path, *, logs: Path, **extra_env: str
) -> Iterator[tuple[Running, str, list[int]]]:
    """A ``deployment`` with an API key made first (for a benchmark with no loop running
    yet): yields the API, the key and the pids."""
    key = uvloop.run(api_key(database))
    with deployment(database, data_dir, logs=logs, **extra_env) as (api, pids):
        yield api, key, pids


@contextmanager
def baseline_server(script: str, log: Path) -> Iterator[Running]:
    """``script --baseline-server`` (its ``serve_bare_route``), yielded once it serves."""
    with process([sys.executable, script, "--baseline-server"], env=base_env(), log=log) as bare:
        yield bare


def serve_bare_route(path: str, *, status: int, body: bytes = b"") -> None:
    """A baseline server: one Starlette route that reads the body and answers ``status``,
    on the server stack runback uses (uvicorn, httptools, uvloop); runs until killed."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from runback.http_server import bind, url_of

    async def answer(request: Request) -> Response:
        await request.body()
        return Response(body, status_code=status, media_type="application/json" if body else None)

    app = Starlette(routes=[Route(path, answer, methods=["POST"])])
    sock = bind("127.0.0.1", 0)
    # support.process waits for this line (it reads runback's own start-up line).
    print(f"runback serving {url_of(sock)} (the bare Starlette baseline)", flush=True)
    config = uvicorn.Config(app, http="httptools", loop="uvloop", lifespan="off",
                            log_config=None, access_log=False, server_header=False)  # fmt: skip
    uvloop.run(uvicorn.Server(config).serve(sockets=[sock]))


@contextmanager
def profiled(pid: int, name: str) -> Iterator[None]:
    """With ``RUNBACK_BENCH_PROFILE=<dir>``, py-spy samples process ``pid`` for the block
    (collapsed stacks in ``<dir>/<name>.txt``, for finding the hot paths); otherwise nothing."""
    into = os.environ.get("RUNBACK_BENCH_PROFILE")
    if not into:
        yield
        return
    out = Path(into) / f"{name}.txt"
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
    spy = subprocess.Popen(
        [*command, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)


# --- the fast receiver ---------------------------------------------------------------------


@contextmanager
def fast_receiver(folder: Path) -> Iterator[str]:
    """``bench/receiver.py`` in its own process; yields its base URL."""
    port_file = folder / "receiver.port"
    with child([sys.executable, str(BENCH / "receiver.py"), str(port_file)], env={**os.environ},
               log=None) as started:  # fmt: skip

        def listening() -> bool:
            if started.poll() is not None:
                raise SystemExit("the fast receiver did not start")
            return port_file.exists() and bool(port_file.read_text())

        waited(listening, seconds=30, every=0.02, broken="the fast receiver did not start")
        yield f"http://127.0.0.1:{port_file.read_text()}"


async def received(http: aiohttp.ClientSession, receiver: str) -> int:
    """How many POSTs the fast receiver has counted."""
    async with http.get(f"{receiver}/count") as response:
        count: int = (await response.json())["count"]
        return count


async def arrivals(http: aiohttp.ClientSession, receiver: str) -> list[tuple[float, str]]:
    """Every POST the fast receiver got: its arrival time (``time.time()``) and ``run_id``."""
    async with http.get(f"{receiver}/arrivals") as response:
        listed: list[tuple[float, str]] = orjson.loads(await response.read())
    return listed


# --- databases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """Where a runback under measurement keeps its data: an SQLite file (in its data
    directory, where ``runback`` finds it), or a schema of ``POSTGRES_URL``."""

    file: Path | None = None
    schema: str | None = None

    @classmethod
    def sqlite(cls, data_dir: Path) -> Database:
        """The SQLite file of ``data_dir`` (made, if it is not there)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(file=data_dir / DATABASE_FILE)

    @property
    def postgres(self) -> bool:
        return self.file is None

    @property
    def url(self) -> str:
        return POSTGRES_URL if self.file is None else sqlite_url(self.file)

    def env(self, **extra: str) -> dict[str, str]:
        """``base_env`` of a runback process on this database."""
        if self.schema is None:
            return base_env(**extra)
        return base_env(RUNBACK_DATABASE_URL=POSTGRES_URL, RUNBACK_DATABASE_SCHEMA=self.schema,
                        **extra)  # fmt: skip

    def open(self, **options: Any) -> AbstractAsyncContextManager[Store]:
        """The store on this database, in this process (migrated on open)."""
        return open_store(self.url, schema=self.schema, **options)

    def __str__(self) -> str:
        return str(self.file) if self.file is not None else f"schema {self.schema}"


def new_schema_name() -> str:
    return f"bench_{uuid.uuid4().hex[:10]}"


async def postgres_admin(*statements: str) -> None:
    """Run ``statements`` on ``POSTGRES_URL``, on a connection of their own."""
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@asynccontextmanager
async def fresh_schema(admin: asyncpg.Connection | None = None) -> AsyncIterator[Database]:
    """A fresh PostgreSQL schema for one benchmark, dropped afterwards (through ``admin``,
    where the caller holds a connection)."""
    schema = new_schema_name()
    create, drop = f"CREATE SCHEMA {schema}", f"DROP SCHEMA IF EXISTS {schema} CASCADE"
    await (admin.execute(create) if admin is not None else postgres_admin(create))
    try:
        yield Database(schema=schema)
    finally:
        await (admin.execute(drop) if admin is not None else postgres_admin(drop))


@contextmanager
def postgres_schema() -> Iterator[Database]:
    """``fresh_schema`` for a benchmark whose loops come and go (one ``uvloop.run`` each)."""
    schema = new_schema_name()
    uvloop.run(postgres_admin(f"CREATE SCHEMA {schema}"))
    try:
        yield Database(schema=schema)
    finally:
        uvloop.run(postgres_admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


def in_turn(folder: Path) -> Iterator[tuple[Database, Path]]:
    """runback's two databases, one after the other, each with its data directory: SQLite
    in ``folder/sqlite``, then a fresh PostgreSQL schema (``folder/pg``), dropped once the
    loop over them ends."""
    lite, pg = folder / "sqlite", folder / "pg"
    pg.mkdir(parents=True, exist_ok=True)
    yield Database.sqlite(lite), lite
    with postgres_schema() as database:
        yield database, pg


@asynccontextmanager
async def database_in(
    data_dir: Path, *, postgres: bool, admin: asyncpg.Connection | None = None
) -> AsyncIterator[Database]:
    """A fresh schema (dropped afterwards) or the SQLite file of ``data_dir``."""
    if not postgres:
        yield Database.sqlite(data_dir)
        return
    async with fresh_schema(admin) as database:
        yield database


async def migrated(database: Database) -> UUID:
    """Migrate a fresh runback database in this process (quicker than a ``runback``
    command); answers its default organization's id."""
    async with database.open() as store:
        organization, _ = await store.accounts.ensure_default_organization(now=datetime.now(UTC))
    return organization.id


async def api_key(database: Database, *, label: str = "bench") -> str:
    """A new API key of the default organization (what ``runback keys create`` does,
    without starting another Python process)."""
    async with database.open() as store:
        now = datetime.now(UTC)
        organization, _ = await store.accounts.ensure_default_organization(now=now)
        return await store.accounts.create_api_key([organization.id], now=now, label=label)


async def count_rows(database: Database, table: str) -> int:
    """The rows of ``table``, read straight from the database (after runback stopped, on
    SQLite)."""
    if database.file is not None:
        with sqlite3.connect(f"file:{database.file}?mode=ro", uri=True) as db:
            found: int = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return found
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        return int(await connection.fetchval(f"SELECT count(*) FROM {database.schema}.{table}"))
    finally:
        await connection.close()
