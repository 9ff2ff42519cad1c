"""Runs per second end to end on PostgreSQL: one ``runback api`` and N ``runback worker``
processes, a fast loopback receiver, and a submitting client, all on this machine.

    .venv/bin/python bench/scale_out.py --workers 1 --runs 2000
    .venv/bin/python bench/scale_out.py --workers 2 --runs 2000

Prints submissions/s (each committed before its 201) and callbacks/s (submit to the last
callback received), with the baseline of a bare loopback POST loop measured in the same run.
On a 2-core machine more workers measure contention, not scale-out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

POSTGRES_URL = os.environ.get("RUNBACK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
SERVING = re.compile(r"runback serving (http://[^\s/]+)")


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.done = asyncio.Event()
        self.expected = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.count += 1
        if self.count >= self.expected:
            self.done.set()
        return web.Response()


def start(
    command: list[str], env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    handle = log.open("wb")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = SERVING.search(log.read_text())
        if found:
            return process, found.group(1)
        if process.poll() is not None:
            raise SystemExit(f"{command[2]} exited:\n{log.read_text()}")
        time.sleep(0.05)
    raise SystemExit(f"{command[2]} did not start:\n{log.read_text()}")


async def baseline(url: str, count: int) -> float:
    """Bare POSTs of a small body to the same receiver, 64 at a time."""
    gate = asyncio.Semaphore(64)
    async with aiohttp.ClientSession() as http:

        async def one() -> None:
            async with gate, http.post(url, data=b'{"run_id":"x"}') as response:
                await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        return count / (time.perf_counter() - started)


async def submit(api: str, key: str, hook: str, count: int) -> float:
    gate = asyncio.Semaphore(32)
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as http:

        async def one(n: int) -> None:
            body = {"input": {"n": n}, "callback_url": hook}
            async with gate, http.post(f"{api}/v1/models/runback/echo/runs", json=body) as r:
                assert r.status == 201, await r.text()

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(count)))
        return count / (time.perf_counter() - started)


async def main(workers: int, runs: int) -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f"CREATE SCHEMA {schema}")
    receiver = Receiver()
    receiver.expected = runs
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    env = {**os.environ, "RUNBACK_DATABASE_URL": POSTGRES_URL, "RUNBACK_DATABASE_SCHEMA": schema,
           "RUNBACK_CALLBACK_ALLOW": "127.0.0.0/8", "RUNBACK_LOG_LEVEL": "warning",
           # no output is fetched here, and every process runs on this host
           "RUNBACK_PUBLIC_URL": "http://127.0.0.1:8000",
           "RUNBACK_FILES_SHARED": "true"}  # fmt: skip
    runback = [sys.executable, "-m", "runback"]
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            made = subprocess.run([*runback, "keys", "create", "--data-dir", tmp], env=env,  # noqa: ASYNC221
                                  capture_output=True, text=True, check=True)  # fmt: skip
            api_process, api = start([*runback, "api", "--port", "0", "--data-dir", tmp], env,
                                     folder / "api.log")  # fmt: skip
            processes.append(api_process)
            for n in range(workers):
                worker, _ = start([*runback, "worker", "--port", "0", "--data-dir", tmp], env,
                                  folder / f"worker{n}.log")  # fmt: skip
                processes.append(worker)
            bare = await baseline(hook, runs)
            receiver.count = 0
            started = time.perf_counter()
            accepted = await submit(api, made.stdout.strip(), hook, runs)
            await asyncio.wait_for(receiver.done.wait(), timeout=600)
            end_to_end = runs / (time.perf_counter() - started)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
            await runner.cleanup()
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
            await admin.close()
    print(f"workers={workers} runs={runs}")
    print(f"  bare loopback POSTs/s (baseline): {bare:8.0f}")
    print(f"  accepted runs/s (201 after commit): {accepted:8.0f}")
    ratio = end_to_end / bare
    print(f"  runs/s submit to last callback:   {end_to_end:8.0f}  ({ratio:.2f}x baseline)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=2000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.workers, arguments.runs))
