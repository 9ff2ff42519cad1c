"""Destinations: a bounded share of the dispatcher each, a circuit breaker in front of each,
disabled after sustained failure, and the operator told."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from uuid import UUID

import orjson

from runback.core.delivery import SendResult
from runback.core.destinations import BreakerPolicy, BreakerState, Destination, destination_of
from runback.core.retry import DEFAULT_RETRY_POLICY, RUNWARE_LADDER, RetryPolicy
from runback.core.states import DeliveryStatus
from runback.outbound.sender import OutboundRequest
from runback.store import RunFilter, Store
from runback.store.destinations import HELD
from runback.testing import Handler, ManualClock, respond
from support.harness import Harness, make_harness
from support.waiting import wait_for

DEAD = "https://dead.example/hook"
ALIVE = "https://alive.example/hook"
OPS = "https://ops.example/alerts"


def _by_host(request: OutboundRequest) -> SendResult:
    return respond(500 if "dead.example" in request.url else 200)


async def _runs(h: Harness, url: str, count: int) -> None:
    for _ in range(count):
        await h.submit(callback_url=url)
    await h.executor.run_until_idle()


def test_a_destination_is_the_urls_host_and_port() -> None:
    assert destination_of("https://A.example/hook?x=1") == "a.example:443"
    assert destination_of("http://a.example:8080/") == "a.example:8080"


async def test_a_slow_destination_holds_no_more_than_its_share(
    store: Store, clock: ManualClock
) -> None:
    release = asyncio.Event()
    slow_in_flight = 0
    peak = 0

    async def handler(request: OutboundRequest) -> SendResult:
        nonlocal slow_in_flight, peak
        if "dead.example" not in request.url:
            return respond(200)
        slow_in_flight += 1
        peak = max(peak, slow_in_flight)
        await release.wait()
        slow_in_flight -= 1
        return respond(200)

    h = await make_harness(store, clock, handler=handler, per_destination=4)
    await _runs(h, DEAD, 20)
    await _runs(h, ALIVE, 10)

    sending = asyncio.create_task(h.dispatcher.run_forever())
    await wait_for(
        lambda: sum("alive" in r.url for r in h.sender.requests) == 10, what="every healthy one"
    )
    assert peak == 4
    release.set()
    sending.cancel()
    await asyncio.gather(sending, return_exceptions=True)


async def test_a_failing_destinations_circuit_opens_and_spares_its_deliveries(
    store: Store, clock: ManualClock
) -> None:
    # One attempt at a time per destination, so the breaker sees each outcome in turn.
    h = await make_harness(store, clock, handler=_by_host, breaker_threshold=3, per_destination=1)
    await _runs(h, DEAD, 6)
    await _runs(h, ALIVE, 2)

    await h.dispatcher.deliver_due()

    dead_attempts = sum("dead.example" in r.url for r in h.sender.requests)
    assert dead_attempts == 3  # then the circuit opened: the other three spent nothing
    [troubled] = (await store.destinations.troubled()).values()
    assert troubled.host == "dead.example:443"
    assert troubled.state(clock.now(), BreakerPolicy(threshold=3)) is BreakerState.OPEN
    assert sum("alive.example" in r.url for r in h.sender.requests) == 2


async def test_a_half_open_circuit_sends_one_probe_and_a_success_closes_it(
    store: Store, clock: ManualClock
) -> None:
    answers: dict[str, int] = {"status": 500}

    def handler(request: OutboundRequest) -> SendResult:
        return respond(answers["status"])

    h = await make_harness(store, clock, handler=handler, breaker_threshold=2, per_destination=1)
    await _runs(h, DEAD, 5)
    await h.dispatcher.deliver_due()  # two failures open the circuit
    answers["status"] = 200
    clock.advance(31)  # past the first open period: half-open

    sent_before = len(h.sender.requests)
    await h.dispatcher.deliver_due()

    assert await store.destinations.troubled() == {}  # the probe succeeded: closed
    assert len(h.sender.requests) - sent_before == 5  # the probe, then everyone else


async def test_sustained_failure_disables_a_destination_and_tells_the_operator(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(
        store,
        clock,
        handler=_by_host,
        policy=RetryPolicy(delays=(20.0,) * 20),  # probes spend the ladder: keep it long
        breaker_threshold=1,
        disable_after=60,
        operations_url=OPS,
    )
    await _runs(h, DEAD, 3)
    for _ in range(8):
        await h.dispatcher.deliver_due()
        clock.advance(20)

    [dead] = (await store.destinations.troubled()).values()
    assert dead.disabled_at is not None
    alerts = [orjson.loads(r.body) for r in h.sender.requests if r.url == OPS]
    assert [a["event"] for a in alerts] == ["destination.disabled"]
    assert alerts[0]["destination"] == "dead.example:443"
    pending = [
        d for run_deliveries in [await h.deliveries(r) for r in await _run_ids(h)]
        for d, _ in run_deliveries
    ]  # fmt: skip
    assert {d.status for d in pending} == {DeliveryStatus.PENDING}  # kept, replayable


async def test_an_enabled_destination_is_tried_again(store: Store, clock: ManualClock) -> None:
    h = await make_harness(store, clock, handler=_by_host, breaker_threshold=1, disable_after=1)
    await _runs(h, DEAD, 1)
    await h.dispatcher.deliver_due()
    clock.advance(2)
    await h.dispatcher.deliver_due()

    assert await store.destinations.enable("dead.example:443", now=clock.now())
    assert await store.destinations.troubled() == {}
    assert await store.deliveries.next_due_at() == clock.now()  # sent again at once


async def test_an_open_circuit_holds_its_backlog_but_one_probe_until_it_recovers(
    store: Store, clock: ManualClock
) -> None:
    down = True

    def flaky(request: OutboundRequest) -> SendResult:
        return respond(500 if down else 200)

    h = await make_harness(store, clock, handler=flaky, breaker_threshold=1, per_destination=1)
    await _runs(h, DEAD, 4)
    await h.dispatcher.deliver_due()  # the first failure opens the circuit

    [dead] = (await store.destinations.troubled()).values()
    assert dead.open_until is not None
    # One probe waits for the half-open moment; the rest are out of the due index.
    assert await store.deliveries.next_due_at() == dead.open_until
    due_times = [d.next_attempt_at for r in await _run_ids(h) for d, _ in await h.deliveries(r)]
    assert sorted(due_times, key=str) == [dead.open_until, HELD, HELD, HELD]

    down = False
    clock.advance((dead.open_until - clock.now()).total_seconds())
    assert await h.dispatcher.deliver_due() == 4  # the probe, then all it released

    assert await store.destinations.troubled() == {}


async def test_a_disabled_destinations_backlog_waits_for_an_operator(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock, handler=_by_host, breaker_threshold=1, disable_after=1)
    await _runs(h, DEAD, 2)
    await h.dispatcher.deliver_due()  # fails: the circuit opens
    clock.advance(3600)
    await h.dispatcher.deliver_due()  # the half-open probe fails after the window: disabled
    [dead] = (await store.destinations.troubled()).values()
    assert dead.disabled_at is not None
    clock.advance(3600)

    assert await h.dispatcher.deliver_due() == 0
    due = await store.deliveries.next_due_at()
    assert due is not None
    assert due.year == 9999


async def test_an_exhausted_delivery_raises_an_alert(store: Store, clock: ManualClock) -> None:
    h = await make_harness(store, clock, handler=_by_host, operations_url=OPS)
    await _runs(h, DEAD, 1)
    for _ in range(4):  # the harness policy allows four attempts
        await h.dispatcher.deliver_due()
        clock.advance(5)

    alerts = [orjson.loads(r.body) for r in h.sender.requests if r.url == OPS]
    [alert] = alerts
    assert (alert["event"], alert["failure_reason_code"]) == ("delivery.exhausted", "exhausted")


async def _run_ids(h: Harness) -> list[UUID]:
    page, _ = await h.store.runs.page(h.organization_id, filters=RunFilter(), after=None, limit=100)
    return [run.id for run in page]


def test_a_healthy_destination_allows_its_full_share() -> None:
    policy = BreakerPolicy(threshold=3)
    assert Destination("a:443").allowance(datetime.now(UTC), policy, limit=16) == 16


async def _drive(h: Harness, *, until: datetime, step: timedelta | None = None) -> None:
    """Deliver everything due, moving the clock to each next due time or circuit
    half-opening (by ``step`` at most), until the next is past ``until``."""
    while True:
        await h.dispatcher.deliver_due()
        due = await h.store.deliveries.next_due_at()
        opens = [
            d.open_until
            for d in (await h.store.destinations.troubled()).values()
            if d.open_until is not None and d.open_until > h.clock.now()
        ]
        candidates = [t for t in (due, *opens) if t is not None]
        if step is not None:
            candidates.append(h.clock.now() + step)
        if not candidates or min(candidates) > until:
            return
        h.clock.set(max(min(candidates), h.clock.now()))


async def _as_deployed(store: Store, clock: ManualClock, handler: Handler, *, seed: int) -> Harness:
    """A harness with the seeds' retry ladder (jittered by a seeded random) and the
    breaker's defaults: 5 failures and 30 s without a success."""
    return await make_harness(
        store,
        clock,
        handler=handler,
        policy=DEFAULT_RETRY_POLICY,
        random=random.Random(seed).random,
        breaker_threshold=5,
        breaker_window=30,
    )


async def test_a_flaky_receiver_keeps_every_delivery_on_its_ladder(
    store: Store, clock: ManualClock
) -> None:
    # Eight runs whose receiver fails the first five attempts of each (a deploy): forty
    # failures in a row, yet it answered within the window, so the circuit stays closed
    # and every delivery follows the seeds' ladder (250 ms, 500 ms, 1 s, 2 s, 4 s).
    tries: Counter[str] = Counter()

    def deploying(request: OutboundRequest) -> SendResult:
        tries[request.headers["webhook-id"]] += 1
        return respond(500 if tries[request.headers["webhook-id"]] <= 5 else 200)

    h = await _as_deployed(store, clock, deploying, seed=15)
    started = clock.now()
    runs = [await h.submit(callback_url=DEAD) for _ in range(8)]
    await h.executor.run_until_idle()

    await _drive(h, until=started + timedelta(seconds=40))

    for run in runs:
        delivery, attempts = await h.only_delivery(run.id)
        assert delivery.status is DeliveryStatus.SUCCEEDED
        assert len(attempts) == 6
        gaps = [(b.created_at - a.created_at).total_seconds() for a, b in pairwise(attempts)]
        for gap, rung in zip(gaps, RUNWARE_LADDER, strict=False):
            assert rung <= gap <= rung * 1.2, (gaps, RUNWARE_LADDER)


async def test_an_open_circuit_probes_no_later_than_a_held_deliverys_ladder(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(
        store,
        clock,
        handler=_by_host,
        policy=RetryPolicy(delays=(2.0, 2.0), jitter=0.0),
        breaker_threshold=1,
    )
    await _runs(h, DEAD, 1)
    failed_at = clock.now()
    await h.dispatcher.deliver_due()  # fails: the circuit opens for 30 s, but...

    [dead] = (await store.destinations.troubled()).values()
    assert dead.open_until == failed_at + timedelta(seconds=2)  # ...its ladder says 2 s
    assert await store.deliveries.next_due_at() == dead.open_until


async def test_a_receiver_dead_for_ten_minutes_opens_its_circuit_and_costs_the_healthy_nothing(
    store: Store, clock: ManualClock
) -> None:
    started = clock.now()
    back_at = started + timedelta(minutes=10)

    def handler(request: OutboundRequest) -> SendResult:
        return respond(503 if "dead.example" in request.url and clock.now() < back_at else 200)

    h = await _as_deployed(store, clock, handler, seed=3)
    dead_runs = [(await h.submit(callback_url=DEAD)).id for _ in range(20)]
    await h.executor.run_until_idle()
    healthy: list[tuple[UUID, datetime]] = []
    opened_after = None  # how many attempts the dead one had had when its circuit opened
    while clock.now() < back_at + timedelta(minutes=10):
        run = await h.submit(callback_url=ALIVE)
        await h.executor.run_until_idle()
        healthy.append((run.id, clock.now()))
        await _drive(h, until=clock.now() + timedelta(seconds=5), step=timedelta(seconds=5))
        breaker = (await store.destinations.troubled()).get("dead.example:443")
        if opened_after is None and breaker is not None and breaker.trips > 0:
            opened_after = sum("dead.example" in r.url for r in h.sender.requests)

    assert opened_after is not None, "the dead receiver's circuit never opened"
    # Open, it got one probe at a time (never two at one instant), held deliveries
    # spending no attempts of their own.
    dead = [await h.only_delivery(run_id) for run_id in dead_runs]
    failed = [a.created_at for _, attempts in dead for a in attempts if a.failure_reason_code]
    probes = sorted(failed)[opened_after:]
    assert probes
    assert len(set(probes)) == len(probes)
    for run_id, submitted in healthy:
        delivery, attempts = await h.only_delivery(run_id)
        assert delivery.status is DeliveryStatus.SUCCEEDED
        [attempt] = attempts  # one attempt each, sent the moment its run ended
        assert attempt.created_at == submitted
    # The dead one's too, once back.
    assert {d.status for d, _ in dead} == {DeliveryStatus.SUCCEEDED}
    assert await store.destinations.troubled() == {}
