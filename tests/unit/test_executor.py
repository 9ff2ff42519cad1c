"""The executor: models run, runs end in the right state, and the callback is in the outbox."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from runback.core.payload import run_callback_body
from runback.core.states import DeliveryStatus, RunStatus
from runback.models import register_builtins
from runback.provider.context import RunContext
from runback.provider.registry import ModelRegistry
from runback.store import Store
from runback.testing import ManualClock
from support.harness import make_harness
from support.models import LONG, Long


async def test_an_echo_run_succeeds_with_its_input_as_output(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    submitted = await h.submit(input={"prompt": "a cat", "n": 2})

    await h.executor.run_until_idle()

    run = await h.run(submitted.id)
    assert run.status is RunStatus.SUCCEEDED
    assert orjson.loads(run.output or "") == {"prompt": "a cat", "n": 2}
    assert run.started_at is not None
    assert run.completed_at is not None
    assert run.execution_count == 1


async def test_a_finished_run_has_one_pending_delivery_with_the_frozen_payload(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    submitted = await h.submit(metadata={"order": "A-17"})

    await h.executor.run_until_idle()

    run = await h.run(submitted.id)
    delivery, attempts = await h.only_delivery(run.id)
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.is_automatic
    assert delivery.payload_bytes == run_callback_body(run)
    assert delivery.next_attempt_at == run.completed_at
    assert attempts == []


async def test_a_run_without_callback_url_has_no_delivery(store: Store, clock: ManualClock) -> None:
    h = await make_harness(store, clock)
    submitted = await h.submit(callback_url=None)

    await h.executor.run_until_idle()

    assert (await h.run(submitted.id)).status is RunStatus.SUCCEEDED
    assert await h.deliveries(submitted.id) == []


async def test_a_model_error_fails_the_run_with_its_code_and_an_error_envelope(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    submitted = await h.submit(model="runback/fail", input={"message": "no GPU", "code": "oom"})

    await h.executor.run_until_idle()

    run = await h.run(submitted.id)
    assert run.status is RunStatus.FAILED
    assert (run.failure_code, run.failure_message) == ("oom", "no GPU")
    assert orjson.loads(run.output or "") == {"code": "oom", "message": "no GPU", "errors": None}
    delivery, _ = await h.only_delivery(run.id)
    assert orjson.loads(delivery.payload_bytes)["event"] == "run.failed"


async def test_any_other_exception_fails_the_run_as_model_error(
    store: Store, clock: ManualClock
) -> None:
    registry = ModelRegistry()

    @registry.model("acme/broken")
    async def broken(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        raise KeyError("weights")

    h = await make_harness(store, clock, registry=registry)
    submitted = await h.submit(model="acme/broken")

    await h.executor.run_until_idle()

    run = await h.run(submitted.id)
    assert run.status is RunStatus.FAILED
    assert run.failure_code == "model_error"
    assert run.failure_message == "KeyError: 'weights'"


async def test_a_model_past_its_timeout_fails_the_run_with_timeout(
    store: Store, clock: ManualClock
) -> None:
    registry = ModelRegistry()
    never = asyncio.Event()

    @registry.model("acme/stuck", timeout=0.05)
    async def stuck(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        await never.wait()
        return {}

    h = await make_harness(store, clock, registry=registry)
    submitted = await h.submit(model="acme/stuck")

    await h.executor.run_until_idle()

    run = await h.run(submitted.id)
    assert run.status is RunStatus.FAILED
    assert run.failure_code == "timeout"
    assert "0.05 s" in (run.failure_message or "")


@pytest.mark.parametrize(
    ("result", "detail"),
    [
        ([1, 2], "not a JSON object"),  # a list is JSON, but outputs are objects
        ({"when": object()}, "not JSON"),  # not serialisable at all
    ],
)
async def test_an_output_that_is_not_a_json_object_fails_the_run(
    store: Store, clock: ManualClock, result: Any, detail: str
) -> None:
    registry = ModelRegistry()

    @registry.model("acme/odd")
    async def odd(input: dict[str, Any], context: RunContext) -> Any:
        return result

    h = await make_harness(store, clock, registry=registry)
    submitted = await h.submit(model="acme/odd")

    await h.executor.run_until_idle()

    run = await h.run(submitted.id)
    assert run.failure_code == "invalid_output"
    assert detail in (run.failure_message or "")


async def test_the_context_names_the_run_and_its_execution(
    store: Store, clock: ManualClock
) -> None:
    registry = ModelRegistry()
    seen: list[RunContext] = []

    @registry.model("acme/introspect")
    async def introspect(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        seen.append(context)
        return {}

    h = await make_harness(store, clock, registry=registry)
    submitted = await h.submit(model="acme/introspect")

    await h.executor.run_until_idle()

    [context] = seen
    assert (context.run_id, context.model, context.execution) == (
        submitted.id,
        "acme/introspect",
        1,
    )
    assert context.organization_id == h.organization_id


async def test_runs_beyond_the_concurrency_limit_wait_their_turn(
    store: Store, clock: ManualClock
) -> None:
    registry = ModelRegistry()
    running = 0
    peak = 0

    @registry.model("acme/counted")
    async def counted(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        running -= 1
        return {}

    h = await make_harness(store, clock, registry=registry, max_concurrency=3)
    submitted = [await h.submit(model="acme/counted") for _ in range(10)]

    await h.executor.run_until_idle()

    assert peak == 3
    for run in submitted:
        assert (await h.run(run.id)).status is RunStatus.SUCCEEDED


async def test_a_shutdown_queues_running_runs_again_without_using_an_execution(
    store: Store, clock: ManualClock
) -> None:
    long = Long()
    h = await make_harness(store, clock, registry=long.registry)
    submitted = await h.submit(model=LONG)
    loop = asyncio.create_task(h.executor.run_forever())
    await long.wait_started()

    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)

    run = await h.run(submitted.id)
    assert (run.status, run.execution_count, run.started_at) == (RunStatus.QUEUED, 0, None)
    assert await h.deliveries(submitted.id) == []


class TestRecovery:
    """After a crash: a run may run again while it has executions left, else it fails."""

    async def test_a_run_interrupted_while_running_is_queued_again(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        submitted = await h.submit()
        await store.runs.claim_queued(
            models=["runback/echo"],
            worker="dead",
            limit=1,
            now=clock.now(),
            lease_until=clock.now(),
        )

        assert await h.executor.recover(max_executions=2) == 0

        assert (await h.run(submitted.id)).status is RunStatus.QUEUED
        await h.executor.run_until_idle()
        run = await h.run(submitted.id)
        assert (run.status, run.execution_count) == (RunStatus.SUCCEEDED, 2)

    async def test_a_run_out_of_executions_fails_as_interrupted_with_its_callback(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        submitted = await h.submit()
        await store.runs.claim_queued(
            models=["runback/echo"],
            worker="dead",
            limit=1,
            now=clock.now(),
            lease_until=clock.now(),
        )

        assert await h.executor.recover(max_executions=1) == 1

        run = await h.run(submitted.id)
        assert (run.status, run.failure_code) == (RunStatus.FAILED, "interrupted")
        delivery, _ = await h.only_delivery(run.id)
        assert delivery.payload_bytes == run_callback_body(run)

    async def test_a_finished_run_is_not_finished_again(
        self, store: Store, clock: ManualClock
    ) -> None:
        h = await make_harness(store, clock)
        submitted = await h.submit()
        await h.executor.run_until_idle()
        finished = await h.run(submitted.id)

        assert await h.executor.recover(max_executions=1) == 0

        assert await h.run(submitted.id) == finished
        assert len(await h.deliveries(submitted.id)) == 1


async def test_a_worker_leaves_runs_of_models_it_does_not_serve_to_those_that_do(
    store: Store, clock: ManualClock
) -> None:
    # A CPU pool beside a GPU pool: the CPU workers must not take (and fail) GPU runs.
    cpu = await make_harness(store, clock, registry=register_builtins(ModelRegistry()))
    submitted = await cpu.submit(model="acme/paint")

    await cpu.executor.run_until_idle()
    assert (await cpu.run(submitted.id)).status is RunStatus.QUEUED  # waits, not failed

    gpu_models = ModelRegistry()

    @gpu_models.model("acme/paint")
    async def paint(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"painted": True}

    gpu = await make_harness(store, clock, registry=gpu_models)
    await gpu.executor.run_until_idle()

    done = await gpu.run(submitted.id)
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, '{"painted":true}')


async def test_a_run_no_live_worker_serves_waits_is_logged_and_fails_after_the_timeout(
    store: Store, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_harness(store, clock, registry=register_builtins(ModelRegistry()))
    submitted = await h.submit(model="acme/paint")

    assert await h.executor.fail_unserved() == 0  # too soon: it waits
    assert (await h.run(submitted.id)).status is RunStatus.QUEUED
    assert "acme/paint" in caplog.text  # ...and the log says why

    clock.advance(3601)
    assert await h.executor.fail_unserved() == 1
    await h.executor.run_until_idle()

    run = await h.run(submitted.id)
    assert (run.status, run.failure_code) == (RunStatus.FAILED, "model_unavailable")
    assert "acme/paint" in (run.failure_message or "")
    assert len(await h.deliveries(submitted.id)) == 1  # its callback says so


async def test_a_run_a_live_worker_serves_never_fails_for_waiting(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock, registry=register_builtins(ModelRegistry()))
    submitted = await h.submit(model="acme/paint")
    clock.advance(7200)
    await store.workers.beat("gpu-1", ["acme/paint"], now=clock.now())  # busy, but alive

    assert await h.executor.fail_unserved() == 0
    assert (await h.run(submitted.id)).status is RunStatus.QUEUED

    clock.advance(120)  # its heartbeat is older than a lease: it is gone
    assert await h.executor.fail_unserved() == 1
    await h.executor.run_until_idle()
    assert (await h.run(submitted.id)).failure_code == "model_unavailable"
