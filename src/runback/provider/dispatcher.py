"""The dispatcher: drains the outbox, one attempt at a time per delivery, many at once.

It claims due deliveries in batches, sends each as its own task (a slow receiver holds up only
its own deliveries), signs every attempt at send time with the secrets active then, and
records attempts through a group commit. It sleeps until the earliest ``next_attempt_at``
or until woken in process (a run just finished), so a 250 ms retry goes out on time; the
poll interval is only a safety net.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from runback import logs, metrics
from runback.batching import GroupCommit
from runback.config import DeliveryConfig
from runback.core.clock import Clock
from runback.core.delivery import (
    NextStep,
    SendError,
    SendResult,
    after_attempt,
    current_hmac,
    delivery_headers,
)
from runback.core.ids import new_id
from runback.core.records import Attempt, CallbackSecret, Delivery
from runback.core.retry import Random
from runback.core.states import DeliveryStatus
from runback.core.urls import loggable
from runback.errors import UrlRefusedError
from runback.outbound.sender import OutboundRequest, Sender
from runback.provider.gate import DestinationGate
from runback.provider.operations import Operations
from runback.store import AttemptOutcome, Refusal, Store
from runback.tracing import SpanLike, Tracing, delivery_attributes
from runback.work_loop import WorkLoop

log = logging.getLogger(__name__)


class Handoff:
    """A delivery reserved by ``Dispatcher.take``: commit it claimed by ``worker`` until
    ``lease_until``, then say whether it was committed."""

    def __init__(self, worker: str, lease_until: datetime) -> None:
        self.worker = worker
        self.lease_until = lease_until
        self.committed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def settle(self, *, committed: bool) -> None:
        if not self.committed.done():
            self.committed.set_result(committed)


class Dispatcher(WorkLoop):
    """Delivers pending callbacks with retries, at most ``config.max_in_flight`` at a time."""

    def __init__(
        self,
        *,
        store: Store,
        sender: Sender,
        clock: Clock,
        random: Random,
        worker_id: str,
        config: DeliveryConfig,
        operations: Operations | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        super().__init__(capacity=config.max_in_flight, poll_interval=config.poll_interval)
        self._store = store
        self._sender = sender
        self._clock = clock
        self._random = random
        self._url_policy = config.url_policy
        self._worker_id = worker_id
        self._attempt_timeout = config.attempt_timeout
        self._lease = timedelta(seconds=config.lease_seconds)
        self._in_flight: set[UUID] = set()
        self._next_upkeep = datetime.min.replace(tzinfo=UTC)
        self._gate = DestinationGate(per_destination=config.per_destination, breaker=config.breaker)
        self.operations = operations
        self._recorder: GroupCommit[AttemptOutcome, Refusal | None] = GroupCommit(self._record)
        self._serving = False
        self._tracing = tracing or Tracing.off()

    def take(self, delivery: Delivery) -> Handoff | None:
        """Reserve a slot for a delivery about to be committed in this process (a run just
        ended), when this dispatcher is serving and its destination takes it now (room
        here and there, circuit closed); answer how to hand it over, or None to leave it
        to a round. The delivery is then committed already claimed by this worker, so no
        other worker can send it; the attempt starts once it is committed."""
        if not self._serving or self.room <= 0 or not self._gate.open_to(delivery.destination):
            return None
        self._gate.admit([delivery])
        handoff = Handoff(self._worker_id, self._clock.now() + self._lease)
        self._in_flight.add(delivery.id)
        self._spawn(self._handed(delivery, handoff), name=f"delivery {delivery.id}")
        return handoff

    async def _handed(self, delivery: Delivery, handoff: Handoff) -> None:
        claimed: Delivery | None = None
        secrets: list[CallbackSecret] = []
        try:
            if await handoff.committed:
                found = await self._store.secrets.signing([delivery.organization_id])
                secrets = found[delivery.organization_id]
                claimed = replace(
                    delivery, status=DeliveryStatus.DELIVERING, claimed_by=handoff.worker
                )
        finally:
            if claimed is None:  # not committed, or no secrets: its lease brings it back
                self._gate.done(delivery.destination)
                self._in_flight.discard(delivery.id)
        if claimed is not None:
            await self._attempt(claimed, secrets)

    @property
    def serving(self) -> bool:
        """Whether its loop runs (``run_forever``): only then does it take deliveries over."""
        return self._serving

    async def run_forever(self) -> None:
        self._serving = True
        try:
            await super().run_forever()
        finally:
            self._serving = False

    async def deliver_due(self) -> int:
        """Send every delivery due now and wait until each attempt is recorded.

        For tests and tools that drive time themselves; answers how many attempts were made.
        """
        attempts = 0
        while started := (await self._start_due())[0]:
            attempts += started
            await self._settle()
        await self._settle()
        return attempts

    async def close(self) -> None:
        """Stop the attempts in flight and hand their deliveries back at once, so another
        worker (or this one, restarted) sends them without waiting for the lease."""
        held = list(self._in_flight)
        await super().close()
        if held:
            await self._store.deliveries.hand_back(
                held, worker=self._worker_id, now=self._clock.now()
            )

    async def _upkeep(self) -> None:
        """Take back the deliveries of dead workers (expired leases), and make due the
        ordered ones whose turn came unseen, a few times per lease."""
        now = self._clock.now()
        if now >= self._next_upkeep:
            self._next_upkeep = now + self._lease / 3
            await self._store.deliveries.release_lapsed(now=now)
            await self._store.ordering.unpark_stranded(now=now)

    async def _round(self) -> float:
        await self._upkeep()
        _, due = await self._start_due()
        if self.room <= 0 or due is None:
            return self._poll_interval  # a finishing attempt wakes the loop
        wait = (due - self._clock.now()).total_seconds()
        return min(max(wait, 0.0), self._poll_interval)

    async def _start_due(self) -> tuple[int, datetime | None]:
        """Claim and send what is due, within the room there is; answers how many started,
        and when the next pending delivery to a destination with room is due.

        Work due for destinations at their limit is not counted as due (it would spin): a
        finishing attempt wakes the loop when one frees up.
        """
        room = self.room
        if room <= 0:
            self._waiting_for_room = True
            return 0, None
        now = self._clock.now()
        found = await self._store.dispatch.round(
            worker=self._worker_id,
            limit=room,
            now=now,
            lease_until=now + self._lease,
            gate=self._gate,
        )
        metrics.observe_circuits(self._gate.circuits())
        # Work may wait for a slot (ours, or a destination's at its limit): a finishing
        # attempt wakes the loop then, and only then.
        self._waiting_for_room = len(found.claimed) == room or bool(self._gate.closed())
        for delivery in found.claimed:
            self._in_flight.add(delivery.id)
            self._spawn(
                self._attempt(delivery, found.secrets[delivery.organization_id]),
                name=f"delivery {delivery.id}",
            )
        return len(found.claimed), found.next_due_at

    async def _send(
        self,
        delivery: Delivery,
        secrets: Sequence[CallbackSecret],
        started: datetime,
    ) -> SendResult:
        """One attempt on the wire, signed with ``secrets``; a URL the policy refuses now
        is a ``blocked_url`` result without a request."""
        try:
            self._url_policy.check(delivery.callback_url)
        except UrlRefusedError as exc:
            return SendResult(None, None, 0, SendError.BLOCKED_URL, str(exc))
        headers = delivery_headers(delivery, secrets, timestamp=int(started.timestamp()))
        return await self._sender.send(
            OutboundRequest(
                url=delivery.callback_url,
                body=delivery.payload_bytes,
                headers=headers,
                timeout=self._attempt_timeout,
            )
        )

    async def _attempt(self, delivery: Delivery, secrets: Sequence[CallbackSecret]) -> None:
        # Its own task (``_spawn``): what it binds holds for its lines only.
        number = delivery.attempt_count + 1
        logs.start(
            run_id=delivery.run_id,
            batch_id=delivery.batch_id,
            delivery_id=delivery.id,
            attempt=number,
        )
        attributes = None
        if self._tracing.enabled:
            attributes = delivery_attributes(delivery, attempt=number)
        with self._tracing.span(
            "deliver.attempt", parent=delivery.traceparent, attributes=attributes
        ) as span:
            await self._attempted(delivery, secrets, number, span)

    async def _attempted(
        self,
        delivery: Delivery,
        secrets: Sequence[CallbackSecret],
        number: int,
        span: SpanLike,
    ) -> None:
        started = self._clock.now()
        result = await self._send(delivery, secrets, started)
        finished = self._clock.now()
        if result.status is not None:
            span.set_attribute("http.response.status_code", result.status)
        if result.failure_reason is not None:
            span.set_attribute("runback.failure_reason", result.failure_reason.value)
        step = after_attempt(
            result,
            attempt_number=number,
            policy=delivery.retry_policy,
            now=finished,
            random=self._random,
        )
        attempt = Attempt(
            id=new_id(),
            delivery_id=delivery.id,
            attempt_number=number,
            status_code=result.status,
            response_body=result.body,
            response_time_ms=result.elapsed_ms,
            error_message=result.describe(),
            failure_reason_code=result.failure_reason,
            signing_secret_id=_id_of(current_hmac(secrets)),
            created_at=started,
        )
        try:
            refused = await self._recorder.submit(
                AttemptOutcome(
                    delivery.organization_id,
                    attempt,
                    step,
                    finished,
                    delivery.destination,
                    delivery.callback_url if delivery.ordered else None,
                )
            )
        finally:
            # Only once the outcome is in the breaker: freed earlier, the slot would let a
            # round send another wave to a dead destination before its circuit opens.
            self._gate.done(delivery.destination)
        self._in_flight.discard(delivery.id)
        if refused is not None:
            log.warning(
                "attempt %d of delivery %s (run %s) does not count: %s",
                number,
                delivery.id,
                delivery.run_id,
                refused,
            )
            metrics.attempt_refused()
            return
        if step.status is not DeliveryStatus.SUCCEEDED:
            _log_failed(delivery, number, step)
        if step.status is DeliveryStatus.PENDING or delivery.ordered:
            # Its retry may be due before the loop would look again; an ordered one's
            # end makes the next one to its URL due.
            self.wake()
        metrics.attempted(delivery.destination, result, step)
        failed = step.status is DeliveryStatus.FAILED
        if failed and self.operations is not None and delivery.run_id is not None:
            await self.operations.exhausted(delivery, step)

    async def _record(self, outcomes: list[AttemptOutcome]) -> list[Refusal | None]:
        recorded = await self._store.deliveries.record(
            outcomes, worker=self._worker_id, breaker=self._gate.breaker
        )
        for destination, transition in recorded.transitions:
            log.warning("%s: %s", transition.value, destination.host)
            metrics.destination_transition(transition)
            if self.operations is not None:
                await self.operations.destination(destination, transition)
        return recorded.refused


def _log_failed(delivery: Delivery, number: int, step: NextStep) -> None:
    """One line per failed attempt: a receiver that is down leaves a trace."""
    then = (
        f"next attempt at {step.next_attempt_at.isoformat()}"
        if step.next_attempt_at is not None
        else "the delivery failed for good"
    )
    log.warning(
        "callback attempt %d failed: run %s, delivery %s to %s, %s (%s); %s",
        number,
        delivery.run_id,
        delivery.id,
        loggable(delivery.callback_url),
        step.failure_reason_code.value if step.failure_reason_code else "unknown",
        step.failure_detail,
        then,
    )


def _id_of(secret: CallbackSecret | None) -> UUID | None:
    return None if secret is None else secret.id
