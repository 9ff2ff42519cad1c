"""Running an HTTP app beside background workers: shared by ``serve`` and ``receive``.

The socket is bound by us (not uvicorn), so a port in use is one clear error and ``--port 0``
reports the port it got. uvicorn handles SIGINT/SIGTERM by stopping to accept requests; then
the workers are cancelled (each hands its claims back) and the function returns.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from collections.abc import Sequence

import uvicorn
from starlette.types import ASGIApp

from runback.errors import ConfigError
from runback.work_loop import WorkLoop


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a ``ConfigError`` saying why it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port or --host"
        ) from None


def url_of(sock: socket.socket) -> str:
    """The base URL of a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


GC_THRESHOLDS = (7000, 10, 10)
"""The collector's generations' thresholds while serving (Python's default: 700, 10, 10)."""


def settle_collector() -> None:
    """Ready the garbage collector for serving: freeze what start-up made, collect less often.

    Measured (docs/benchmarks.md, "The garbage collector out of the way"): what start-up
    makes (modules, routes, the app: about 170,000 objects) lives as long as the process, yet
    every full collection walked it; frozen, it is out of the collector's way. A first
    generation ten times the default lets a request's short-lived objects die before a
    collection looks. Together they cut a fifth to a quarter of an accepted run's CPU.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _ignore_signal(signum: int, frame: object) -> None:
    """uvicorn re-raises the signal that stopped it; by then the shutdown is ours to finish."""


async def serve_app(
    app: ASGIApp,
    sock: socket.socket,
    *,
    access_log: bool,
    workers: Sequence[WorkLoop],
    grace: float = 30.0,
) -> None:
    """Serve ``app`` on ``sock`` and run ``workers`` until SIGINT or SIGTERM; then stop
    accepting requests, give work under way ``grace`` seconds, and hand back the rest."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http="httptools",
            lifespan="off",
            log_config=None,
            access_log=access_log,
            server_header=False,
        )
    )
    tasks = [
        asyncio.create_task(worker.run_forever(), name=type(worker).__name__) for worker in workers
    ]
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _ignore_signal)
    try:
        await server.serve(sockets=[sock])
        await asyncio.gather(*(worker.drain(grace) for worker in workers))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
