"""Leases: work held by a worker that died comes back once its lease expires; a worker that
stops hands its work back at once; a cancel asked elsewhere reaches the executor."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select

from runback.core.states import DeliveryStatus, RunStatus
from runback.store import Store
from runback.store.schema import runs
from runback.testing import ManualClock
from support.harness import make_harness
from support.models import LONG, Long
from support.waiting import eventually


async def test_a_run_whose_lease_expired_is_queued_again_and_runs(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    run = await h.submit()
    await store.runs.claim_queued(
        models=["runback/echo"],
        worker="dead",
        limit=1,
        now=clock.now(),
        lease_until=clock.now() + timedelta(seconds=60),
    )

    assert await h.executor.recover(max_executions=2, expired_only=True) == 0
    assert (await h.run(run.id)).status is RunStatus.RUNNING  # the lease still holds

    clock.advance(61)
    await h.executor.recover(max_executions=2, expired_only=True)
    await h.executor.run_until_idle()

    done = await h.run(run.id)
    assert (done.status, done.execution_count) == (RunStatus.SUCCEEDED, 2)


async def test_a_run_out_of_executions_whose_lease_expired_fails_as_interrupted(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    run = await h.submit()
    await store.runs.claim_queued(
        models=["runback/echo"], worker="dead", limit=1, now=clock.now(), lease_until=clock.now()
    )
    clock.advance(1)

    assert await h.executor.recover(max_executions=1, expired_only=True) == 1

    assert (await h.run(run.id)).failure_code == "interrupted"


async def test_leases_of_executing_runs_are_renewed_so_no_one_takes_them(
    store: Store, clock: ManualClock
) -> None:
    long = Long()
    h = await make_harness(store, clock, registry=long.registry)
    run = await h.submit(model=LONG)
    loop = asyncio.create_task(h.executor.run_forever())
    await long.wait_started()
    first = await _lease(store, run.id)
    clock.advance(30)
    h.executor.wake()

    async def renewed() -> bool:
        return await _lease(store, run.id) == clock.now() + timedelta(seconds=60)

    await eventually(renewed, what="the lease renewed")
    clock.advance(40)  # past the first lease, within the renewed one
    assert clock.now() > first
    assert await h.executor.recover(max_executions=2, expired_only=True) == 0
    assert (await h.run(run.id)).status is RunStatus.RUNNING
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)


async def _lease(store: Store, run_id: UUID) -> datetime:
    async with store.database.read() as conn:
        lease: datetime = (
            await conn.execute(select(runs.c.lease_until).where(runs.c.id == run_id))
        ).scalar_one()
    return lease


async def test_a_delivery_whose_lease_expired_is_sent_again(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    run = await h.submit()
    await h.executor.run_until_idle()
    await store.deliveries.claim_due(
        worker="dead", limit=1, now=clock.now(), lease_until=clock.now() + timedelta(seconds=60)
    )

    assert await store.deliveries.release_lapsed(now=clock.now()) == 0
    clock.advance(61)
    assert await store.deliveries.release_lapsed(now=clock.now()) == 1

    await h.dispatcher.deliver_due()
    delivery, _ = await h.only_delivery(run.id)
    assert delivery.status is DeliveryStatus.SUCCEEDED


async def test_a_stopping_dispatcher_hands_its_deliveries_back_at_once(
    store: Store, clock: ManualClock
) -> None:
    never = asyncio.Event()

    async def hang(_request: object) -> Any:
        await never.wait()

    h = await make_harness(store, clock, handler=hang)
    run = await h.submit()
    await h.executor.run_until_idle()
    loop = asyncio.create_task(h.dispatcher.run_forever())
    await eventually(lambda: _sent(h), what="the attempt is under way")

    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)

    delivery, attempts = await h.only_delivery(run.id)
    assert (delivery.status, attempts) == (DeliveryStatus.PENDING, [])


async def _sent(h: Any) -> bool:
    return bool(h.sender.requests)


async def test_a_cancel_asked_of_another_process_reaches_the_executor(
    store: Store, clock: ManualClock
) -> None:
    long = Long()
    h = await make_harness(store, clock, registry=long.registry)
    run = await h.submit(model=LONG)
    loop = asyncio.create_task(h.executor.run_forever())
    await long.wait_started()

    await store.runs.request_cancel(run.id, now=clock.now())  # as an API process would
    h.executor.wake()

    async def canceled() -> bool:
        return (await h.run(run.id)).status is RunStatus.CANCELED

    await eventually(canceled, what="the run canceled by its executor")
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
