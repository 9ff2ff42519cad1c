"""Several callbacks per run: a model sends each result as it exists, each its own delivery
with its own ``webhook-id``; the run's end keeps ``msg_<run id>``; one delivery of each event
in flight; a result redelivered by its id; ``runback receive`` keeps each event once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import orjson
import pytest

from runback.core.ids import webhook_id
from runback.models import register_builtins
from runback.provider.context import RunContext
from runback.provider.registry import ModelRegistry
from runback.receiver.config import ReceiveConfig
from runback.store import Store
from runback.testing import ManualClock
from support.api import Api, api_client
from support.inbox import inbox_client

HOOK = "https://receiver.example/hook"


async def three(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
    """Makes three images, sending each as soon as it exists."""
    for n in range(3):
        image = await context.save_output(f"image {n}".encode(), content_type="image/png")
        await context.send_result({"seed": n, "cost": 0.01}, output=image)
    return {"images": 3}


@pytest.fixture
async def api(store: Store, clock: ManualClock) -> AsyncIterator[Api]:
    registry = register_builtins(ModelRegistry())
    registry.register("acme/three", three)
    async with api_client(store, clock, registry=registry) as client:
        yield client


async def _ran(api: Api) -> str:
    run_id = await api.run_id({"input": {}, "callback_url": HOOK}, model="acme/three")
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()
    return run_id


def _sent(api: Api) -> list[tuple[dict[str, str], dict[str, Any]]]:
    return [(dict(r.headers), orjson.loads(r.body)) for r in api.harness.sender.requests]


async def test_each_result_is_its_own_event_and_the_end_keeps_the_run_s_id(api: Api) -> None:
    run_id = await _ran(api)

    sent = _sent(api)

    assert [body["event"] for _, body in sent] == ["run.result"] * 3 + ["run.completed"]
    results = [body for _, body in sent[:3]]
    assert [r["position"] for r in results] == [0, 1, 2]
    assert [r["result"]["seed"] for r in results] == [0, 1, 2]
    assert all(r["run_id"] == run_id for r in results)
    assert all(r["result"]["output"]["url"].startswith("http://runback.test/") for r in results)
    ids = [headers["webhook-id"] for headers, _ in sent]
    assert ids[:3] == [webhook_id(UUID(r["result_id"])) for r in results]
    assert ids[3] == webhook_id(UUID(run_id))
    assert len(set(ids)) == 4


async def test_the_delivery_log_lists_every_event(api: Api) -> None:
    run_id = await _ran(api)

    log = (await api.get(f"/v1/runs/{run_id}/callback")).json()

    assert [d["event_key"].split(":")[0] for d in log] == ["result"] * 3 + ["terminal"]
    assert all(d["status_code"] == "succeeded" for d in log)
    callback = (await api.get(f"/v1/runs/{run_id}")).json()["callback"]
    assert callback["delivery_id"] == log[-1]["id"]  # the run's end, not its last result


async def test_a_result_is_redelivered_by_its_id_under_its_own_webhook_id(api: Api) -> None:
    run_id = await _ran(api)
    [_, (headers, second), *_] = _sent(api)
    api.harness.clock.advance(3600)

    made = await api.post(
        f"/v1/runs/{run_id}/callback-redeliveries", {"result_id": second["result_id"]}
    )
    busy = await api.post(
        f"/v1/runs/{run_id}/callback-redeliveries", {"result_id": second["result_id"]}
    )
    the_end = await api.post(f"/v1/runs/{run_id}/callback-redeliveries")
    await api.harness.dispatcher.deliver_due()

    assert (made.status_code, the_end.status_code) == (201, 201)
    assert (busy.status_code, busy.json()["code"]) == (422, "CONFLICT")  # one in flight
    again_headers, again = _sent(api)[4]
    assert again_headers["webhook-id"] == headers["webhook-id"]
    assert again["result_id"] == second["result_id"]
    assert again["result"]["output"]["url"] != second["result"]["output"]["url"]  # signed anew
    assert made.json()["is_automatic"] is False


async def test_an_unknown_result_is_a_404(api: Api) -> None:
    run_id = await _ran(api)

    response = await api.post(
        f"/v1/runs/{run_id}/callback-redeliveries",
        {"result_id": "01936f8e-0000-7000-8000-000000000000"},
    )

    assert (response.status_code, response.json()["code"]) == (404, "RESULT_NOT_FOUND")


async def test_runback_receive_keeps_each_event_once(
    api: Api, store: Store, clock: ManualClock
) -> None:
    await _ran(api)
    requests = api.harness.sender.requests

    async with inbox_client(store, clock, config=ReceiveConfig(), blobs=None) as box:
        for request in [*requests, requests[1], requests[3]]:  # two arrive twice
            answer = await box.post("runback", request.body, dict(request.headers))
            assert answer.status_code == 200, answer.text
        events = await box.events(limit=50)

    assert sorted(e["event"] for e in events) == ["run.completed"] + ["run.result"] * 3
    assert sorted(e["receipt_count"] for e in events) == [1, 1, 2, 2]
