"""``POST /v1/runs/{id}/cancel``: queued at once, running by cancelling its model, ended: no-op."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from runback.models import register_builtins
from runback.provider.context import RunContext
from runback.provider.registry import ModelRegistry
from runback.store import Store
from runback.testing import ManualClock
from support.api import Api, api_client

HOOK = "https://receiver.example/hook"


class Blocking:
    """Models that start, say so, and wait until they are cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.registry = register_builtins(ModelRegistry())
        self.registry.register("acme/block", self.block)
        self.registry.register("acme/stubborn", self.stubborn)

    async def block(self, input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        self.started.set()
        await asyncio.Event().wait()
        return {}

    async def stubborn(self, input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return {"ignored": "the cancellation"}
        return {}


@pytest.fixture
def models() -> Blocking:
    return Blocking()


@pytest.fixture
async def api(store: Store, clock: ManualClock, models: Blocking) -> AsyncIterator[Api]:
    async with api_client(store, clock, registry=models.registry) as client:
        yield client


async def _callback(api: Api, run_id: str) -> dict[str, Any]:
    [delivery] = (await api.get(f"/v1/runs/{run_id}/callback")).json()
    payload: dict[str, Any] = orjson.loads(delivery["payload_bytes"])
    return payload


async def test_a_queued_run_is_canceled_at_once_with_its_callback(api: Api) -> None:
    run_id = await api.run_id({"input": {}, "callback_url": HOOK})

    response = await api.post(f"/v1/runs/{run_id}/cancel")

    assert response.status_code == 200
    assert response.json()["status_code"] == "canceled"
    assert response.json()["completed_at"] is not None
    payload = await _callback(api, run_id)
    assert (payload["event"], payload["status"], payload["output"]) == (
        "run.cancelled",
        "canceled",
        None,
    )


async def test_a_canceled_queued_run_never_runs(api: Api, models: Blocking) -> None:
    run_id = await api.run_id({"input": {}}, model="acme/block")
    await api.post(f"/v1/runs/{run_id}/cancel")

    await api.harness.executor.run_until_idle()

    assert not models.started.is_set()
    assert (await api.get(f"/v1/runs/{run_id}")).json()["status_code"] == "canceled"


@pytest.mark.parametrize(
    "model",
    [
        "acme/block",  # cancelled while awaiting
        "acme/stubborn",  # swallows the cancellation and returns: still canceled
    ],
)
async def test_a_running_run_is_canceled_by_cancelling_its_model(
    api: Api, models: Blocking, model: str
) -> None:
    run_id = await api.run_id({"input": {}, "callback_url": HOOK}, model=model)
    executing = asyncio.create_task(api.harness.executor.run_until_idle())
    await asyncio.wait_for(models.started.wait(), timeout=5)

    response = await api.post(f"/v1/runs/{run_id}/cancel")
    await asyncio.wait_for(executing, timeout=5)

    assert response.json()["status_code"] == "canceled"
    payload = await _callback(api, run_id)
    assert (payload["event"], payload["output"]) == ("run.cancelled", None)


async def test_cancelling_an_ended_run_changes_nothing_and_fires_nothing(api: Api) -> None:
    run_id = await api.run_id({"input": {}, "callback_url": HOOK})
    await api.harness.executor.run_until_idle()
    ended = (await api.get(f"/v1/runs/{run_id}")).json()

    response = await api.post(f"/v1/runs/{run_id}/cancel")

    assert (response.status_code, response.json()) == (200, ended)
    assert len((await api.get(f"/v1/runs/{run_id}/callback")).json()) == 1


async def test_cancelling_an_unknown_run_is_a_404(api: Api) -> None:
    response = await api.post("/v1/runs/01a217ca-0000-7000-8000-000000000000/cancel")
    assert (response.status_code, response.json()["code"]) == (404, "RUN_NOT_FOUND")
