"""The outbox: a run's end and its callback delivery, committed together.

Whoever ends a run (the executor, a cancel, crash recovery) ends it here, so the callback
exists exactly when the terminal state does; redeliveries are created here too. Each new
delivery wakes the dispatcher in process, or, when that dispatcher takes it at once (room, a
healthy destination), is committed already claimed by it and sent without a claim round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from runback import metrics
from runback.core.batches import batch_callback_body
from runback.core.clock import Clock
from runback.core.delivery import new_batch_delivery, new_delivery, new_event_delivery
from runback.core.events import EventKind, asks, event_key, event_webhook_id, sequence_of
from runback.core.ids import new_id, webhook_id
from runback.core.payload import callback_event, dumps, result_callback_body, run_callback_body
from runback.core.records import (
    TERMINAL_EVENT,
    Batch,
    Delivery,
    JsonText,
    OutputFile,
    Recovery,
    Run,
    RunEvent,
    RunResult,
)
from runback.core.retry import RetryPolicy
from runback.core.runs import Ending, end_run
from runback.core.states import DeliveryStatus
from runback.errors import ConflictError, DeliveryInFlightError, NotFoundError
from runback.provider.dispatcher import Handoff
from runback.provider.ordering import Ordering
from runback.provider.outputs import Outputs
from runback.provider.payloads import Payloads
from runback.provider.registry import Model
from runback.store import Store
from runback.tracing import Tracing, delivery_attributes

log = logging.getLogger(__name__)


class Outbox:
    """Ends runs and creates their deliveries."""

    def __init__(
        self,
        *,
        store: Store,
        outputs: Outputs,
        payloads: Payloads,
        clock: Clock,
        retry_policy: RetryPolicy,
        on_delivery: Callable[[], None],
        take: Callable[[Delivery], Handoff | None] | None = None,
        model_of: Callable[[str], Model | None] = lambda _name: None,
        ordering: Ordering | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._store = store
        self._model_of = model_of
        self._outputs = outputs
        self._payloads = payloads
        self._clock = clock
        self._retry_policy = retry_policy
        self._on_delivery = on_delivery
        self._take = take
        self._ordering = ordering
        self._tracing = tracing or Tracing.off()

    def _policy(self, run: Run) -> RetryPolicy:
        model = self._model_of(run.model)
        return self._retry_policy if model is None or model.retry is None else model.retry

    async def _delivery(
        self, run: Run, output: JsonText | None, *, is_automatic: bool
    ) -> Delivery | None:
        """The delivery of ``run``'s end, ``output`` its rendered output; None when its
        model's shape sends none, or the run did not ask for it."""
        if not asks(run, EventKind.COMPLETED):
            return None
        model = self._model_of(run.model)
        body = None
        if model is not None and model.callback is not None:
            body = model.callback(run, output)
            if body is None:
                return None
        made = new_delivery(
            run,
            delivery_id=new_id(),
            now=self._clock.now(),
            policy=self._policy(run),
            is_automatic=is_automatic,
            output=output,
            body=body,
        )
        return await self._payloads.fit(made, run=run)

    async def end(self, run: Run, ending: Ending, *, files: bool = True) -> Run | None:
        """End ``run`` if it is still as read (its status, and the worker holding it);
        answer the ended run, or None if another writer ended or moved it first.
        ``files=False`` says the run has no output files (its executor saw none saved),
        sparing their look-up."""
        done = end_run(run, ending, now=self._clock.now())
        delivery, event = await self._ending(done, files=files)
        if delivery is not None and self._tracing.enabled:
            delivery = self._traced(delivery)
        delivery, handoff = await self._hand_over(delivery)
        try:
            refused = await self._store.outbox.end(
                run,
                done,
                delivery,
                lease_until=handoff.lease_until if handoff else None,
                event=event,
            )
        except BaseException:
            if handoff is not None:
                handoff.settle(committed=False)
            raise
        if handoff is not None:
            handoff.settle(committed=refused is None)
        if refused is not None:
            log.info("run %s was not ended as %s: %s", run.id, done.status, refused)
            await self._payloads.discard(delivery)
            return None
        metrics.run_ended(done, known=self._model_of(done.model) is not None)
        if handoff is None and delivery is not None:
            self._on_delivery()
        if done.batch_id is not None:
            await self.owe_batch_callback(done.batch_id)
        return done

    def _traced(self, delivery: Delivery, *, parent: str | None = None) -> Delivery:
        """The delivery with the context of its ``deliver`` span, a child of ``parent``
        (else of the current span: ``execute``): its attempts, wherever and whenever they
        are made, are the span's children."""
        attributes = delivery_attributes(delivery)
        with self._tracing.span("deliver", parent=parent, attributes=attributes):
            return replace(delivery, traceparent=self._tracing.traceparent())

    async def _ending(self, done: Run, *, files: bool) -> tuple[Delivery | None, RunEvent | None]:
        """What an ended run commits besides itself: its callback, and its terminal event
        when it asked for events (its stream's last)."""
        if done.callback_url is None and done.events is None:
            return None, None
        # Rendered once for both (signing each file's URL is the costly part).
        output = await self._outputs.render_one(done) if files else done.output
        delivery = None
        if done.callback_url is not None:
            delivery = await self._delivery(done, output, is_automatic=True)
        event = None
        if done.events is not None:
            body = run_callback_body(done, output=output)
            event = self._event(done, callback_event(done.status), body)
        return delivery, event

    async def end_body(self, run: Run) -> bytes:
        """The body of an ended run's terminal event in runback's own shape, its files'
        URLs signed now (what its stream shows, and its callback unless its model has its
        own shape)."""
        return run_callback_body(run, output=await self._outputs.render_one(run))

    def _event(self, run: Run, name: str, body: bytes) -> RunEvent:
        return RunEvent(
            run_id=run.id,
            organization_id=run.organization_id,
            sequence=run.event_sequence,
            event=name,
            body=body,
            created_at=self._clock.now(),
        )

    async def add_event(self, run: Run, name: str, body: bytes) -> bool:
        """Commit event ``run.event_sequence`` of a running ``run`` (``name``, its frozen
        ``body``), with its callback when the run has a callback URL; False when the worker
        that read ``run`` no longer holds it (nothing is written then)."""
        event = self._event(run, name, body)
        delivery = None
        if run.callback_url is not None:
            delivery = await self._event_delivery(run, event, is_automatic=True)
        assert run.claimed_by is not None, "only the worker running a run makes its events"
        if not await self._store.outbox.add_event(event, delivery, worker=run.claimed_by):
            return False
        if delivery is not None:
            self._on_delivery()
        return True

    async def _event_delivery(self, run: Run, event: RunEvent, *, is_automatic: bool) -> Delivery:
        made = new_event_delivery(
            run,
            event_key=event_key(event.sequence),
            webhook_id=event_webhook_id(run.id, event.sequence),
            body=event.body,
            delivery_id=new_id(),
            now=self._clock.now(),
            policy=self._policy(run),
            is_automatic=is_automatic,
        )
        return await self._payloads.fit(made, run=run)

    async def redeliver_event(
        self, run: Run, sequence: int, *, recovery_id: UUID | None = None
    ) -> Delivery:
        """A new delivery of one of ``run``'s progress events: its bytes as made (the same
        ``sequence`` and ``webhook-id``). Its terminal event is redelivered by ``redeliver``."""
        if run.callback_url is None:
            raise ConflictError(
                f"run {run.id} has no callback_url to deliver to", code="NO_CALLBACK_URL"
            )
        event = await self._store.events.get(run.id, sequence)
        if event is None or (sequence == run.event_sequence and run.status.is_terminal):
            raise NotFoundError(
                f"run {run.id} made no progress event {sequence}", code="EVENT_NOT_FOUND"
            )
        delivery = replace(
            await self._event_delivery(run, event, is_automatic=False), recovery_id=recovery_id
        )
        await self._store.outbox.add(delivery)
        self._on_delivery()
        return delivery

    async def send_result(
        self, run: Run, *, position: int, data: Mapping[str, Any], output: OutputFile | None
    ) -> RunResult:
        """Commit one result of a running ``run``, with its callback (an event of its own)
        when the run has a callback URL."""
        result = RunResult(
            id=new_id(),
            run_id=run.id,
            organization_id=run.organization_id,
            position=position,
            data=dumps(dict(data)),
            output_id=None if output is None else output.id,
            created_at=self._clock.now(),
        )
        delivery = None
        if run.callback_url is not None:
            delivery = await self._result_delivery(run, result, output, is_automatic=True)
        await self._store.outbox.add_result(result, delivery)
        if delivery is not None:
            self._on_delivery()
        return result

    async def shown_result(
        self, run: Run, result: RunResult, output: OutputFile | None = None
    ) -> JsonText:
        """A result's data with its file's entry (URL signed now) under ``output``."""
        if output is None and result.output_id is not None:
            output = await self._store.outputs.get(result.output_id)
        if output is None:
            return result.data
        shown = orjson.loads(result.data)
        shown["output"] = await self._outputs.entry(
            output, expires_at=self._outputs.expires_at(run)
        )
        return dumps(shown)

    async def _result_delivery(
        self, run: Run, result: RunResult, output: OutputFile | None, *, is_automatic: bool
    ) -> Delivery:
        data = await self.shown_result(run, result, output)
        model = self._model_of(run.model)
        if model is not None and model.result_callback is not None:
            body = model.result_callback(run, result, data)
        else:
            body = result_callback_body(run, result, data=data)
        made = new_event_delivery(
            run,
            event_key=result.event_key,
            webhook_id=webhook_id(result.id),
            body=body,
            delivery_id=new_id(),
            now=self._clock.now(),
            policy=self._policy(run),
            is_automatic=is_automatic,
        )
        return await self._payloads.fit(made, run=run)

    async def redeliver_result(
        self, run: Run, result_id: UUID, *, recovery_id: UUID | None = None
    ) -> Delivery:
        """A new delivery of one of ``run``'s results, its file's URL signed again."""
        if run.callback_url is None:
            raise ConflictError(
                f"run {run.id} has no callback_url to deliver to", code="NO_CALLBACK_URL"
            )
        result = await self._store.outputs.result(result_id, run_id=run.id)
        if result is None:
            raise NotFoundError(f"run {run.id} sent no result {result_id}", code="RESULT_NOT_FOUND")
        delivery = await self._result_delivery(run, result, None, is_automatic=False)
        delivery = replace(delivery, recovery_id=recovery_id)
        await self._store.outbox.add(delivery)
        self._on_delivery()
        return delivery

    async def owe_batch_callback(self, batch_id: UUID) -> Delivery | None:
        """Commit the callback of a batch whose items have all ended, if it is owed and not
        yet committed (the ender of its last item calls this, and the executor's sweep after
        a crash); answers the delivery this call committed."""
        batch = await self._store.batches.get(batch_id)
        if batch is None or not batch.callback_due:
            return None
        delivery = await self._batch_delivery(batch, is_automatic=True)
        if not await self._store.outbox.commit_batch_callback(batch.id, delivery):
            await self._payloads.discard(delivery)
            return None
        self._on_delivery()
        return delivery

    async def _batch_delivery(self, batch: Batch, *, is_automatic: bool) -> Delivery:
        items = await self._store.batches.items(batch.id)
        body = batch_callback_body(batch, items, await self._outputs.render(items))
        made = new_batch_delivery(
            batch,
            body=body,
            delivery_id=new_id(),
            now=self._clock.now(),
            policy=self._retry_policy,
            is_automatic=is_automatic,
        )
        return await self._payloads.fit(made)

    async def redeliver_batch(self, batch: Batch) -> Delivery:
        """A new delivery of an ended batch's callback, built from its items now."""
        if not batch.status.is_terminal:
            raise ConflictError(
                f"batch {batch.id} is {batch.status}: its callback is sent when its last item ends",
                code="BATCH_NOT_TERMINAL",
            )
        if batch.callback_url is None:
            raise ConflictError(
                f"batch {batch.id} has no callback_url to deliver to", code="NO_CALLBACK_URL"
            )
        delivery = await self._batch_delivery(batch, is_automatic=False)
        await self._store.outbox.add(delivery)
        self._on_delivery()
        return delivery

    async def _hand_over(self, delivery: Delivery | None) -> tuple[Delivery | None, Handoff | None]:
        """Offer a new delivery to this process's dispatcher: answer the delivery as it is
        to be stored (claimed by the dispatcher's worker when taken) and the handoff. An
        ordered one is never offered: only a claim knows whether it is its turn."""
        if delivery is None or self._take is None:
            return delivery, None
        if self._ordering is not None and await self._ordering.is_ordered(
            delivery.organization_id, delivery.callback_url
        ):
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
        made = await self._delivery(run, await self._outputs.render_one(run), is_automatic=False)
        if made is None:
            raise ConflictError(
                f"run {run.id} sends no callback when it ends: it did not ask for 'completed', "
                "or its results were its callbacks (redeliver one with result_id)",
                code="NO_CALLBACK",
            )
        delivery = replace(made, recovery_id=recovery_id)
        if self._tracing.enabled:  # a redelivery joins its run's trace
            delivery = self._traced(delivery, parent=run.traceparent)
        await self._store.outbox.add(delivery)
        self._on_delivery()
        return delivery

    async def recover(self, recovery: Recovery) -> Recovery:
        """Queue again every failed delivery the recovery covers: a run's as a fresh
        redelivery, an operational one with its own bytes. A run with a delivery in flight
        already is skipped (it is being delivered)."""
        queued = skipped = 0
        seen: set[tuple[UUID, str]] = set()
        after: tuple[datetime, UUID] | None = None
        while True:
            failed, after = await self._store.deliveries.failed_between(recovery, after=after)
            for delivery in failed:
                event = (delivery.run_id or delivery.id, delivery.event_key)
                if event in seen:
                    continue
                try:
                    await self._queue_again(delivery, recovery.id)
                    queued += 1
                except (DeliveryInFlightError, ConflictError, NotFoundError):
                    skipped += 1
                seen.add(event)
            if after is None:
                break
        done = replace(recovery, queued=queued, skipped=skipped)
        await self._store.deliveries.save_recovery(done)
        return done

    async def redeliver_delivery(self, delivery: Delivery) -> None:
        """Queue ``delivery``'s event again, as a recovery queues a failed one: a run's as a
        fresh redelivery, an operational one with its own bytes (the dashboard's button)."""
        await self._queue_again(delivery, None)

    async def _queue_again(self, failed: Delivery, recovery_id: UUID | None) -> None:
        if failed.run_id is not None:
            run = await self._store.runs.get(failed.run_id)
            if run is None:
                raise ConflictError(f"run {failed.run_id} is gone")
            sequence = sequence_of(failed.event_key)
            if failed.event_key == TERMINAL_EVENT:
                await self.redeliver(run, recovery_id=recovery_id)
            elif sequence is not None:
                await self.redeliver_event(run, sequence, recovery_id=recovery_id)
            else:
                result_id = UUID(failed.event_key.removeprefix("result:"))
                await self.redeliver_result(run, result_id, recovery_id=recovery_id)
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
