"""What a running model sees of its run, and how it talks back.

The context is the one argument that grows: a model's signature never changes. Async models
get a ``RunContext``; plain ``def`` models run in a worker thread and get a
``SyncRunContext``, the same context with blocking methods (the sync caller's edge).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from uuid import UUID

from runback.core.events import check_progress
from runback.core.records import OutputFile, Run, RunResult

if TYPE_CHECKING:  # the context is part of the light public API: no store import at run time
    from runback.provider.events import RunEvents
    from runback.provider.outputs import OutputData, Outputs

T = TypeVar("T")

DEFAULT_FETCH_LIMIT = 20 * 1024 * 1024
DEFAULT_FETCH_TIMEOUT = 10.0


class Fetcher(Protocol):
    """Fetches an input URL through the URL policy, within a size and a time limit."""

    async def fetch(self, url: str, *, max_bytes: int, seconds: float) -> bytes: ...


class ResultSender(Protocol):
    """Commits one result of a run, with its callback when the run has a callback URL."""

    async def __call__(
        self, run: Run, *, position: int, data: Mapping[str, Any], output: OutputFile | None
    ) -> RunResult: ...


class RunContext:
    """The run a model is executing, and the means to talk back to runback."""

    def __init__(
        self,
        *,
        run: Run,
        deadline: datetime,
        outputs: Outputs,
        fetcher: Fetcher,
        results: ResultSender,
        events: RunEvents | None = None,
    ) -> None:
        self._run = run
        self._outputs = outputs
        self._fetcher = fetcher
        self._results = results
        self._events = events
        self._saved: list[OutputFile] = []
        self._positions = 0
        self._sent = 0
        self._cancelled = threading.Event()
        self.deadline = deadline
        """When the run's timeout fires."""

    @property
    def run_id(self) -> UUID:
        return self._run.id

    @property
    def model(self) -> str:
        return self._run.model

    @property
    def organization_id(self) -> UUID:
        return self._run.organization_id

    @property
    def execution(self) -> int:
        """1 for the first start; more when a crash interrupted an earlier one."""
        return self._run.execution_count

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled: a sync model should stop and return soon."""
        return self._cancelled.is_set()

    @property
    def saved(self) -> list[OutputFile]:
        """The output files saved so far."""
        return list(self._saved)

    def cancel(self) -> None:
        """Mark the run cancelled (runback calls this; models read ``cancelled``)."""
        self._cancelled.set()

    async def send_result(
        self, data: Mapping[str, Any], *, output: OutputFile | None = None
    ) -> RunResult:
        """Send one result now, while the run goes on: a ``run.result`` callback of its own
        (its own ``webhook-id``), carrying ``data`` (JSON) and, with ``output``, that saved
        file's entry under ``output``. Kept, so it can be redelivered by its id."""
        position = self._sent
        self._sent += 1
        return await self._results(self._run, position=position, data=data, output=output)

    def log(self, text: str) -> None:
        """Write lines to the run's log: a ``run.logs`` event, soon, for a run that asked
        for ``logs`` (events carry the log's tail); nothing is sent otherwise."""
        if self._events is not None:
            self._events.log(text)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Say how far the run is, ``fraction`` from 0 to 1: a ``run.logs`` event, soon,
        with ``progress``, for a run that asked for ``logs``."""
        checked = check_progress(fraction)
        if self._events is not None:
            self._events.progress(checked, message)

    async def read_upload(self, key: str) -> bytes:
        """A file uploaded with this run's request (a front door that takes files names
        their keys in the input)."""
        return await self._outputs.read_upload(self._run, key)

    async def save_output(
        self, data: OutputData, *, content_type: str, type: str | None = None
    ) -> OutputFile:
        """Save one output file (bytes, a path or a stream); it becomes an entry of
        ``output.outputs`` with a presigned URL. ``type`` defaults from the content type."""
        position = self._positions
        self._positions += 1  # taken before the await: concurrent saves keep their order
        saved = await self._outputs.save(
            run=self._run,
            position=position,
            data=data,
            content_type=content_type,
            type=type,
        )
        self._saved.append(saved)
        if self._events is not None:
            self._events.saved(saved)
        return saved

    async def fetch(
        self,
        url: str,
        *,
        max_bytes: int = DEFAULT_FETCH_LIMIT,
        timeout: float = DEFAULT_FETCH_TIMEOUT,  # noqa: ASYNC109 (passed to the fetcher)
    ) -> bytes:
        """The body of ``url``, fetched through runback's URL policy and limits."""
        return await self._fetcher.fetch(url, max_bytes=max_bytes, seconds=timeout)


class SyncRunContext:
    """A ``RunContext`` for a model running in a worker thread: the same, blocking."""

    def __init__(self, context: RunContext, loop: asyncio.AbstractEventLoop) -> None:
        self.context = context
        self._loop = loop

    def _wait(self, work: Callable[[], Awaitable[T]]) -> T:
        async def run() -> T:
            return await work()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    @property
    def run_id(self) -> UUID:
        return self.context.run_id

    @property
    def model(self) -> str:
        return self.context.model

    @property
    def execution(self) -> int:
        return self.context.execution

    @property
    def deadline(self) -> datetime:
        return self.context.deadline

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled or timed out: stop and return soon."""
        return self.context.cancelled

    def save_output(
        self, data: OutputData, *, content_type: str, type: str | None = None
    ) -> OutputFile:
        """``RunContext.save_output``, blocking."""
        return self._wait(
            lambda: self.context.save_output(data, content_type=content_type, type=type)
        )

    def log(self, text: str) -> None:
        """``RunContext.log``: returns at once, the event is made on the event loop."""
        self._loop.call_soon_threadsafe(self.context.log, text)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """``RunContext.progress``: returns at once."""
        checked = check_progress(fraction)  # the model's mistake, raised in its thread
        self._loop.call_soon_threadsafe(self.context.progress, checked, message)

    def send_result(
        self, data: Mapping[str, Any], *, output: OutputFile | None = None
    ) -> RunResult:
        """``RunContext.send_result``, blocking."""
        return self._wait(lambda: self.context.send_result(data, output=output))

    def fetch(
        self,
        url: str,
        *,
        max_bytes: int = DEFAULT_FETCH_LIMIT,
        timeout: float = DEFAULT_FETCH_TIMEOUT,
    ) -> bytes:
        """``RunContext.fetch``, blocking."""
        return self._wait(lambda: self.context.fetch(url, max_bytes=max_bytes, timeout=timeout))
