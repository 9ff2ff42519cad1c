"""Output files in answers and callbacks: entries with freshly signed, expiring URLs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson

from runback.core.retry import DEFAULT_RETRY_POLICY
from runback.provider.context import RunContext
from runback.provider.registry import ModelRegistry
from runback.store import Store
from runback.testing import ManualClock, respond
from support.api import Api, api_client
from support.harness import PUBLIC_URL, make_harness

HOOK = "https://receiver.example/hook"


def _registry(url_ttl: float | None = None) -> ModelRegistry:
    registry = ModelRegistry()

    @registry.model("acme/draw", url_ttl=url_ttl)
    async def draw(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
        await context.save_output(b"\x89PNG fake", content_type="image/png")
        await context.save_output(b"notes", content_type="text/plain")
        return {"frames": 2}

    return registry


async def _entries(api: Api, run_id: str) -> list[dict[str, Any]]:
    run = (await api.get(f"/v1/runs/{run_id}")).json()
    entries: list[dict[str, Any]] = run["output"]["outputs"]
    return entries


async def test_saved_files_are_entries_of_output_outputs_beside_the_models_output(
    store: Store, clock: ManualClock
) -> None:
    async with api_client(store, clock, registry=_registry()) as api:
        run_id = await api.run_id({"input": {}}, model="acme/draw")
        await api.harness.executor.run_until_idle()

        run = (await api.get(f"/v1/runs/{run_id}")).json()

    assert run["output"]["frames"] == 2
    image, notes = run["output"]["outputs"]
    assert (image["type"], image["content_type"], image["size"]) == ("image", "image/png", 9)
    assert (notes["type"], notes["content_type"]) == ("file", "text/plain")
    assert image["url"].startswith(f"{PUBLIC_URL}/files/runs/{run_id}/")
    assert len(image["sha256"]) == 64


async def test_urls_live_24_hours_by_default_when_the_retry_window_is_shorter(
    store: Store, clock: ManualClock
) -> None:
    async with api_client(store, clock, registry=_registry()) as api:
        run_id = await api.run_id({"input": {}}, model="acme/draw")
        await api.harness.executor.run_until_idle()

        [entry, _] = await _entries(api, run_id)

    assert datetime.fromisoformat(entry["expires_at"]) == clock.now() + timedelta(hours=24)


async def test_urls_outlive_the_default_retry_window(store: Store, clock: ManualClock) -> None:
    h = await make_harness(store, clock, registry=_registry(), policy=DEFAULT_RETRY_POLICY)
    run = await h.submit(model="acme/draw")
    await h.executor.run_until_idle()

    [rendered] = (await h.runtime.outputs.render([await h.run(run.id)])).values()

    entry = orjson.loads(rendered or "")["outputs"][0]
    window = timedelta(seconds=DEFAULT_RETRY_POLICY.window)
    assert window > timedelta(hours=24)
    # The window rounded up to the whole second the URL carries.
    expires_at = datetime.fromisoformat(entry["expires_at"])
    assert clock.now() + window <= expires_at < clock.now() + window + timedelta(seconds=1)


async def test_a_models_url_ttl_and_then_a_runs_own_override_the_default(
    store: Store, clock: ManualClock
) -> None:
    async with api_client(store, clock, registry=_registry(url_ttl=600)) as api:
        by_model = await api.run_id({"input": {}}, model="acme/draw")
        by_run = await api.run_id({"input": {}, "output_url_ttl": 120}, model="acme/draw")
        await api.harness.executor.run_until_idle()

        [model_entry, _] = await _entries(api, by_model)
        [run_entry, _] = await _entries(api, by_run)

    now = clock.now()
    assert datetime.fromisoformat(model_entry["expires_at"]) == now + timedelta(seconds=600)
    assert datetime.fromisoformat(run_entry["expires_at"]) == now + timedelta(seconds=120)


async def test_a_redelivery_carries_freshly_signed_urls_to_the_same_files(
    store: Store, clock: ManualClock
) -> None:
    async with api_client(store, clock, registry=_registry()) as api:
        run_id = await api.run_id({"input": {}, "callback_url": HOOK}, model="acme/draw")
        await api.harness.executor.run_until_idle()
        await api.harness.dispatcher.deliver_due()
        clock.advance(3600)

        await api.post(f"/v1/runs/{run_id}/callback-redeliveries")
        await api.harness.dispatcher.deliver_due()

    first, again = (
        orjson.loads(r.body)["output"]["outputs"][0] for r in api.harness.sender.requests
    )
    assert first["url"] != again["url"]
    assert first["url"].split("?")[0] == again["url"].split("?")[0]
    assert datetime.fromisoformat(again["expires_at"]) - datetime.fromisoformat(
        first["expires_at"]
    ) == timedelta(hours=1)


async def test_the_frozen_callback_keeps_its_urls_on_every_retry(
    store: Store, clock: ManualClock
) -> None:
    answers = iter([respond(500), respond(200)])
    h = await make_harness(store, clock, registry=_registry(), handler=lambda _r: next(answers))
    run = await h.submit(model="acme/draw", callback_url=HOOK)
    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()
    clock.advance(5)
    await h.dispatcher.deliver_due()

    first, retry = h.sender.requests
    assert first.body == retry.body
    delivery, _ = await h.only_delivery(run.id)
    assert delivery.payload_bytes == first.body


async def test_a_run_executed_again_forgets_the_files_of_its_interrupted_execution(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock, registry=_registry())
    run = await h.submit(model="acme/draw")
    [claimed] = await store.runs.claim_queued(
        models=["acme/draw"], worker="dead", limit=1, now=clock.now(), lease_until=clock.now()
    )
    half = await h.runtime.outputs.save(
        run=claimed, position=0, data=b"half", content_type="text/plain"
    )
    await h.executor.recover(max_executions=2)

    await h.executor.run_until_idle()

    files = (await store.outputs.for_runs([run.id]))[run.id]
    assert [f.size for f in files] == [9, 5]
    assert half.key not in {f.key for f in files}
    assert await h.blobs.size(half.key) is None
