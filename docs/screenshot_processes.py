"""What both halves of ``make screenshots`` start: an API key, a runback command that
announces its address, and a little HTTP server on loopback."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

RUNBACK = [sys.executable, "-m", "runback"]


def api_key(data_dir: Path) -> str:
    made = subprocess.run(
        [*RUNBACK, "keys", "create", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip()


def start(
    args: list[str], *, env: dict[str, str], log: Path, announced: re.Pattern[str]
) -> tuple[subprocess.Popen[bytes], str]:
    """``runback <args>`` in the background, its output into ``log``, and the address it
    announces (``announced``'s first group) once it does, within 30 s."""
    with log.open("wb") as out:
        process = subprocess.Popen([*RUNBACK, *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while (found := announced.search(log.read_text())) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"runback {args[0]} did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return process, found[1]


async def loopback(
    handle: Callable[[web.Request], Awaitable[web.Response]],
) -> tuple[web.AppRunner, str]:
    """An HTTP server on loopback answering every path with ``handle``, and its address."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
