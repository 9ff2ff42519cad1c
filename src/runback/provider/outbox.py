"""The outbox: a run's end and its callback delivery, committed together.

Whoever ends a run (the executor, a cancel, crash recovery) ends it here, so the callback
exists exactly when the terminal state does; redeliveries are created here too. Each new
delivery wakes the dispatcher in process.
"""

from __future__ import annotations

from collections.abc import Callable

from runback.core.clock import Clock
from runback.core.delivery import new_delivery
from runback.core.ids import new_id
from runback.core.records import Delivery, Run
from runback.core.retry import RetryPolicy
from runback.core.runs import Ending, end_run
from runback.core.states import RunStatus
from runback.errors import ConflictError
from runback.provider.outputs import Outputs
from runback.store import Store


class Outbox:
    """Ends runs and creates their deliveries."""

    def __init__(
        self,
        *,
        store: Store,
        outputs: Outputs,
        clock: Clock,
        retry_policy: RetryPolicy,
        on_delivery: Callable[[], None],
    ) -> None:
        self._store = store
        self._outputs = outputs
        self._clock = clock
        self._retry_policy = retry_policy
        self._on_delivery = on_delivery

    async def _delivery(self, run: Run, *, is_automatic: bool) -> Delivery:
        return new_delivery(
            run,
            delivery_id=new_id(),
            now=self._clock.now(),
            policy=self._retry_policy,
            is_automatic=is_automatic,
            output=await self._outputs.render_one(run),
        )

    async def end(
        self, run: Run, ending: Ending, *, expected: RunStatus = RunStatus.RUNNING
    ) -> Run | None:
        """End ``run`` if it is still ``expected``; answer the ended run, or None if it was
        not (another writer ended or moved it first)."""
        done = end_run(run, ending, now=self._clock.now())
        delivery = None
        if done.callback_url is not None:
            delivery = await self._delivery(done, is_automatic=True)
        if not await self._store.runs.finish(done, delivery, expected=expected):
            return None
        if delivery is not None:
            self._on_delivery()
        return done

    async def redeliver(self, run: Run) -> Delivery:
        """A new delivery of a terminal run's callback, its payload built from the run now."""
        if not run.status.is_terminal:
            raise ConflictError(
                f"run {run.id} is {run.status}: its callback is sent when it ends",
                code="RUN_NOT_TERMINAL",
            )
        if run.callback_url is None:
            raise ConflictError(
                f"run {run.id} has no callback_url to deliver to", code="NO_CALLBACK_URL"
            )
        delivery = await self._delivery(run, is_automatic=False)
        await self._store.deliveries.insert(delivery)
        self._on_delivery()
        return delivery
