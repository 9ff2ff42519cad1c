"""Runs that talk while they work: progress events with a sequence, throttled, kept for the
stream and sent as callbacks; a run that asks for none sends today's bytes."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
import pytest

from runback.core.events import EventKind, LogTail, chosen_events, event_webhook_id
from runback.core.records import Delivery, RunEvent
from runback.core.states import RunStatus
from runback.provider.context import RunContext, SyncRunContext
from runback.provider.registry import ModelRegistry
from runback.store import Store
from runback.testing import ManualClock
from support.harness import Harness, make_harness
from support.waiting import wait_for

ALL = ("start", "output", "logs", "completed")
TALKER = "acme/talker"


def _bodies(found: list[tuple[Delivery, Any]]) -> list[dict[str, Any]]:
    ordered = sorted(found, key=lambda pair: orjson.loads(pair[0].payload_bytes)["sequence"])
    return [orjson.loads(delivery.payload_bytes) for delivery, _ in ordered]


async def _talker(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
    context.log("loading weights")
    context.progress(0.25, "warming up")
    await context.save_output(b"\x89PNG first", content_type="image/png")
    context.log("first image saved\nsecond line")
    context.progress(1.0)
    return {"done": True}


def _registry(**models: Any) -> ModelRegistry:
    registry = ModelRegistry()
    registry.register(TALKER, _talker)
    for name, function in models.items():
        registry.register(f"acme/{name}", function)
    return registry


async def _harness(store: Store, clock: ManualClock, **options: Any) -> Harness:
    return await make_harness(store, clock, registry=_registry(**options), event_interval=0.0)


# -- what a run asks for --------------------------------------------------------------------


def test_the_default_is_completed_alone_and_unknown_events_are_refused() -> None:
    assert chosen_events(["completed"]) is None
    assert chosen_events(["logs", "start", "logs"]) == (EventKind.START, EventKind.LOGS)
    with pytest.raises(ValueError, match="'progress' is not an event"):
        chosen_events(["progress"])
    with pytest.raises(ValueError, match="at least one"):
        chosen_events([])


def test_the_log_tail_keeps_the_last_lines_within_its_limit() -> None:
    tail = LogTail(20)
    for number in range(10):
        tail.add(f"line {number}")

    assert tail.text() == "line 7\nline 8\nline 9"
    assert tail.dropped == 7


# -- events, in order -----------------------------------------------------------------------


async def test_a_run_that_asks_for_every_event_sends_them_in_order_with_a_sequence(
    store: Store, clock: ManualClock
) -> None:
    h = await _harness(store, clock)
    submitted = await h.submit(model=TALKER, events=ALL, metadata={"order": 7})

    await h.executor.run_until_idle()

    bodies = _bodies(await h.deliveries(submitted.id))
    names = [body["event"] for body in bodies]
    assert names[0] == "run.started"
    assert names[-1] == "run.completed"
    assert set(names[1:-1]) <= {"run.logs", "run.output"}
    assert "run.output" in names
    sequences = [body["sequence"] for body in bodies]
    assert sequences == list(range(1, len(bodies) + 1))
    last_snapshot = bodies[-2]
    assert last_snapshot["status"] == "running"
    assert last_snapshot["logs"] == "loading weights\nfirst image saved\nsecond line"
    assert last_snapshot["progress"] == {"fraction": 1.0, "message": None}
    assert [o["type"] for o in last_snapshot["output"]["outputs"]] == ["image"]
    assert last_snapshot["metadata"] == {"order": 7}
    assert list(bodies[-1]) == [
        "event", "run_id", "status", "output", "duration_ms", "created_at", "completed_at",
        "metadata", "sequence",
    ]  # fmt: skip
    run = await h.run(submitted.id)
    assert run.event_sequence == len(bodies)
    stored = await h.store.events.after(run.id, 0)
    assert [e.sequence for e in stored] == sequences
    assert [e.body for e in stored][:-1] == [
        d.payload_bytes
        for d, _ in sorted(await h.deliveries(run.id), key=lambda p: p[0].created_at)
    ][:-1]


async def test_each_event_has_its_own_webhook_id(store: Store, clock: ManualClock) -> None:
    h = await _harness(store, clock)
    submitted = await h.submit(model=TALKER, events=ALL)

    await h.executor.run_until_idle()

    found = await h.deliveries(submitted.id)
    ids = {delivery.webhook_id for delivery, _ in found}
    assert len(ids) == len(found)
    started = next(d for d, _ in found if b'"run.started"' in d.payload_bytes)
    assert started.webhook_id == event_webhook_id(submitted.id, 1)
    assert started.event_key == "event:1"


async def test_a_run_sends_only_the_events_it_asked_for(store: Store, clock: ManualClock) -> None:
    h = await _harness(store, clock)
    submitted = await h.submit(model=TALKER, events=("output",))

    await h.executor.run_until_idle()

    bodies = _bodies(await h.deliveries(submitted.id))
    assert [body["event"] for body in bodies] == ["run.output"]  # no 'completed': no end
    run = await h.run(submitted.id)
    assert run.status is RunStatus.SUCCEEDED
    ended = await h.store.events.get(run.id, run.event_sequence)
    assert ended is not None
    assert ended.event == "run.completed"


async def test_a_run_that_asks_for_nothing_sends_todays_bytes_and_keeps_no_events(
    store: Store, clock: ManualClock
) -> None:
    h = await _harness(store, clock)
    submitted = await h.submit(model=TALKER, metadata={"a": 1})

    await h.executor.run_until_idle()

    run = await h.run(submitted.id)
    delivery, _ = await h.only_delivery(run.id)
    body = orjson.loads(delivery.payload_bytes)
    assert "sequence" not in body
    assert list(body) == [
        "event", "run_id", "status", "output", "duration_ms", "created_at", "completed_at",
        "metadata",
    ]  # fmt: skip
    assert run.event_sequence == 0
    assert await h.store.events.after(run.id, 0) == []


async def test_a_sync_model_talks_through_its_context(store: Store, clock: ManualClock) -> None:
    def plain(input: dict[str, Any], context: SyncRunContext) -> dict[str, Any]:
        context.log("from a thread")
        context.progress(0.5, "half")
        return {}

    h = await _harness(store, clock, plain=plain)
    submitted = await h.submit(model="acme/plain", events=("logs",), callback_url=None)

    await h.executor.run_until_idle()

    run = await h.run(submitted.id)
    events = await h.store.events.after(run.id, 0)
    logs = [orjson.loads(e.body) for e in events if e.event == "run.logs"]
    assert logs[-1]["logs"] == "from a thread"
    assert logs[-1]["progress"] == {"fraction": 0.5, "message": "half"}
    assert events[-1].event == "run.completed"


async def test_progress_outside_zero_to_one_fails_the_model(
    store: Store, clock: ManualClock
) -> None:
    async def wrong(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        context.progress(50)
        return {}

    h = await _harness(store, clock, wrong=wrong)
    submitted = await h.submit(model="acme/wrong", events=("logs",))

    await h.executor.run_until_idle()

    run = await h.run(submitted.id)
    assert run.status is RunStatus.FAILED
    assert "fraction from 0 to 1" in (run.failure_message or "")


# -- throttled ------------------------------------------------------------------------------

LINES = int(os.environ.get("RUNBACK_EVENT_LINES", "1000"))


async def test_a_model_that_logs_a_lot_sends_few_events_and_its_last_lines(
    store: Store, clock: ManualClock
) -> None:
    interval = 0.1

    async def chatty(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        for number in range(LINES):
            context.log(f"line {number}")
            if number % 10 == 0:
                await asyncio.sleep(0.005)  # the model's own pace: it works between lines
        return {}

    h = await make_harness(store, clock, registry=_registry(chatty=chatty), event_interval=interval)
    submitted = await h.submit(model="acme/chatty", events=("logs", "completed"))
    loop = asyncio.get_running_loop()

    began = loop.time()
    await h.executor.run_until_idle()
    elapsed = loop.time() - began

    bodies = _bodies(await h.deliveries(submitted.id))
    logs = [body for body in bodies if body["event"] == "run.logs"]
    # One at once, then at most one per interval, and the pending one before the end.
    assert 2 <= len(logs) <= elapsed / interval + 2
    assert logs[-1]["logs"].endswith(f"line {LINES - 1}")
    assert bodies[-1]["event"] == "run.completed"
    assert [b["sequence"] for b in bodies] == list(range(1, len(bodies) + 1))


# -- redelivered with their own sequence ----------------------------------------------------


async def test_redeliveries_carry_the_events_own_sequence(store: Store, clock: ManualClock) -> None:
    h = await _harness(store, clock)
    submitted = await h.submit(model=TALKER, events=ALL)
    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()
    run = await h.run(submitted.id)

    again = await h.outbox.redeliver(run)
    started = await h.outbox.redeliver_event(run, 1)

    assert orjson.loads(again.payload_bytes)["sequence"] == run.event_sequence
    ended = await h.store.events.get(run.id, run.event_sequence)
    assert ended is not None
    assert again.payload_bytes == ended.body
    first = await h.store.events.get(run.id, 1)
    assert first is not None
    assert started.payload_bytes == first.body
    assert started.webhook_id == event_webhook_id(run.id, 1)


# -- a worker that lost its run makes no more events ----------------------------------------


async def test_an_event_is_refused_to_a_worker_that_no_longer_holds_the_run(
    store: Store, clock: ManualClock
) -> None:
    h = await _harness(store, clock)
    submitted = await h.submit(model=TALKER, events=ALL)
    now = clock.now()
    [claimed] = await store.runs.claim_queued(
        worker="w1", limit=1, now=now, lease_until=now, models=[TALKER]
    )
    event = RunEvent(claimed.id, claimed.organization_id, 1, "run.logs", b"{}", now)

    assert not await store.outbox.add_event(event, None, worker="w2")
    assert await store.outbox.add_event(event, None, worker="w1")
    assert not await store.outbox.add_event(event, None, worker="w1")  # not after itself
    run = await h.run(submitted.id)
    assert run.event_sequence == 1


async def test_a_run_executed_again_after_a_crash_numbers_on_from_its_last_event(
    store: Store, clock: ManualClock
) -> None:
    h = await _harness(store, clock)
    submitted = await h.submit(model=TALKER, events=ALL, callback_url=None)
    now = clock.now()
    [claimed] = await store.runs.claim_queued(
        worker="dead", limit=1, now=now, lease_until=now, models=[TALKER]
    )
    event = RunEvent(claimed.id, claimed.organization_id, 1, "run.started", b"{}", now)
    assert await store.outbox.add_event(event, None, worker="dead")
    await store.runs.recover(now=now, max_executions=2)  # the worker died: queued again

    await h.executor.run_until_idle()

    events = await h.store.events.after(submitted.id, 0)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [e.event for e in events][:2] == ["run.started", "run.started"]
    assert events[-1].event == "run.completed"


async def test_a_shutdown_drops_pending_events_and_hands_the_run_back(
    store: Store, clock: ManualClock
) -> None:
    second_line = asyncio.Event()

    async def chatty_forever(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        context.log("first")
        await asyncio.sleep(0.01)  # the model's own pace: the first line's event goes out
        while True:
            context.log("still here")
            second_line.set()
            await asyncio.sleep(0.01)

    h = await make_harness(
        store, clock, registry=_registry(chatty_forever=chatty_forever), event_interval=3600
    )
    submitted = await h.submit(model="acme/chatty_forever", events=("logs",))
    running = asyncio.create_task(h.executor.run_until_idle())
    await asyncio.wait_for(second_line.wait(), timeout=10)  # the next event waits an hour

    await h.executor.close()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)

    def timers() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "run events" and not t.done()]

    await wait_for(lambda: not timers(), what="the pending event's timer dropped")
    run = await h.run(submitted.id)
    assert run.status is RunStatus.QUEUED  # handed back, to run again
