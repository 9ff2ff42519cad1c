"""Bad receivers on loopback, for the isolation and memory benchmarks (P4, P7).

* ``blackhole``: TCP listeners that accept every connection, read and discard what comes, and
  never answer: every attempt to them lasts until the sender's own timeout. The sockets held
  are bounded; one beyond the bound is closed at once (a connection error, not a hang).
* ``slow_receiver``: HTTP listeners that answer ``200`` to every POST, but only after a
  delay: attempts succeed, each holding its connection for that long.

Each runs in its own thread with its own event loop, so the benchmark's loop (a paced client,
say) neither slows them nor is slowed by them. Each listener is its own port, hence its own
destination (``host:port``) to runback. Loopback only; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

_START_SECONDS = 10.0
_STOP_SECONDS = 10.0


class _LoopThread:
    """An event loop in a daemon thread; ``call`` runs a coroutine there and waits for it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, work: Awaitable[Any], *, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(_awaited(work), self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=_STOP_SECONDS)
        if not self._thread.is_alive():
            self.loop.close()


async def _awaited(work: Awaitable[Any]) -> Any:
    return await work


@contextmanager
def _listening(
    name: str,
    start: Callable[[], Awaitable[list[str]]],
    stop: Callable[[], Awaitable[None]],
    *,
    stop_seconds: float,
) -> Iterator[list[str]]:
    """Listeners ``start``ed on a loop thread of their own; yields their base URLs, and
    ``stop``s them (then the thread) on exit."""
    runner = _LoopThread(name)
    try:
        urls: list[str] = runner.call(start(), timeout=_START_SECONDS)
        yield urls
    finally:
        try:
            runner.call(stop(), timeout=stop_seconds)
        finally:
            runner.stop()


class Blackhole:
    """What the listeners saw: connections accepted, held now, refused beyond the bound."""

    def __init__(self, max_held: int) -> None:
        self.max_held = max_held
        self.accepted = 0
        self.refused = 0
        self.peak_held = 0
        self.opened: list[float] = []
        """When each connection was accepted (``time.monotonic()``)."""
        self._held: set[asyncio.StreamWriter] = set()

    @property
    def held(self) -> int:
        return len(self._held)

    def waves(self, since: float, *, gap: float = 1.0) -> list[tuple[float, int]]:
        """The connections accepted after ``since``, grouped into waves (accepted within
        ``gap`` seconds of each other): each wave's start, in seconds after ``since``, and
        its size."""
        found: list[tuple[float, int]] = []
        last = None
        for at in sorted(t for t in self.opened if t >= since):
            if last is None or at - last > gap:
                found.append((at - since, 0))
            found[-1] = (found[-1][0], found[-1][1] + 1)
            last = at
        return found

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._held) >= self.max_held:
            self.refused += 1
            writer.close()
            return
        self.accepted += 1
        self.opened.append(time.monotonic())
        self._held.add(writer)
        self.peak_held = max(self.peak_held, len(self._held))
        try:
            # Read (so the sender's writes never block) until the sender gives up.
            while await reader.read(65536):
                pass
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._held.discard(writer)
            writer.close()

    async def _close_all(self) -> None:
        for writer in list(self._held):
            writer.close()
        self._held.clear()


@contextmanager
def blackhole(*, ports: int = 1, max_held: int = 1024) -> Iterator[tuple[list[str], Blackhole]]:
    """``ports`` blackholed listeners on 127.0.0.1; yields their base URLs and the counts.

    On exit every held socket is closed first, so attempts still hanging on them end at once
    (a connection reset) instead of at their timeout.
    """
    hole = Blackhole(max_held)
    servers: list[asyncio.Server] = []

    async def start() -> list[str]:
        for _ in range(ports):
            servers.append(
                await asyncio.start_server(hole._swallow, "127.0.0.1", 0, backlog=max_held)
            )
        return [f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in servers]

    async def stop() -> None:
        for server in servers:
            server.close()
        await hole._close_all()

    with _listening("blackhole", start, stop, stop_seconds=_STOP_SECONDS) as urls:
        yield urls, hole


class SlowReceiver:
    """How many POSTs the slow listeners answered, and how many wait on their delay now."""

    def __init__(self) -> None:
        self.answered = 0
        self.waiting = 0
        self.peak_waiting = 0


@contextmanager
def slow_receiver(*, delay: float, ports: int = 1) -> Iterator[tuple[list[str], SlowReceiver]]:
    """``ports`` HTTP listeners on 127.0.0.1 answering ``200`` after ``delay`` seconds;
    yields their base URLs and the counts."""
    counts = SlowReceiver()
    runners: list[web.AppRunner] = []

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        counts.waiting += 1
        counts.peak_waiting = max(counts.peak_waiting, counts.waiting)
        try:
            await asyncio.sleep(delay)
        finally:
            counts.waiting -= 1
        counts.answered += 1
        return web.Response()

    async def start() -> list[str]:
        urls = []
        for _ in range(ports):
            app = web.Application()
            app.router.add_post("/{tail:.*}", receive)
            site_runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await site_runner.setup()
            runners.append(site_runner)
            await web.TCPSite(site_runner, "127.0.0.1", 0, backlog=1024).start()
            urls.append(f"http://127.0.0.1:{site_runner.addresses[0][1]}")
        return urls

    async def stop() -> None:
        for site_runner in runners:
            await site_runner.cleanup()

    with _listening("slow-receiver", start, stop, stop_seconds=_STOP_SECONDS * 2) as urls:
        yield urls, counts
