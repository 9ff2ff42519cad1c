"""What every benchmark shares: processes on loopback, a fast receiver, results on disk.

Each benchmark is a script ``bench/pN_*.py`` that measures its figure *and its baseline in
the same run*, prints both with their ratio, and writes ``bench/results/PN.json`` (a
``Result``); ``bench/run.py`` runs them all and rewrites the table in
``docs/benchmarks.md``. A benchmark exits non-zero only when the run itself broke, never
for a missed target.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# ``bench/run.py --results-dir`` (a test) points this elsewhere, so a smoke run never
# overwrites the real results.
RESULTS = Path(os.environ.get("RUNBACK_BENCH_RESULTS") or ROOT / "bench" / "results")
POSTGRES_URL = os.environ.get("RUNBACK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
RUNBACK = [sys.executable, "-m", "runback"]
_SERVING = re.compile(r"runback (?:serving|receiving at) (http://[^\s/]+)")


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
    mode: str
    command: str
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


MODES = ("quick", "full", "smoke")


def mode() -> str:
    """``quick`` (``make bench``), ``full`` (``make bench-full``) or ``smoke`` (a tiny run
    that only proves a script works, for the test suite)."""
    chosen = os.environ.get("RUNBACK_BENCH_MODE", "quick")
    if chosen not in MODES:
        raise SystemExit(f"RUNBACK_BENCH_MODE={chosen!r}: use one of {', '.join(MODES)}")
    return chosen


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


@contextmanager
def process(command: list[str], *, env: dict[str, str], log: Path) -> Iterator[str]:
    """A ``runback`` process, yielded once it says where it serves (its base URL)."""
    with log.open("wb") as handle:
        child = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            found = _SERVING.search(log.read_text())
            if found:
                break
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(command)} did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield found.group(1)
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


def pid_of_log(log: Path, *, wait: float = 10.0) -> int | None:
    """The pid uvicorn logged for a process, waiting up to ``wait`` seconds for the line
    (runback may say where it serves before uvicorn's own line is flushed)."""
    deadline = time.monotonic() + wait
    while True:
        found = re.search(r"Started server process \[(\d+)\]", log.read_text())
        if found:
            return int(found.group(1))
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def base_env(**extra: str) -> dict[str, str]:
    # api and worker processes need a public URL and one files directory: no benchmark
    # fetches an output, and they all run on this host.
    return {**os.environ, "RUNBACK_LOG_LEVEL": "warning", "RUNBACK_CALLBACK_ALLOW": "127.0.0.0/8",
            "RUNBACK_PUBLIC_URL": "http://127.0.0.1:8000", "RUNBACK_FILES_SHARED": "true",
            **extra}  # fmt: skip


def postgres_env(schema: str) -> dict[str, str]:
    return base_env(RUNBACK_DATABASE_URL=POSTGRES_URL, RUNBACK_DATABASE_SCHEMA=schema)


def new_schema_name() -> str:
    return f"bench_{uuid.uuid4().hex[:10]}"


@contextmanager
def fast_receiver(folder: Path) -> Iterator[str]:
    """``bench/receiver.py`` in its own process; yields its base URL."""
    port_file = folder / "receiver.port"
    child = subprocess.Popen([sys.executable, str(ROOT / "bench" / "receiver.py"), str(port_file)])
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the fast receiver did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port_file.read_text()}"
    finally:
        child.terminate()
        child.wait(timeout=10)


def serve_bare_route(path: str, *, status: int, body: bytes = b"") -> None:
    """A baseline server: one Starlette route that reads the body and answers ``status``,
    on the server stack runback uses (uvicorn, httptools, uvloop); runs until killed."""
    import uvicorn
    import uvloop
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
