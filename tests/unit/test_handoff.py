"""A run ended in a process that also dispatches is handed to that dispatcher at once: its
delivery is committed already claimed, so no claim round is needed and no other worker can
send it. On SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from runback.core.runs import Ending
from runback.core.states import DeliveryStatus, RunStatus
from runback.store import Store
from runback.testing import HandlerSender, ManualClock, respond
from runback.work_loop import WorkLoop
from support.harness import Harness, another_worker, make_harness
from support.waiting import eventually

PER_DESTINATION = 16


@asynccontextmanager
async def serving(*workers: WorkLoop) -> AsyncIterator[None]:
    loops = [asyncio.create_task(worker.run_forever()) for worker in workers]
    try:
        yield
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)


async def _all_delivered(h: Harness, run_ids: list[UUID]) -> bool:
    for run_id in run_ids:
        found = await h.deliveries(run_id)
        if not found or found[0][0].status is not DeliveryStatus.SUCCEEDED:
            return False
    return True


async def test_a_run_handed_over_in_process_is_sent_once_even_with_another_worker_polling(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock, per_destination=PER_DESTINATION)
    other = HandlerSender(lambda _request: respond(200))
    runs = [await h.submit() for _ in range(PER_DESTINATION // 2)]

    async with serving(h.dispatcher, another_worker(h, other, poll_interval=0.005)):
        await eventually(lambda: _serving(h), what="the dispatcher serving")
        await h.executor.run_until_idle()
        await eventually(lambda: _all_delivered(h, [r.id for r in runs]), what="all delivered")

    assert other.requests == []  # never pending: nothing for a claim to find
    sent = sorted(r.headers["webhook-id"] for r in h.sender.requests)
    delivered = [await h.only_delivery(run.id) for run in runs]
    assert sent == sorted(delivery.webhook_id for delivery, _ in delivered)  # once each
    assert [len(attempts) for _, attempts in delivered] == [1] * len(runs)


async def _serving(h: Harness) -> bool:
    return h.dispatcher.serving


async def test_a_run_ended_while_no_dispatcher_serves_here_waits_for_a_round(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    run = await h.submit()

    await h.executor.run_until_idle()

    delivery, attempts = await h.only_delivery(run.id)
    assert (delivery.status, delivery.claimed_by, attempts) == (DeliveryStatus.PENDING, None, [])
    assert await h.dispatcher.deliver_due() == 1


async def test_an_end_that_is_refused_gives_its_reserved_slot_back(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock, per_destination=1)
    queued = await h.submit()
    [running] = await store.runs.claim_queued(
        models=["runback/echo"], worker="w", limit=1, now=clock.now(), lease_until=clock.now()
    )

    async with serving(h.dispatcher):
        await eventually(lambda: _serving(h), what="the dispatcher serving")
        assert await h.outbox.end(running, Ending(RunStatus.SUCCEEDED, "{}")) is not None
        await eventually(lambda: _all_delivered(h, [queued.id]), what="its callback sent")
        # A cancel that read the run queued: refused, after reserving the one slot.
        assert await h.outbox.end(queued, Ending.canceled()) is None
        later = await h.submit()
        await h.executor.run_until_idle()  # the slot is free again: handed over and sent
        await eventually(lambda: _all_delivered(h, [later.id]), what="the next one sent")

    assert len(h.sender.requests) == 2
