"""The executor: claims queued runs, runs their models, and finishes them with their callback.

Finishing is the outbox write: the run's terminal state and its delivery commit in one
transaction, then the dispatcher is woken in process. A crash between the two is impossible;
a crash while a model runs is handled at the next start by ``recover``: a run that may run
again is queued again, one that has used its executions fails with ``interrupted``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson

from runback.core.clock import Clock
from runback.core.delivery import new_delivery
from runback.core.ids import new_id
from runback.core.payload import dumps, failure_output
from runback.core.records import Run
from runback.core.retry import RetryPolicy
from runback.core.states import RunStatus
from runback.errors import ModelError
from runback.provider.context import RunContext
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
        registry: ModelRegistry,
        clock: Clock,
        retry_policy: RetryPolicy,
        worker_id: str,
        max_concurrency: int,
        default_timeout: float,
        poll_interval: float,
        on_callback: Callable[[], None],
    ) -> None:
        super().__init__(capacity=max_concurrency, poll_interval=poll_interval)
        self._store = store
        self._registry = registry
        self._clock = clock
        self._retry_policy = retry_policy
        self._worker_id = worker_id
        self._default_timeout = default_timeout
        self._on_callback = on_callback

    async def run_until_idle(self) -> None:
        """Run every queued run, and those they lead to, to its end (for tests and tools)."""
        while await self._start_queued() or self._tasks:
            await self._settle()

    async def recover(self, *, max_executions: int) -> int:
        """Hand back the previous process's claims; fail the runs out of executions."""
        interrupted = await self._store.runs.recover(
            now=self._clock.now(), max_executions=max_executions
        )
        for run in interrupted:
            await self._finish(
                run,
                RunStatus.FAILED,
                failure=(
                    "interrupted",
                    f"the run was interrupted {run.execution_count} times by a restart "
                    "while its model ran",
                ),
            )
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
        model = self._registry.get(run.model)
        if model is None:
            await self._finish(
                run,
                RunStatus.FAILED,
                failure=("model_unavailable", f"model {run.model} is not served here anymore"),
            )
            return
        timeout = model.timeout or self._default_timeout
        try:
            output = await self._call(model, run, timeout)
        except TimeoutError:
            await self._finish(
                run,
                RunStatus.FAILED,
                failure=("timeout", f"model {model.name} did not finish within {timeout:g} s"),
            )
        except ModelError as exc:
            await self._finish(run, RunStatus.FAILED, failure=(exc.code, str(exc)))
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("model %s failed run %s: %s", model.name, run.id, message)
            await self._finish(run, RunStatus.FAILED, failure=("model_error", message))
        else:
            await self._finish(run, RunStatus.SUCCEEDED, output=output)

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

    async def _finish(
        self,
        run: Run,
        status: RunStatus,
        *,
        output: str | None = None,
        failure: tuple[str, str] | None = None,
    ) -> None:
        now = self._clock.now()
        code, message = failure if failure is not None else (None, None)
        if failure is not None:
            output = failure_output(*failure)
        done = replace(
            run,
            status=status,
            output=output,
            failure_code=code,
            failure_message=message,
            completed_at=now,
            updated_at=now,
        )
        delivery = None
        if done.callback_url is not None:
            delivery = new_delivery(
                done, delivery_id=new_id(), now=now, policy=self._retry_policy, is_automatic=True
            )
        if await self._store.runs.finish(done, delivery) and delivery is not None:
            self._on_callback()
