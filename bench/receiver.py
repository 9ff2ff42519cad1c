"""A fast receiver in its own process: answers 200 to every POST and counts them.

    python bench/receiver.py <port file>

Writes its port to the file once it listens. ``GET /count`` answers how many POSTs it got;
``GET /arrivals`` the arrival time (``time.time()``) of each, with its ``run_id``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson
from aiohttp import web

arrivals: list[tuple[float, str]] = []


async def receive(request: web.Request) -> web.Response:
    body = await request.read()
    now = time.time()
    try:
        run_id = str(orjson.loads(body).get("run_id"))
    except (orjson.JSONDecodeError, AttributeError):
        run_id = ""
    arrivals.append((now, run_id))
    return web.Response()


async def count(_request: web.Request) -> web.Response:
    return web.json_response({"count": len(arrivals)})


async def listing(_request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(arrivals), content_type="application/json")


async def start(port_file: Path) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    app.router.add_get("/count", count)
    app.router.add_get("/arrivals", listing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=4096).start()
    port_file.write_text(str(runner.addresses[0][1]))  # noqa: ASYNC240 - once, at start
    return runner


if __name__ == "__main__":
    import asyncio

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        await start(Path(sys.argv[1]))
        await asyncio.Event().wait()

    asyncio.run(main())
