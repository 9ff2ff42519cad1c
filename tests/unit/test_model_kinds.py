"""Models as users write them: sync and async, capped, cancelled, with input models and files."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from uuid import UUID

import orjson
import pytest
from pydantic import BaseModel, ConfigDict, Field

from runback.core.states import RunStatus
from runback.errors import ModelError
from runback.provider.context import RunContext, SyncRunContext
from runback.provider.registry import ModelRegistry
from runback.store import Store
from runback.testing import ManualClock
from support.api import api_client
from support.harness import make_harness
from support.waiting import eventually, wait_for


class Gauge:
    """Counts models running at once, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


async def test_a_sync_model_runs_in_a_thread_and_succeeds(store: Store, clock: ManualClock) -> None:
    registry = ModelRegistry()
    threads: list[str] = []

    @registry.model("acme/sync")
    def sync(input: dict[str, Any], context: SyncRunContext) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        return {"doubled": input["n"] * 2}

    h = await make_harness(store, clock, registry=registry)
    run = await h.submit(model="acme/sync", input={"n": 21})

    await h.executor.run_until_idle()

    done = await h.run(run.id)
    assert done.status is RunStatus.SUCCEEDED
    assert orjson.loads(done.output or "") == {"doubled": 42}
    assert threads[0].startswith("model")


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_model_never_runs_more_than_its_concurrency_limit(
    store: Store, clock: ManualClock, kind: str
) -> None:
    registry = ModelRegistry()
    gauge = Gauge()
    release = threading.Event()

    def sync(input: dict[str, Any], context: SyncRunContext) -> dict[str, Any]:
        with gauge:
            release.wait(timeout=10)
        return {}

    async def async_(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        with gauge:
            await asyncio.to_thread(release.wait, 10)
        return {}

    registry.register("acme/capped", sync if kind == "sync" else async_, concurrency=2)
    registry.register("acme/free", lambda input, context: {})
    h = await make_harness(store, clock, registry=registry)
    capped = [await h.submit(model="acme/capped") for _ in range(5)]
    free = await h.submit(model="acme/free")

    executing = asyncio.create_task(h.executor.run_until_idle())
    await wait_for(lambda: gauge.now == 2, what="two capped runs executing")

    async def free_done() -> bool:
        return (await h.run(free.id)).status is RunStatus.SUCCEEDED

    await eventually(free_done, what="the uncapped model is not held up by the capped one")
    statuses = [(await h.run(r.id)).status for r in capped]
    assert statuses.count(RunStatus.RUNNING) == 2
    assert statuses.count(RunStatus.QUEUED) == 3
    release.set()
    await asyncio.wait_for(executing, timeout=10)
    assert gauge.peak == 2


async def test_one_claim_serves_every_model_capped_or_not(
    store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry()
    for name in ("acme/one", "acme/two"):
        registry.register(name, lambda input, context: {}, concurrency=1)
    registry.register("acme/free", lambda input, context: {})
    h = await make_harness(store, clock, registry=registry)
    writes = 0
    write = store.database.write

    def counted() -> Any:
        nonlocal writes
        writes += 1
        return write()

    monkeypatch.setattr(store.database, "write", counted)

    await h.executor.run_until_idle()  # nothing queued for any model: one claim, not three
    assert writes == 1

    submitted = [await h.submit(model=m) for m in ("acme/one", "acme/one", "acme/two", "acme/free")]
    await h.executor.run_until_idle()

    assert [(await h.run(r.id)).status for r in submitted] == [RunStatus.SUCCEEDED] * 4


async def test_cancelling_a_running_sync_model_ends_its_run_canceled_when_it_returns(
    store: Store, clock: ManualClock
) -> None:
    registry = ModelRegistry()
    started = threading.Event()
    saw_cancel = threading.Event()

    @registry.model("acme/polite")
    def polite(input: dict[str, Any], context: SyncRunContext) -> dict[str, Any]:
        started.set()
        while not context.cancelled:
            threading.Event().wait(0.01)
        saw_cancel.set()
        return {"stopped": True}

    async with api_client(store, clock, registry=registry) as api:
        run_id = await api.run_id(
            {"input": {}, "callback_url": "https://receiver.example/h"}, model="acme/polite"
        )
        executing = asyncio.create_task(api.harness.executor.run_until_idle())
        await wait_for(started.is_set, what="the model started")

        response = await api.post(f"/v1/runs/{run_id}/cancel")
        await asyncio.wait_for(executing, timeout=10)

    assert saw_cancel.is_set()
    assert response.json()["status_code"] == "canceled"
    delivery, _ = await api.harness.only_delivery(UUID(run_id))
    assert orjson.loads(delivery.payload_bytes)["event"] == "run.cancelled"


class Upscale(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_url: str
    scale: int = Field(ge=1, le=4)


async def test_an_input_model_names_each_bad_field_at_submit(
    store: Store, clock: ManualClock
) -> None:
    registry = ModelRegistry()
    registry.register("acme/upscale", lambda input, context: {}, input_model=Upscale)

    async with api_client(store, clock, registry=registry) as api:
        response = await api.submit({"input": {"scale": 9, "extra": 1}}, model="acme/upscale")

    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"input.image_url", "input.scale", "input.extra"}


async def test_a_model_with_an_input_model_receives_the_validated_instance(
    store: Store, clock: ManualClock
) -> None:
    registry = ModelRegistry()
    received: list[object] = []

    @registry.model("acme/upscale", input_model=Upscale)
    async def upscale(input: Upscale, context: RunContext) -> dict[str, Any]:
        received.append(input)
        return {"scale": input.scale}

    h = await make_harness(store, clock, registry=registry)
    await h.submit(model="acme/upscale", input={"image_url": "https://x.example/a.png", "scale": 2})

    await h.executor.run_until_idle()

    assert received == [Upscale(image_url="https://x.example/a.png", scale=2)]


async def test_a_model_that_saved_files_then_failed_partially_ends_partial_succeeded(
    store: Store, clock: ManualClock
) -> None:
    registry = ModelRegistry()

    @registry.model("acme/batchy")
    async def batchy(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        await context.save_output(b"first", content_type="text/plain")
        raise ModelError("the second frame failed", code="frame_failed", partial=True)

    h = await make_harness(store, clock, registry=registry)
    run = await h.submit(model="acme/batchy")
    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()

    done = await h.run(run.id)
    assert (done.status, done.failure_code) == (RunStatus.PARTIAL_SUCCEEDED, "frame_failed")
    payload = orjson.loads(h.sender.requests[0].body)
    assert payload["event"] == "run.partial_succeeded"
    assert payload["output"]["code"] == "frame_failed"
    [entry] = payload["output"]["outputs"]
    assert (entry["type"], entry["size"]) == ("file", 5)


async def test_a_partial_failure_without_files_is_a_failure(
    store: Store, clock: ManualClock
) -> None:
    registry = ModelRegistry()

    @registry.model("acme/nothing")
    async def nothing(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        raise ModelError("nothing landed", partial=True)

    h = await make_harness(store, clock, registry=registry)
    run = await h.submit(model="acme/nothing")
    await h.executor.run_until_idle()

    assert (await h.run(run.id)).status is RunStatus.FAILED
