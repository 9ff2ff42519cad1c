"""The executor: claims queued runs, runs their models, and ends them through the outbox.

A crash while a model runs is handled at the next start by ``recover``: a run that may run
again is queued again, one that has used its executions fails with ``interrupted``. A cancel
request cancels the model's task; the run then ends ``canceled`` however the model reacts.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson

from runback.core.clock import Clock
from runback.core.payload import dumps
from runback.core.records import Run
from runback.core.runs import Ending
from runback.core.states import RunStatus
from runback.errors import ModelError
from runback.provider.context import RunContext
from runback.provider.outbox import Outbox
from runback.provider.registry import Model, ModelRegistry
from runback.provider.worker import Worker
from runback.store import Store

log = logging.getLogger(__name__)

_LEASE_MARGIN = timedelta(seconds=60)


class Executor(Worker):
    """Runs models for queued runs, at most ``max_concurrency`` at a time."""

    def __init__(
        self,
        *,
        store: Store,
        outbox: Outbox,
        registry: ModelRegistry,
        clock: Clock,
        worker_id: str,
        max_concurrency: int,
        default_timeout: float,
        poll_interval: float,
    ) -> None:
        super().__init__(capacity=max_concurrency, poll_interval=poll_interval)
        self._store = store
        self._outbox = outbox
        self._registry = registry
        self._clock = clock
        self._worker_id = worker_id
        self._default_timeout = default_timeout
        self._running: dict[UUID, asyncio.Task[Any]] = {}
        self._cancel_requested: set[UUID] = set()

    async def run_until_idle(self) -> None:
        """Run every queued run, and those they lead to, to its end (for tests and tools)."""
        while await self._start_queued() or self._tasks:
            await self._settle()

    async def close(self) -> None:
        """Stop the running models and queue their runs again: a shutdown is not a crash,
        so it does not use up one of their executions."""
        held = list(self._running)
        await super().close()
        if held:
            await self._store.runs.hand_back(held, now=self._clock.now())

    def cancel(self, run_id: UUID) -> asyncio.Task[Any] | None:
        """Cancel a run this executor holds; answers its task, to await, if it has started."""
        self._cancel_requested.add(run_id)
        task = self._running.get(run_id)
        if task is not None:
            task.cancel()
        return task

    async def recover(self, *, max_executions: int) -> int:
        """Hand back the previous process's claims; fail the runs out of executions."""
        interrupted = await self._store.runs.recover(
            now=self._clock.now(), max_executions=max_executions
        )
        for run in interrupted:
            message = (
                f"the run was interrupted {run.execution_count} times by a restart "
                "while its model ran"
            )
            await self._outbox.end(run, Ending.failed("interrupted", message))
        return len(interrupted)

    async def _round(self) -> float:
        await self._start_queued()
        return self._poll_interval

    async def _start_queued(self) -> int:
        room = self.room
        if room <= 0:
            return 0
        now = self._clock.now()
        lease = timedelta(seconds=self._default_timeout) + _LEASE_MARGIN
        claimed = await self._store.runs.claim_queued(
            worker=self._worker_id, limit=room, now=now, lease_until=now + lease
        )
        for run in claimed:
            self._spawn(self._execute(run), name=f"run {run.id}")
        return len(claimed)

    async def _execute(self, run: Run) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running[run.id] = task
        try:
            try:
                ending = await self._outcome(run)
            except asyncio.CancelledError:
                if run.id not in self._cancel_requested:
                    raise  # shutting down: the run is recovered at the next start
                task.uncancel()
                ending = Ending.canceled()
            if run.id in self._cancel_requested:
                ending = Ending.canceled()
            await self._outbox.end(run, ending)
        finally:
            del self._running[run.id]
            self._cancel_requested.discard(run.id)

    async def _outcome(self, run: Run) -> Ending:
        if run.id in self._cancel_requested:
            return Ending.canceled()
        model = self._registry.get(run.model)
        if model is None:
            return Ending.failed("model_unavailable", f"model {run.model} is not served here")
        timeout = model.timeout or self._default_timeout
        try:
            return Ending(RunStatus.SUCCEEDED, await self._call(model, run, timeout))
        except TimeoutError:
            message = f"model {model.name} did not finish within {timeout:g} s"
            return Ending.failed("timeout", message)
        except ModelError as exc:
            return Ending.failed(exc.code, str(exc))
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("model %s failed run %s: %s", model.name, run.id, message)
            return Ending.failed("model_error", message)

    async def _call(self, model: Model, run: Run, seconds: float) -> str:
        context = RunContext(
            run_id=run.id,
            model=model.name,
            organization_id=run.organization_id,
            execution=run.execution_count,
            deadline=self._clock.now() + timedelta(seconds=seconds),
        )
        arguments: dict[str, Any] = orjson.loads(run.input)
        async with asyncio.timeout(seconds):
            result = await model.function(arguments, context)
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise ModelError(
                f"model {model.name} returned {type(result).__name__}, not a JSON object",
                code="invalid_output",
            )
        try:
            return dumps(result)
        except TypeError as exc:
            raise ModelError(
                f"model {model.name} returned an output that is not JSON: {exc}",
                code="invalid_output",
            ) from None
