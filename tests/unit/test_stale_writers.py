"""Writers that lost their claim, or a race, change nothing: a worker that stalled past its
lease, a cancel racing a run's end, a recovery racing a stalled executor. On SQLite and
PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from uuid import UUID

import pytest

from runback.core.delivery import NextStep, SendResult
from runback.core.ids import new_id
from runback.core.records import Attempt, Delivery, Run
from runback.core.runs import Ending
from runback.core.states import DeliveryStatus, RunStatus
from runback.store import AttemptOutcome, Store
from runback.testing import HandlerSender, ManualClock, respond
from support.harness import Harness, another_worker, make_harness

LEASE = timedelta(seconds=60)


async def _pending_delivery(h: Harness) -> Run:
    run = await h.submit()
    await h.executor.run_until_idle()
    return run


def _outcome(h: Harness, delivery_id: UUID, status: DeliveryStatus, code: int) -> AttemptOutcome:
    now = h.clock.now()
    attempt = Attempt(new_id(), delivery_id, 1, code, "", 3, None, None, None, now)
    retry = now + timedelta(seconds=1) if status is DeliveryStatus.PENDING else None
    return AttemptOutcome(h.organization_id, attempt, NextStep(status, retry, None, None), now)


async def _taken_over(h: Harness) -> tuple[Delivery, Delivery]:
    """A delivery claimed by worker a, whose lease expired, then claimed by worker b: the
    claim as each of them holds it."""
    now = h.clock.now()
    [lost] = await h.store.deliveries.claim_due(
        worker="a", limit=1, now=now, lease_until=now + LEASE
    )
    h.clock.advance(LEASE.total_seconds() + 1)
    now = h.clock.now()
    assert await h.store.deliveries.release_lapsed(now=now) == 1
    [taken] = await h.store.deliveries.claim_due(
        worker="b", limit=1, now=now, lease_until=now + LEASE
    )
    return lost, taken


async def test_an_attempt_recorded_after_the_lease_expired_and_another_claimed_is_refused(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    run = await _pending_delivery(h)
    stale, fresh = await _taken_over(h)

    late = await store.deliveries.record(
        [_outcome(h, stale.id, DeliveryStatus.SUCCEEDED, 200)], worker="a"
    )

    [refused] = late.refused
    assert refused is not None
    assert "delivering, claimed by b, not delivering, claimed by a" in str(refused)
    delivery, [logged] = await h.only_delivery(run.id)
    assert (delivery.status, delivery.claimed_by, delivery.attempt_count) == (
        DeliveryStatus.DELIVERING,
        "b",
        0,
    )
    assert logged.refused_reason == str(refused)  # the log keeps what happened

    on_time = await store.deliveries.record(
        [_outcome(h, fresh.id, DeliveryStatus.PENDING, 500)], worker="b"
    )

    assert on_time.refused == [None]
    delivery, attempts = await h.only_delivery(run.id)
    assert (delivery.status, delivery.claimed_by, delivery.attempt_count) == (
        DeliveryStatus.PENDING,
        None,
        1,
    )
    assert [a.refused_reason is None for a in attempts] == [False, True]


async def test_a_stalled_dispatchers_outcome_is_logged_and_leaves_the_newer_state(
    store: Store, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    stalled = asyncio.Event()
    resume = asyncio.Event()

    async def slow(_request: object) -> SendResult:
        stalled.set()
        await resume.wait()
        return respond(500)

    h = await make_harness(store, clock, handler=slow)
    run = await _pending_delivery(h)
    first = asyncio.create_task(h.dispatcher.deliver_due())
    await asyncio.wait_for(stalled.wait(), timeout=10)

    # Its lease runs out; another worker takes the delivery and delivers it.
    clock.advance(LEASE.total_seconds() + 1)
    assert await store.deliveries.release_lapsed(now=clock.now()) == 1
    other = another_worker(h, HandlerSender(lambda _request: respond(200)))
    assert await other.deliver_due() == 1

    with caplog.at_level(logging.WARNING, logger="runback.provider.dispatcher"):
        resume.set()
        await asyncio.wait_for(first, timeout=10)

    delivery, attempts = await h.only_delivery(run.id)
    assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.SUCCEEDED, 1)
    assert sorted((a.status_code, a.refused_reason is not None) for a in attempts) == [
        (200, False),
        (500, True),
    ]
    [warning] = [r.getMessage() for r in caplog.records if "does not count" in r.getMessage()]
    assert str(run.id) in warning
    assert "succeeded, unclaimed" in warning


async def test_a_stopping_dispatcher_hands_back_only_what_it_still_holds(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    run = await _pending_delivery(h)
    lost, _ = await _taken_over(h)

    assert await store.deliveries.hand_back([lost.id], worker="a", now=clock.now()) == 0

    delivery, _ = await h.only_delivery(run.id)
    assert (delivery.status, delivery.claimed_by) == (DeliveryStatus.DELIVERING, "b")


# -- runs ------------------------------------------------------------------------------


async def _claimed(h: Harness, worker: str) -> Run:
    await h.submit()
    now = h.clock.now()
    [run] = await h.store.runs.claim_queued(
        models=["runback/echo"], worker=worker, limit=1, now=now, lease_until=now + LEASE
    )
    return run


async def _callbacks(h: Harness, run_id: UUID) -> int:
    return len(await h.deliveries(run_id))


async def test_a_cancel_that_read_the_run_queued_is_refused_once_an_executor_ended_it(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    queued = await h.submit()
    [running] = await store.runs.claim_queued(
        models=["runback/echo"],
        worker="w",
        limit=1,
        now=clock.now(),
        lease_until=clock.now() + LEASE,
    )
    assert await h.outbox.end(running, Ending(RunStatus.SUCCEEDED, "{}")) is not None

    assert await h.outbox.end(queued, Ending.canceled()) is None

    assert (await h.run(queued.id)).status is RunStatus.SUCCEEDED
    assert await _callbacks(h, queued.id) == 1


async def test_a_cancel_racing_a_runs_claim_and_end_ends_it_once_with_one_callback(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    runs = [await h.submit() for _ in range(12)]

    async def execute(run: Run) -> None:
        now = clock.now()
        claimed = await store.runs.claim_queued(
            models=["runback/echo"], worker="w", limit=1, now=now, lease_until=now + LEASE
        )
        for running in claimed:
            await h.outbox.end(running, Ending(RunStatus.SUCCEEDED, "{}"))

    # Cancels and executions interleave: each cancel read its run queued, and some runs are
    # claimed and ended before their cancel lands, some after.
    ended = await asyncio.gather(
        *(
            task
            for n, run in enumerate(runs)
            for task in (
                (h.outbox.end(run, Ending.canceled()), execute(run))
                if n % 2
                else (execute(run), h.outbox.end(run, Ending.canceled()))
            )
        )
    )

    for run in runs:
        status = (await h.run(run.id)).status
        assert status in (RunStatus.CANCELED, RunStatus.SUCCEEDED)
        assert await _callbacks(h, run.id) == 1, run.id
    cancels = [e for e in ended if isinstance(e, Run)]
    canceled = [r for r in runs if (await h.run(r.id)).status is RunStatus.CANCELED]
    assert len(cancels) == len(canceled)  # every cancel that answered a run ended it


async def test_a_stalled_executors_end_after_recovery_failed_its_run_is_refused(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    stalled = await _claimed(h, "dead")
    clock.advance(LEASE.total_seconds() + 1)
    assert await h.executor.recover(max_executions=1, expired_only=True) == 1

    assert await h.outbox.end(stalled, Ending(RunStatus.SUCCEEDED, "{}")) is None

    ended = await h.run(stalled.id)
    assert (ended.status, ended.failure_code) == (RunStatus.FAILED, "interrupted")
    assert await _callbacks(h, stalled.id) == 1


async def test_a_recovery_after_the_executor_ended_its_run_finds_nothing_to_fail(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    late = await _claimed(h, "slow")
    clock.advance(LEASE.total_seconds() + 1)
    assert await h.outbox.end(late, Ending(RunStatus.SUCCEEDED, "{}")) is not None

    assert await h.executor.recover(max_executions=1, expired_only=True) == 0

    assert (await h.run(late.id)).status is RunStatus.SUCCEEDED
    assert await _callbacks(h, late.id) == 1


async def test_a_stopping_executor_hands_back_only_runs_it_still_holds(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    lost = await _claimed(h, "a")
    clock.advance(LEASE.total_seconds() + 1)
    await h.executor.recover(max_executions=2, expired_only=True)
    [taken] = await store.runs.claim_queued(
        models=["runback/echo"],
        worker="b",
        limit=1,
        now=clock.now(),
        lease_until=clock.now() + LEASE,
    )

    await store.runs.hand_back([lost.id], worker="a", now=clock.now())
    await store.runs.extend_leases([lost.id], worker="a", lease_until=clock.now() + 10 * LEASE)

    now = await h.run(lost.id)
    assert (now.status, now.claimed_by, now.execution_count) == (RunStatus.RUNNING, "b", 2)
    assert taken.id == lost.id
    clock.advance(LEASE.total_seconds() + 1)  # b's lease, not extended by a, runs out
    assert await h.executor.recover(max_executions=2, expired_only=True) == 1
