"""The events of one running run, made as its model talks: ``run.started``, then
``run.output`` and ``run.logs`` at most once per interval (the latest state wins).

The executor makes one ``RunEvents`` per execution and gives it to the run's context; what
the model says between two events merges into the next one, and whatever is pending when
the model returns is made before the terminal event, so the last lines are never lost.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Protocol

from runback.core.clock import Clock
from runback.core.events import (
    LOGS,
    OUTPUT,
    STARTED,
    EventKind,
    LogTail,
    Progress,
    asks,
)
from runback.core.payload import dumps, snapshot_body
from runback.core.records import OutputFile, Run
from runback.provider.outputs import Outputs

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Commits one event of a running run (``Outbox.add_event``)."""

    async def add_event(self, run: Run, name: str, body: bytes) -> bool: ...


class RunEvents:
    """One execution's events: what its model said, made into throttled snapshots."""

    def __init__(
        self,
        run: Run,
        *,
        sink: EventSink,
        outputs: Outputs,
        clock: Clock,
        interval: float,
        log_chars: int,
    ) -> None:
        self.run = run
        """The run as its latest event left it (its ``event_sequence``)."""
        self._sink = sink
        self._outputs = outputs
        self._clock = clock
        self._interval = interval
        self._tail = LogTail(log_chars)
        self._progress: Progress | None = None
        self._saved: list[OutputFile] = []
        self._pending: str | None = None
        self._next_at = 0.0  # loop time before which no progress event is made
        self._timer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._lost = False

    async def started(self) -> None:
        """Make ``run.started``, if the run asked for it."""
        if asks(self.run, EventKind.START):
            async with self._lock:
                await self._make_safely(STARTED)

    def log(self, text: str) -> None:
        """Lines the model wrote: kept in the tail, a ``run.logs`` event soon."""
        self._tail.add(text)
        self._want(LOGS, EventKind.LOGS)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """How far the model is: a ``run.logs`` event soon, with ``progress``."""
        self._progress = Progress(fraction, message)
        self._want(LOGS, EventKind.LOGS)

    def saved(self, output: OutputFile) -> None:
        """A file the model saved: a ``run.output`` event soon."""
        self._saved.append(output)
        self._want(OUTPUT, EventKind.OUTPUT)

    async def close(self) -> None:
        """Make what is pending now, whatever the interval: the run is about to end."""
        timer, self._timer = self._timer, None
        if timer is not None:  # still waiting out the interval: never cut short a commit
            timer.cancel()
        async with self._lock:
            await self._flush()

    def abandon(self) -> None:
        """Drop what is pending and make no more: the run is handed back, not ended."""
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _want(self, name: str, kind: EventKind) -> None:
        if self._lost or not asks(self.run, kind):
            return
        if self._pending != OUTPUT:  # a saved file outranks lines in a merged event
            self._pending = name
        if self._timer is None:
            self._timer = asyncio.create_task(self._after_interval(), name="run events")

    async def _after_interval(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(self._next_at - loop.time(), 0.0))
        self._timer = None  # from here on, what the model says waits for the next one
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        name, self._pending = self._pending, None
        if name is None or self._lost:
            return
        self._next_at = asyncio.get_running_loop().time() + self._interval
        await self._make_safely(name)

    async def _make_safely(self, name: str) -> None:
        try:
            await self._make(name)
        except Exception as exc:  # the next snapshot says it all again; the run goes on
            log.warning("run %s: a %s event was not made: %s", self.run.id, name, exc)

    async def _make(self, name: str) -> None:
        run = self.run
        sequence = run.event_sequence + 1
        output = None
        if self._saved:
            expires_at = self._outputs.expires_at(run)
            entries = [await self._outputs.entry(f, expires_at=expires_at) for f in self._saved]
            output = dumps({"outputs": entries})
        body = snapshot_body(
            run,
            name,
            sequence=sequence,
            output=output,
            logs=self._tail.text(),
            progress=self._progress,
            now=self._clock.now(),
        )
        advanced = replace(run, event_sequence=sequence)
        if await self._sink.add_event(advanced, name, body):
            self.run = advanced
        else:
            self._lost = True
            log.info("run %s: its worker no longer holds it; its events stop", run.id)
