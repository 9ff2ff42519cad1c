"""Ordered delivery: callbacks to an ordered URL go one at a time, in the order they were
made, each after the previous one succeeded or was given up; unordered ones never wait. On
SQLite and PostgreSQL (the ``store`` fixture), driven by a manual clock."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy import update

from runback.config import DeliveryConfig
from runback.core.delivery import FailureReason, SendResult, pending_delivery
from runback.core.ids import new_id
from runback.core.records import Delivery
from runback.core.runs import Ending
from runback.core.states import DeliveryStatus
from runback.errors import ConflictError, NotFoundError
from runback.outbound.sender import OutboundRequest
from runback.provider.dispatcher import Dispatcher, Handoff
from runback.provider.ordering import Ordering
from runback.provider.outbox import Outbox
from runback.provider.payloads import Payloads
from runback.store import Store
from runback.store.destinations import HELD, _hold, _probe
from runback.store.ordering import WAITING
from runback.store.schema import deliveries
from runback.testing import HandlerSender, ManualClock, respond
from runback.work_loop import WorkLoop
from support.harness import FAST_POLICY, Harness, make_harness
from support.waiting import eventually

ORDERED = "https://ordered.example/hook"
FREE = "https://free.example/hook"


async def _add(h: Harness, url: str, label: str) -> Delivery:
    """Commit a pending delivery to ``url`` whose body is ``label``, a moment after the last."""
    h.clock.advance(0.001)
    delivery = pending_delivery(
        organization_id=h.organization_id,
        callback_url=url,
        webhook_id=f"msg_{label}",
        body=label.encode(),
        delivery_id=new_id(),
        now=h.clock.now(),
        policy=FAST_POLICY,
        is_automatic=True,
    )
    await h.store.outbox.add(delivery)
    return delivery


async def _status(h: Harness, delivery: Delivery) -> Delivery:
    found = await h.store.deliveries.get(delivery.id, organization_id=h.organization_id)
    assert found is not None
    return found[0]


async def _claim(h: Harness, worker: str = "w") -> list[Delivery]:
    now = h.clock.now()
    return await h.store.deliveries.claim_due(
        worker=worker, limit=50, now=now, lease_until=now + timedelta(seconds=60)
    )


def _bodies(sender: HandlerSender) -> list[str]:
    return [request.body.decode() for request in sender.requests]


async def _order(h: Harness, url: str = ORDERED) -> None:
    await h.runtime.api.ordering.switch_on(h.organization_id, url)


async def _deliver_until_quiet(h: Harness, *, step: float = 2.0, rounds: int = 20) -> None:
    for _ in range(rounds):
        await h.dispatcher.deliver_due()
        h.clock.advance(step)


class TestClaims:
    async def test_an_ordered_url_gives_a_claim_only_its_oldest_delivery_in_flight(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        await _order(h)
        ordered = [await _add(h, ORDERED, f"o{n}") for n in range(3)]
        free = [await _add(h, FREE, f"f{n}") for n in range(3)]

        claimed = await _claim(h)

        assert {d.id for d in claimed} == {ordered[0].id} | {d.id for d in free}
        assert [d.ordered for d in claimed if d.callback_url == ORDERED] == [True]
        assert await _claim(h, "another") == []  # the head is delivering: still in flight

    async def test_a_delivery_made_before_ordering_was_switched_on_is_not_ordered(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        before = await _add(h, ORDERED, "before")
        await _order(h)
        after = [await _add(h, ORDERED, f"after{n}") for n in range(2)]

        claimed = {d.id: d.ordered for d in await _claim(h)}

        # The one made before neither waits nor holds; the ordered ones go one at a time.
        assert claimed == {before.id: False, after[0].id: True}

    async def test_ordering_is_per_organization(self, store: Store, clock: ManualClock) -> None:
        h = await make_harness(store, clock)
        other = await store.accounts.create_organization("other", now=clock.now())
        await h.runtime.api.ordering.switch_on(other.id, ORDERED)
        mine = [await _add(h, ORDERED, f"m{n}") for n in range(2)]

        assert {d.id for d in await _claim(h)} == {d.id for d in mine}

    async def test_switching_ordering_off_lets_what_waited_go_at_once(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        await _order(h)
        made = [await _add(h, ORDERED, f"o{n}") for n in range(3)]

        assert await h.runtime.api.ordering.switch_off(h.organization_id, ORDERED)

        assert {d.id for d in await _claim(h)} == {d.id for d in made}
        assert not await h.runtime.api.ordering.switch_off(h.organization_id, ORDERED)


class TestDelivery:
    async def test_a_head_failing_three_times_holds_the_rest_until_it_succeeds(
        self, store: Store, clock: ManualClock
    ) -> None:
        failures = Counter[str]()

        def receiver(request: OutboundRequest) -> SendResult:
            body = request.body.decode()
            if body == "o0" and failures[body] < 3:
                failures[body] += 1
                return respond(503)
            return respond(200)

        h = await make_harness(store, clock, handler=receiver)
        await _order(h)
        for n in range(4):
            await _add(h, ORDERED, f"o{n}")

        await _deliver_until_quiet(h)

        assert _bodies(h.sender) == ["o0"] * 4 + ["o1", "o2", "o3"]

    async def test_a_head_given_up_lets_the_next_go(self, store: Store, clock: ManualClock) -> None:
        # 410 Gone fails a delivery for good at once: given up, like an exhausted one.
        h = await make_harness(
            store, clock, handler=lambda r: respond(410 if r.body == b"o0" else 200)
        )
        await _order(h)
        for n in range(3):
            await _add(h, ORDERED, f"o{n}")

        await _deliver_until_quiet(h)

        assert _bodies(h.sender) == ["o0", "o1", "o2"]

    async def test_unordered_urls_of_the_organization_are_not_held_by_a_stuck_head(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(
            store, clock, handler=lambda r: respond(500 if r.body == b"o0" else 200)
        )
        await _order(h)
        for n in range(2):
            await _add(h, ORDERED, f"o{n}")
        free = [await _add(h, FREE, f"f{n}") for n in range(3)]

        await h.dispatcher.deliver_due()

        assert sorted(_bodies(h.sender)) == ["f0", "f1", "f2", "o0"]
        for delivery in free:
            assert (await _status(h, delivery)).status is DeliveryStatus.SUCCEEDED

    async def test_a_redelivery_to_an_ordered_url_waits_behind_the_callbacks_before_it(
        self, store: Store, clock: ManualClock
    ) -> None:
        answers = iter([410])  # the first callback is given up at once; then all fail

        h = await make_harness(store, clock, handler=lambda _r: respond(next(answers, 500)))
        await _order(h, "https://receiver.example/hook")  # the harness's runs call back here
        given_up = await h.submit()
        await h.executor.run_until_idle()
        await h.dispatcher.deliver_due()  # 410: failed for good
        head = await h.submit()
        await h.executor.run_until_idle()
        await h.dispatcher.deliver_due()  # 500: retried later, the head now
        redelivered = await h.outbox.redeliver(await h.run(given_up.id))
        clock.advance(5)

        await h.dispatcher.deliver_due()

        stored = await _status(h, redelivered)
        assert (stored.ordered, stored.attempt_count) == (True, 0)
        assert (await h.only_delivery(head.id))[0].attempt_count == 2


class TestParking:
    async def test_those_waiting_their_turn_are_parked_and_the_next_is_due_when_the_head_ends(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(
            store, clock, handler=lambda r: respond(500 if r.body == b"o1" else 200)
        )
        await _order(h)
        made = [await _add(h, ORDERED, f"o{n}") for n in range(3)]
        free = await _add(h, FREE, "f0")

        due = [(await _status(h, d)).next_attempt_at for d in [*made, free]]
        assert due == [made[0].created_at, WAITING, WAITING, free.created_at]

        await h.dispatcher.deliver_due()

        # o0 delivered, which made o1 due: it was sent, failed, and waits for its retry.
        due = [(await _status(h, d)).next_attempt_at for d in made]
        assert due[0] is None
        assert due[1] is not None
        assert clock.now() < due[1] < WAITING
        assert due[2] == WAITING

    async def test_switching_off_unparks_what_waited(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        await _order(h)
        made = [await _add(h, ORDERED, f"o{n}") for n in range(3)]

        await h.runtime.api.ordering.switch_off(h.organization_id, ORDERED)

        assert [(await _status(h, d)).next_attempt_at for d in made[1:]] == [clock.now()] * 2

    async def test_a_parked_head_whose_turn_came_unseen_is_made_due_by_the_upkeep(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        await _order(h)
        head, behind, last = [await _add(h, ORDERED, f"o{n}") for n in range(3)]
        # The head ended in a transaction that did not see the one behind it committed.
        async with store.database.write() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == head.id)
                .values(status=DeliveryStatus.SUCCEEDED.value, next_attempt_at=None)
            )
        assert await _claim(h) == []

        assert await store.ordering.unpark_stranded(now=clock.now()) == 1

        assert [d.id for d in await _claim(h)] == [behind.id]
        assert (await _status(h, last)).next_attempt_at == WAITING

    async def test_a_destination_recovering_leaves_what_waits_its_turn_parked(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        await _order(h)
        head, behind = [await _add(h, ORDERED, f"o{n}") for n in range(2)]
        async with store.database.write() as conn:
            await _hold(conn, "ordered.example:443", now=clock.now())
        assert (await _status(h, behind)).next_attempt_at == WAITING

        assert not await store.destinations.enable("ordered.example:443", now=clock.now())

        assert [(await _status(h, d)).next_attempt_at for d in (head, behind)] == [
            clock.now(),
            WAITING,
        ]


class TestRelease:
    async def test_releasing_a_stuck_head_fails_it_as_released_and_the_next_goes(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(
            store, clock, handler=lambda r: respond(500 if r.body == b"o0" else 200)
        )
        await _order(h)
        head, *rest = [await _add(h, ORDERED, f"o{n}") for n in range(3)]
        await h.dispatcher.deliver_due()
        [listed] = await h.runtime.api.ordering.listing(h.organization_id)
        assert (listed.head and listed.head.id, listed.in_flight) == (head.id, 3)

        released = await h.runtime.api.ordering.release(h.organization_id, ORDERED)
        await _deliver_until_quiet(h, rounds=3)

        stored = await _status(h, head)
        assert (released.id, stored.status, stored.failure_reason_code) == (
            head.id,
            DeliveryStatus.FAILED,
            FailureReason.RELEASED.value,
        )
        assert stored.attempt_count == 1
        assert stored.completed_at is not None
        assert _bodies(h.sender)[-2:] == ["o1", "o2"]
        assert [(await _status(h, d)).status for d in rest] == [DeliveryStatus.SUCCEEDED] * 2

    async def test_a_head_being_attempted_is_not_released(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        await _order(h)
        await _add(h, ORDERED, "o0")
        await _claim(h)  # an attempt under way

        with pytest.raises(ConflictError):
            await h.runtime.api.ordering.release(h.organization_id, ORDERED)

    async def test_nothing_in_flight_has_no_head_to_release(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        await _order(h)

        with pytest.raises(NotFoundError):
            await h.runtime.api.ordering.release(h.organization_id, ORDERED)


class TestBreaker:
    async def test_an_open_circuit_and_its_probe_keep_the_order(
        self, store: Store, clock: ManualClock
    ) -> None:
        down = {"down": True}
        h = await make_harness(
            store,
            clock,
            handler=lambda _r: respond(503 if down["down"] else 200),
            breaker_threshold=1,
        )
        await _order(h)
        for n in range(3):
            await _add(h, ORDERED, f"o{n}")
        await h.dispatcher.deliver_due()  # the head fails: the circuit opens
        assert (await store.destinations.troubled()) != {}
        down["down"] = False

        await _deliver_until_quiet(h, step=60.0)

        assert _bodies(h.sender) == ["o0", "o0", "o1", "o2"]

    async def test_a_disabled_destination_enabled_again_keeps_the_order(
        self, store: Store, clock: ManualClock
    ) -> None:
        down = {"down": True}
        h = await make_harness(
            store,
            clock,
            handler=lambda _r: respond(503 if down["down"] else 200),
            breaker_threshold=1,
            disable_after=0.0,
        )
        await _order(h)
        for n in range(3):
            await _add(h, ORDERED, f"o{n}")
        await h.dispatcher.deliver_due()
        h.clock.advance(60)
        await h.dispatcher.deliver_due()
        down["down"] = False
        assert await store.destinations.enable("ordered.example:443", now=clock.now())

        await _deliver_until_quiet(h)

        sent = _bodies(h.sender)
        assert sent[-3:] == ["o0", "o1", "o2"]
        assert set(sent[:-3]) == {"o0"}

    async def test_an_open_circuit_never_probes_with_a_callback_waiting_its_turn(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        await _order(h)
        head, *rest = [await _add(h, ORDERED, f"o{n}") for n in range(3)]
        # Those behind it not parked (a PostgreSQL race leaves that until the upkeep), and
        # the head's own ladder trying it after they were made: a probe chosen by the
        # ladder alone would pick one that can never be claimed.
        clock.advance(10)
        async with store.database.write() as conn:
            for delivery in rest:
                await conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == delivery.id)
                    .values(next_attempt_at=delivery.created_at)
                )
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == head.id)
                .values(next_attempt_at=clock.now() - timedelta(seconds=1))
            )
            await _hold(conn, "ordered.example:443", now=clock.now())
            await _probe(conn, "ordered.example:443", at=clock.now())

        assert [d.id for d in await _claim(h)] == [head.id]
        assert [(await _status(h, d)).next_attempt_at for d in rest] == [HELD, HELD]


class TestHandOff:
    async def test_the_outbox_never_hands_an_ordered_callback_to_the_dispatcher(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        offered: list[UUID] = []

        def take(delivery: Delivery) -> Handoff | None:
            offered.append(delivery.id)
            return None

        outbox = _outbox(h, take, Ordering(store=store, clock=clock))
        await _order(h, "https://receiver.example/hook")
        ordered_run = await h.submit()
        free_run = await h.submit(callback_url=FREE)

        for run in (ordered_run, free_run):
            assert await outbox.end(run, Ending.canceled()) is not None

        [(free, _)] = await h.deliveries(free_run.id)
        [(ordered, _)] = await h.deliveries(ordered_run.id)
        assert offered == [free.id]
        assert (ordered.ordered, ordered.status) == (True, DeliveryStatus.PENDING)

    async def test_another_process_switching_ordering_on_is_seen_within_a_second(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        offered: list[str] = []

        def take(delivery: Delivery) -> Handoff | None:
            offered.append(delivery.callback_url)
            return None

        outbox = _outbox(h, take, Ordering(store=store, clock=clock))
        first = await h.submit()
        await outbox.end(first, Ending.canceled())  # reads the ordered URLs: none
        await Ordering(store=store, clock=clock).switch_on(
            h.organization_id, "https://receiver.example/hook"
        )

        await outbox.end(await h.submit(), Ending.canceled())  # within the window
        clock.advance(1.0)
        await outbox.end(await h.submit(), Ending.canceled())

        assert len(offered) == 2


def _outbox(h: Harness, take: object, ordering: Ordering) -> Outbox:
    return Outbox(
        store=h.store,
        outputs=h.runtime.outputs,
        clock=h.clock,
        retry_policy=FAST_POLICY,
        on_delivery=lambda: None,
        take=take,  # type: ignore[arg-type]
        ordering=ordering,
        payloads=Payloads(blobs=h.blobs, outputs=h.runtime.outputs, max_bytes=256 * 1024),
    )


@asynccontextmanager
async def _serving(*workers: WorkLoop) -> AsyncIterator[None]:
    loops = [asyncio.create_task(worker.run_forever()) for worker in workers]
    try:
        yield
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)


class TestTwoDispatchers:
    async def test_two_dispatchers_never_have_two_callbacks_of_one_ordered_url_in_flight(
        self, store_pair: tuple[Store, Store], clock: ManualClock
    ) -> None:
        first, second = store_pair
        h = await make_harness(first, clock)
        await _order(h)
        in_flight = Counter[str]()
        most = Counter[str]()
        seen: list[str] = []

        async def slow(request: OutboundRequest) -> SendResult:
            in_flight[request.url] += 1
            most[request.url] = max(most[request.url], in_flight[request.url])
            seen.append(request.body.decode())
            await asyncio.sleep(0.002)  # a receiver taking its time: attempts overlap
            in_flight[request.url] -= 1
            return respond(200)

        ordered = [f"o{n}" for n in range(12)]
        for n in range(12):
            await _add(h, ORDERED, ordered[n])
            await _add(h, FREE, f"f{n}")
        workers = [
            Dispatcher(
                store=store,
                sender=HandlerSender(slow),
                clock=clock,
                random=lambda: 0.5,
                worker_id=name,
                config=DeliveryConfig(max_in_flight=8, poll_interval=0.005),
            )
            for name, store in (("a", first), ("b", second))
        ]

        async def all_sent() -> bool:
            return len(seen) == 24 and sum(in_flight.values()) == 0

        async with _serving(*workers):
            await eventually(all_sent, what="every callback sent")

        assert most[ORDERED] == 1
        assert most[FREE] > 1  # the test would see overlap: unordered ones overlap
        assert [body for body in seen if body.startswith("o")] == ordered
