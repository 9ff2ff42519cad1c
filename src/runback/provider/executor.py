"""The executor: claims queued runs, runs their models, and ends them through the outbox.

Async models run on the event loop; plain ``def`` models in a bounded thread pool. Each model
may cap how many of its runs execute at once: claims skip a model at its cap, so its runs
wait in ``queued`` without holding up other models. A crash while a model runs is handled at
the next start by ``recover``: a run that may run again is queued again (the files its
interrupted execution saved are discarded), one that has used its executions fails with
``interrupted``. A cancel cancels an async model's task, or tells a sync model through its
context; the run ends ``canceled`` however the model then ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError

from runback import logs
from runback.config import ExecutionConfig
from runback.core.clock import Clock
from runback.core.payload import dumps
from runback.core.records import Run
from runback.core.runs import Ending
from runback.core.states import RunStatus
from runback.errors import ModelError
from runback.provider.context import Fetcher, RunContext, SyncRunContext
from runback.provider.events import RunEvents
from runback.provider.outbox import Outbox
from runback.provider.outputs import Outputs
from runback.provider.registry import Model, ModelRegistry
from runback.store import Store
from runback.tracing import SpanLike, Tracing
from runback.work_loop import WorkLoop

log = logging.getLogger(__name__)


class Executor(WorkLoop):
    """Runs models for queued runs, at most ``config.max_concurrent_runs`` at a time."""

    def __init__(
        self,
        *,
        store: Store,
        outbox: Outbox,
        outputs: Outputs,
        fetcher: Fetcher,
        registry: ModelRegistry,
        clock: Clock,
        worker_id: str,
        config: ExecutionConfig,
        tracing: Tracing | None = None,
    ) -> None:
        super().__init__(capacity=config.max_concurrent_runs, poll_interval=config.poll_interval)
        self._store = store
        self._outbox = outbox
        self._outputs = outputs
        self._fetcher = fetcher
        self._registry = registry
        self._clock = clock
        self._worker_id = worker_id
        self._default_timeout = config.model_timeout
        self._threads = ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="model")
        self._running: dict[UUID, asyncio.Task[Any]] = {}
        self._contexts: dict[UUID, RunContext] = {}
        self._per_model: Counter[str] = Counter()
        self._cancel_requested: set[UUID] = set()
        self._lease = timedelta(seconds=config.lease_seconds)
        self._max_executions = config.max_executions
        self._next_upkeep = datetime.min.replace(tzinfo=UTC)
        self._unserved_after = timedelta(seconds=config.unserved_after)
        self._event_interval = config.event_interval
        self._event_log_chars = config.event_log_chars
        self._events: dict[UUID, RunEvents] = {}
        self._tracing = tracing or Tracing.off()

    async def run_until_idle(self) -> None:
        """Run every queued run, and those they lead to, to its end (for tests and tools)."""
        while await self._start_queued() or self._tasks:
            await self._settle()

    async def close(self) -> None:
        """Stop the running models and queue their runs again: a shutdown is not a crash,
        so it does not use up one of their executions. Sync models cannot be interrupted;
        their threads are abandoned."""
        held = list(self._running)
        for context in self._contexts.values():
            context.cancel()
        for events in self._events.values():
            events.abandon()
        await super().close()
        self._threads.shutdown(wait=False, cancel_futures=True)
        if held:
            await self._store.runs.hand_back(held, worker=self._worker_id, now=self._clock.now())
        await self._store.workers.leave(self._worker_id)

    def cancel(self, run_id: UUID) -> asyncio.Task[Any] | None:
        """Cancel a run this executor holds; answers its task, to await, if it has started."""
        self._cancel_requested.add(run_id)
        context = self._contexts.get(run_id)
        if context is not None:
            context.cancel()
        task = self._running.get(run_id)
        model = self._registry.get(context.model) if context is not None else None
        if task is not None and (model is None or model.is_async):
            task.cancel()  # a sync model is told through its context, then returns
        return task

    async def recover(self, *, max_executions: int, expired_only: bool = False) -> int:
        """Hand back a dead executor's claims (every claim at an exclusive start; else those
        whose lease expired); fail the runs out of executions."""
        interrupted = await self._store.runs.recover(
            now=self._clock.now(), max_executions=max_executions, expired_only=expired_only
        )
        for run in interrupted:
            message = (
                f"the run was interrupted {run.execution_count} times by a restart "
                "while its model ran"
            )
            await self._outbox.end(run, Ending.failed("interrupted", message))
        return len(interrupted)

    async def _round(self) -> float:
        await self._upkeep()
        if self._running:  # cancels asked of another process reach this one here
            for run_id in await self._store.runs.cancels_requested(list(self._running)):
                self.cancel(run_id)
        await self._start_queued()
        return self._poll_interval

    async def _upkeep(self) -> None:
        """Renew the leases of the runs executing here, and take back those of dead
        executors, a few times per lease."""
        now = self._clock.now()
        if now < self._next_upkeep:
            return
        self._next_upkeep = now + self._lease / 3
        await self._store.workers.beat(self._worker_id, self._registry.names(), now=now)
        if self._running:
            await self._store.runs.extend_leases(
                list(self._running), worker=self._worker_id, lease_until=now + self._lease
            )
        await self.recover(max_executions=self._max_executions, expired_only=True)
        await self.fail_unserved()
        await self.send_owed_batch_callbacks(before=now - self._lease)

    async def send_owed_batch_callbacks(self, *, before: datetime) -> int:
        """Commit the callbacks of batches that ended before ``before`` without one: the
        process that ended their last item died between the two commits."""
        sent = 0
        for batch in await self._store.batches.callbacks_due(before=before):
            if await self._outbox.owe_batch_callback(batch.id) is not None:
                log.warning("batch %s: its callback was owed since %s", batch.id, before)
                sent += 1
        return sent

    async def fail_unserved(self) -> int:
        """Say which models have queued runs that no live worker serves, and fail those runs
        once they have waited longer than ``unserved_after``; answers how many it failed.

        Every executor claims only the models it serves, so such a run would otherwise wait
        for ever: a worker pool that is down, or a model no deployment has.
        """
        now = self._clock.now()
        waiting = await self._store.workers.queued_models()
        if not waiting:
            return 0
        served = await self._store.workers.served(since=now - self._lease)
        served.update(self._registry.names())
        unserved = {m: oldest for m, oldest in waiting.items() if m not in served}
        for model, oldest in sorted(unserved.items()):
            log.warning(
                "runs of model %s are waiting (the oldest since %s): no live worker serves "
                "it; they fail %g s after they were submitted",
                model,
                oldest.isoformat(),
                self._unserved_after.total_seconds(),
            )
        deadline = now - self._unserved_after
        expired = [model for model, oldest in unserved.items() if oldest <= deadline]
        if not expired or self.room <= 0:
            return 0
        claimed = await self._store.runs.claim_queued(
            worker=self._worker_id,
            limit=self.room,
            now=now,
            lease_until=now + self._lease,
            models=expired,
            created_before=deadline,
        )
        for run in claimed:  # no model here: each ends model_unavailable
            self._per_model[run.model] += 1
            self._spawn(self._execute(run), name=f"run {run.id}")
        return len(claimed)

    async def _start_queued(self) -> int:
        """Claim as many queued runs as there is room for, each model within its cap, in
        one claim whatever the models."""
        room = self.room
        if room <= 0:
            self._waiting_for_room = True
            return 0
        now = self._clock.now()
        claimed = await self._store.runs.claim_queued(
            worker=self._worker_id,
            limit=room,
            now=now,
            lease_until=now + self._lease,
            room=self._model_room,
            # Only what this worker serves: beside a pool serving other models (GPU and
            # CPU workers, say), a run it took could only fail.
            models=[m.name for m in self._registry if self._model_room(m.name) > 0],
        )
        for run in claimed:
            self._per_model[run.model] += 1
            self._spawn(self._execute(run), name=f"run {run.id}")
        # More may be queued when the claim took all it had room for, or when a model is at
        # its cap: a finishing run wakes the loop then.
        self._waiting_for_room = len(claimed) == room or any(
            self._model_room(m.name) <= 0 for m in self._registry if m.concurrency is not None
        )
        return len(claimed)

    def _model_room(self, name: str) -> int:
        """How many more runs of model ``name`` may start now (no cap: all there is room for)."""
        model = self._registry.get(name)
        if model is None or model.concurrency is None:
            return self.room
        return model.concurrency - self._per_model[name]

    async def _execute(self, run: Run) -> None:
        # Its own task: what it binds holds for its lines and the tasks it starts (the
        # delivery of its end, taken over by this process's dispatcher).
        logs.start(run_id=run.id, batch_id=run.batch_id)
        attributes = None
        if self._tracing.enabled:
            attributes = {"runback.run_id": str(run.id), "runback.model": run.model}
        with self._tracing.span("execute", parent=run.traceparent, attributes=attributes) as span:
            await self._executed(run, span)

    async def _executed(self, run: Run, span: SpanLike) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running[run.id] = task
        try:
            try:
                ending = await self._outcome(run)
            except asyncio.CancelledError:
                if run.id not in self._cancel_requested:
                    raise  # shutting down: the run is handed back or recovered
                task.uncancel()
                ending = Ending.canceled()
            if run.id in self._cancel_requested:
                ending = Ending.canceled()
            span.set_attribute("runback.run_status", ending.status.value)
            # Files an earlier, interrupted execution saved are discarded once the model
            # starts (it has a context then): from there on only this execution's count.
            context = self._contexts.get(run.id)
            events = self._events.get(run.id)
            if events is not None:  # what is pending goes before the end; then the end
                await events.close()
                run = events.run
            await self._outbox.end(run, ending, files=context is None or bool(context.saved))
        finally:
            del self._running[run.id]
            self._contexts.pop(run.id, None)
            self._events.pop(run.id, None)
            self._cancel_requested.discard(run.id)
            self._per_model[run.model] -= 1

    async def _outcome(self, run: Run) -> Ending:
        if run.id in self._cancel_requested:
            return Ending.canceled()
        model = self._registry.get(run.model)
        if model is None:
            return Ending.failed("model_unavailable", f"no live worker serves model {run.model}")
        if run.execution_count > 1:
            await self._outputs.discard(run.id)  # what an interrupted execution saved
        timeout = model.timeout or self._default_timeout
        context = await self._context(run, timeout)
        try:
            return Ending(RunStatus.SUCCEEDED, await self._call(model, run, context, timeout))
        except TimeoutError:
            context.cancel()  # a sync model may still be running: ask it to stop
            message = f"model {model.name} did not finish within {timeout:g} s"
            return Ending.failed("timeout", message)
        except ModelError as exc:
            if exc.partial and context.saved:
                return Ending.partial(exc.code, str(exc))
            return Ending.failed(exc.code, str(exc))
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("model %s failed run %s: %s", model.name, run.id, message)
            return Ending.failed("model_error", message)

    async def _context(self, run: Run, seconds: float) -> RunContext:
        """The context of the model about to run ``run``; ``run.started`` is made here."""
        events = None
        if run.events is not None:
            events = self._events[run.id] = RunEvents(
                run,
                sink=self._outbox,
                outputs=self._outputs,
                clock=self._clock,
                interval=self._event_interval,
                log_chars=self._event_log_chars,
            )
            await events.started()
        context = self._contexts[run.id] = RunContext(
            run=run,
            deadline=self._clock.now() + timedelta(seconds=seconds),
            outputs=self._outputs,
            fetcher=self._fetcher,
            results=self._outbox.send_result,
            events=events,
        )
        return context

    async def _call(self, model: Model, run: Run, context: RunContext, seconds: float) -> str:
        argument = _input_of(model, run)
        async with asyncio.timeout(seconds):
            if model.is_async:
                result = await model.function(argument, context)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(
                    self._threads, model.function, argument, SyncRunContext(context, loop)
                )
        return _output_of(model, result if result is not None else {}, context)


def _input_of(model: Model, run: Run) -> Any:
    if model.input_model is None:
        return orjson.loads(run.input)
    try:
        return model.input_model.model_validate_json(run.input)
    except ValidationError as exc:
        raise ModelError(
            f"the input no longer fits model {model.name}: {exc.errors()[0]['msg']}",
            code="invalid_input",
        ) from None


def _output_of(model: Model, result: Any, context: RunContext) -> str:
    if not isinstance(result, dict):
        raise ModelError(
            f"model {model.name} returned {type(result).__name__}, not a JSON object",
            code="invalid_output",
        )
    if context.saved and "outputs" in result:
        raise ModelError(
            f"model {model.name} saved files and returned its own 'outputs': the key is "
            "runback's when files are saved",
            code="invalid_output",
        )
    try:
        return dumps(result)
    except TypeError as exc:
        raise ModelError(
            f"model {model.name} returned an output that is not JSON: {exc}",
            code="invalid_output",
        ) from None
