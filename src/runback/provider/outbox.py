"""The outbox: a run's end and its callback delivery, committed together.

Whoever ends a run (the executor, a cancel, crash recovery) ends it here, so the callback
exists exactly when the terminal state does; redeliveries are created here too. Each new
delivery wakes the dispatcher in process, or, when that dispatcher takes it at once (room, a
healthy destination), is committed already claimed by it and sent without a claim round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from runback.core.clock import Clock
from runback.core.delivery import new_delivery
from runback.core.ids import new_id
from runback.core.records import Delivery, Recovery, Run
from runback.core.retry import RetryPolicy
from runback.core.runs import Ending, end_run
from runback.core.states import DeliveryStatus
from runback.errors import ConflictError, DeliveryInFlightError
from runback.provider.dispatcher import Handoff
from runback.provider.outputs import Outputs
from runback.store import Store

log = logging.getLogger(__name__)


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
        take: Callable[[Delivery], Handoff | None] | None = None,
    ) -> None:
        self._store = store
        self._outputs = outputs
        self._clock = clock
        self._retry_policy = retry_policy
        self._on_delivery = on_delivery
        self._take = take

    async def _delivery(self, run: Run, *, is_automatic: bool, files: bool = True) -> Delivery:
        return new_delivery(
            run,
            delivery_id=new_id(),
            now=self._clock.now(),
            policy=self._retry_policy,
            is_automatic=is_automatic,
            output=await self._outputs.render_one(run) if files else run.output,
        )

    async def end(self, run: Run, ending: Ending, *, files: bool = True) -> Run | None:
        """End ``run`` if it is still as read (its status, and the worker holding it);
        answer the ended run, or None if another writer ended or moved it first.
        ``files=False`` says the run has no output files (its executor saw none saved),
        sparing their look-up."""
        done = end_run(run, ending, now=self._clock.now())
        delivery = None
        if done.callback_url is not None:
            delivery = await self._delivery(done, is_automatic=True, files=files)
        delivery, handoff = self._hand_over(delivery)
        try:
            refused = await self._store.outbox.end(
                run, done, delivery, lease_until=handoff.lease_until if handoff else None
            )
        except BaseException:
            if handoff is not None:
                handoff.settle(committed=False)
            raise
        if handoff is not None:
            handoff.settle(committed=refused is None)
        if refused is not None:
            log.info("run %s was not ended as %s: %s", run.id, done.status, refused)
            return None
        if handoff is None and delivery is not None:
            self._on_delivery()
        return done

    def _hand_over(self, delivery: Delivery | None) -> tuple[Delivery | None, Handoff | None]:
        """Offer a new delivery to this process's dispatcher: answer the delivery as it is
        to be stored (claimed by the dispatcher's worker when taken) and the handoff."""
        if delivery is None or self._take is None:
            return delivery, None
        handoff = self._take(delivery)
        if handoff is None:
            return delivery, None
        claimed = replace(delivery, status=DeliveryStatus.DELIVERING, claimed_by=handoff.worker)
        return claimed, handoff

    async def redeliver(self, run: Run, *, recovery_id: UUID | None = None) -> Delivery:
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
        delivery = replace(await self._delivery(run, is_automatic=False), recovery_id=recovery_id)
        await self._store.outbox.add(delivery)
        self._on_delivery()
        return delivery

    async def recover(self, recovery: Recovery) -> Recovery:
        """Queue again every failed delivery the recovery covers: a run's as a fresh
        redelivery, an operational one with its own bytes. A run with a delivery in flight
        already is skipped (it is being delivered)."""
        queued = skipped = 0
        runs_seen: set[UUID] = set()
        after: tuple[datetime, UUID] | None = None
        while True:
            failed, after = await self._store.deliveries.failed_between(recovery, after=after)
            for delivery in failed:
                if delivery.run_id in runs_seen:
                    continue
                try:
                    await self._queue_again(delivery, recovery.id)
                    queued += 1
                except (DeliveryInFlightError, ConflictError):
                    skipped += 1
                if delivery.run_id is not None:
                    runs_seen.add(delivery.run_id)
            if after is None:
                break
        done = replace(recovery, queued=queued, skipped=skipped)
        await self._store.deliveries.save_recovery(done)
        return done

    async def _queue_again(self, failed: Delivery, recovery_id: UUID) -> None:
        if failed.run_id is not None:
            run = await self._store.runs.get(failed.run_id)
            if run is None:
                raise ConflictError(f"run {failed.run_id} is gone")
            await self.redeliver(run, recovery_id=recovery_id)
            return
        now = self._clock.now()
        copy = replace(
            failed,
            id=new_id(),
            status=DeliveryStatus.PENDING,
            failure_reason_code=None,
            failure_detail=None,
            attempt_count=0,
            next_attempt_at=now,
            signing_secret_id=None,
            created_at=now,
            updated_at=now,
            completed_at=None,
            recovery_id=recovery_id,
        )
        await self._store.outbox.add(copy)
        self._on_delivery()
