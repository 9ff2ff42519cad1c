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
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from client import submission

from support import api_key, fresh_schema, process, runback_command


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
    """``runback/echo`` runs, 32 at a time: accepted per second."""
    gate = asyncio.Semaphore(32)
    url, headers = submission(api, key)
    async with aiohttp.ClientSession(headers=headers) as http:

        async def one(n: int) -> None:
            body = orjson.dumps({"input": {"n": n}, "callback_url": hook})
            async with gate, http.post(url, data=body) as r:
                assert r.status == 201, await r.text()

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(count)))
        return count / (time.perf_counter() - started)


async def main(workers: int, runs: int) -> None:
    receiver = Receiver()
    receiver.expected = runs
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        async with fresh_schema() as database:
            with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
                folder, env = Path(tmp), database.env()
                key = await api_key(database)
                api = stack.enter_context(
                    process(runback_command("api", folder), env=env, log=folder / "api.log")
                )
                for n in range(workers):
                    stack.enter_context(process(runback_command("worker", folder), env=env,
                                                log=folder / f"worker{n}.log"))  # fmt: skip
                bare = await baseline(hook, runs)
                receiver.count = 0
                started = time.perf_counter()
                accepted = await submit(api.url, key, hook, runs)
                await asyncio.wait_for(receiver.done.wait(), timeout=600)
                end_to_end = runs / (time.perf_counter() - started)
    finally:
        await runner.cleanup()
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
