"""The loop shared by the executor and the dispatcher.

Each round starts whatever work is ready, as tasks counted against a capacity, then sleeps
until the time the round asked for or until ``wake()``: a new run, a new delivery, or one of
its own tasks finishing while work waits for room, or while a round is under way (it may
have judged the room already). (A task finishing when nothing waits wakes nothing: each
round costs a few queries, and at low load every run would pay for several empty ones.) A
round that fails is logged and retried after the poll interval, so a passing database error
never stops the worker.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class WorkLoop(ABC):
    """A wakeable loop running at most ``capacity`` tasks at a time."""

    def __init__(self, *, capacity: int, poll_interval: float) -> None:
        self._capacity = capacity
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._draining = False
        self._waiting_for_room = False
        """Set by a round that left ready work behind for lack of room."""
        self._in_round = False

    def wake(self) -> None:
        """Start a round now."""
        self._wake.set()

    @property
    def room(self) -> int:
        """How many more tasks may start (none while draining)."""
        return 0 if self._draining else self._capacity - len(self._tasks)

    async def drain(self, grace: float) -> None:
        """Start nothing new and give the tasks under way up to ``grace`` seconds to end;
        cancelling the loop afterwards hands back what is left."""
        self._draining = True
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)

    @abstractmethod
    async def _round(self) -> float:
        """Start what is ready; answer how many seconds to sleep before the next round."""

    async def run_forever(self) -> None:
        """Run rounds until cancelled, then cancel the tasks still running."""
        try:
            while True:
                self._wake.clear()
                self._in_round = True
                try:
                    delay = await self._round()
                except Exception:
                    log.exception("%s failed a round; retrying", type(self).__name__)
                    delay = self._poll_interval
                finally:
                    self._in_round = False
                if delay > 0:
                    try:
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
                else:
                    # SQLite's calls never suspend (they run on the loop's thread): give
                    # the tasks this round started, and every other loop, their turn.
                    await asyncio.sleep(0)
        finally:
            await self.close()

    async def close(self) -> None:
        """Cancel the tasks still running."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _settle(self) -> None:
        """Wait for every task started so far."""
        await asyncio.gather(*self._tasks)

    def _spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed unexpectedly", task.get_name(), exc_info=task.exception())
        # A task that ends while a round awaits the database frees room that round may have
        # judged already: look again after it.
        if self._waiting_for_room or self._in_round:
            self._wake.set()
