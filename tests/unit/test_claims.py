"""Claiming due deliveries: each destination gets no more than its room, and work waiting
only for busy destinations is not counted as due."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from runback.store import Store
from runback.testing import ManualClock
from support.harness import make_harness
from support.waiting import eventually

BUSY = "https://busy.example/hook"
QUIET = "https://quiet.example/hook"


async def _pending(store: Store, clock: ManualClock, urls: list[str]) -> None:
    h = await make_harness(store, clock)
    for url in urls:
        await h.submit(callback_url=url)
    await h.executor.run_until_idle()


async def test_a_claim_takes_no_more_per_destination_than_its_room(
    store: Store, clock: ManualClock
) -> None:
    await _pending(store, clock, [BUSY] * 6 + [QUIET] * 2)
    room = {"busy.example:443": 2, "quiet.example:443": 5}

    claimed = await store.deliveries.claim_due(
        worker="w",
        limit=10,
        now=clock.now(),
        lease_until=clock.now() + timedelta(seconds=60),
        room=lambda destination: room[destination],
    )

    taken = sorted(d.destination for d in claimed)
    assert taken == ["busy.example:443"] * 2 + ["quiet.example:443"] * 2


async def test_a_claim_stops_at_its_limit(store: Store, clock: ManualClock) -> None:
    await _pending(store, clock, [BUSY] * 5)

    claimed = await store.deliveries.claim_due(
        worker="w",
        limit=3,
        now=clock.now(),
        lease_until=clock.now() + timedelta(seconds=60),
        room=lambda destination: 100,
    )

    assert len(claimed) == 3


async def test_work_only_for_skipped_destinations_is_not_due(
    store: Store, clock: ManualClock
) -> None:
    await _pending(store, clock, [BUSY] * 3)

    assert await store.deliveries.next_due_at() is not None
    assert await store.deliveries.next_due_at(skip_destinations={"busy.example:443"}) is None


async def test_a_dispatcher_at_a_destinations_limit_sleeps_instead_of_spinning(
    store: Store, clock: ManualClock
) -> None:
    never = asyncio.Event()

    async def hang(_request: object) -> Any:
        await never.wait()

    h = await make_harness(store, clock, handler=hang, per_destination=1)
    for _ in range(3):
        await h.submit(callback_url=BUSY)
    await h.executor.run_until_idle()

    # The first round sends one; the other two wait for the destination, not for time.
    delay = await h.dispatcher._round()

    assert delay == h.dispatcher._poll_interval
    await eventually(lambda: _sent(h), what="the first attempt under way")
    assert len(h.sender.requests) == 1
    await h.dispatcher.close()


async def _sent(h: Any) -> bool:
    return bool(h.sender.requests)


async def test_a_finished_attempt_wakes_the_dispatcher_when_its_destination_was_full(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock, per_destination=1)
    for _ in range(2):
        await h.submit(callback_url=BUSY)
    await h.executor.run_until_idle()

    h.dispatcher._wake.clear()
    await h.dispatcher._round()  # the second must wait for the first's slot
    await h.dispatcher._settle()

    assert h.dispatcher._wake.is_set()


async def test_a_finished_attempt_wakes_nothing_when_nothing_waits(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    await h.submit(callback_url=QUIET)
    await h.executor.run_until_idle()

    h.dispatcher._wake.clear()
    await h.dispatcher._round()
    await h.dispatcher._settle()

    assert len(h.sender.requests) == 1
    assert not h.dispatcher._wake.is_set()  # a round would only find nothing to do
