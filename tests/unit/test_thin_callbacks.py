"""Thin callbacks on the serving side: a body over ``callback_max_bytes`` goes out thin, its
full bytes kept with the run and served at ``output_url``; under it, nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import orjson
import pytest

from runback.blobs import BlobStore
from runback.config import DeliveryConfig
from runback.core.payload import dumps, run_callback_body
from runback.core.retry import RetryPolicy
from runback.core.runs import Ending
from runback.core.states import RunStatus
from runback.core.thin import full_body_key, thin_body
from runback.errors import ConfigError
from runback.models import register_builtins
from runback.provider.context import RunContext
from runback.provider.registry import ModelRegistry
from runback.pruner import Pruner
from runback.settings import load_settings
from runback.store import Store
from runback.testing import ManualClock
from support.api import Api, api_client
from support.harness import make_harness

LIMIT = 4096
HOOK = "https://receiver.example/hook"
BIG = {"text": "é" * 6000}  # 12 000 bytes of UTF-8: over the limit
SMALL = {"text": "small"}


@pytest.fixture
async def api(store: Store, clock: ManualClock) -> AsyncIterator[Api]:
    registry = register_builtins(ModelRegistry())
    registry.register("acme/results", big_results)
    async with api_client(store, clock, registry=registry, callback_max_bytes=LIMIT) as client:
        yield client


async def big_results(input: dict[str, Any], context: RunContext) -> dict[str, Any]:
    """Sends one big result and one small, then ends small."""
    await context.send_result(BIG)
    await context.send_result(SMALL)
    return SMALL


async def _delivered(api: Api, input: dict[str, Any]) -> tuple[UUID, bytes]:
    """Run echo on ``input`` and deliver its callback: the run's id and the body sent."""
    run_id = await api.run_id({"input": input, "callback_url": HOOK})
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()
    return UUID(run_id), api.harness.sender.requests[-1].body


async def _today(api: Api, run_id: UUID) -> bytes:
    """The body the run's callback has without thin callbacks (echo saves no files)."""
    run = await api.harness.store.runs.get(run_id)
    assert run is not None
    return run_callback_body(run)


async def test_a_body_over_the_limit_is_sent_thin_and_its_url_serves_the_full_bytes(
    api: Api,
) -> None:
    run_id, sent = await _delivered(api, BIG)
    full = await _today(api, run_id)
    thin = orjson.loads(sent)

    assert len(full) > LIMIT >= len(sent)
    assert thin["output"] is None
    assert list(thin)[-1] == "output_url"
    assert thin_body(full, thin["output_url"]) == sent
    assert thin["output_url"].startswith(f"http://runback.test/files/runs/{run_id}/callbacks/")
    served = await api.client.get(thin["output_url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert served.content == full


async def test_a_body_at_or_under_the_limit_is_sent_as_today_with_no_blob(api: Api) -> None:
    run_id, sent = await _delivered(api, SMALL)
    [(delivery, _)] = await api.harness.deliveries(run_id)

    assert sent == await _today(api, run_id)
    key = full_body_key(delivery_id=delivery.id, run_id=run_id, batch_id=None)
    assert await api.harness.blobs.size(key) is None


async def test_the_full_bytes_need_the_signed_url(api: Api) -> None:
    _, sent = await _delivered(api, BIG)
    url = orjson.loads(sent)["output_url"]

    tampered = await api.client.get(url.replace("signature=", "signature=0"))
    unsigned = await api.client.get(url.split("?", 1)[0])

    assert (tampered.status_code, unsigned.status_code) == (403, 403)


async def test_a_redelivery_is_thin_again_with_its_own_copy_and_url(api: Api) -> None:
    run_id, first = await _delivered(api, BIG)

    response = await api.post(f"/v1/runs/{run_id}/callback-redeliveries")
    await api.harness.dispatcher.deliver_due()

    assert response.status_code == 201
    second = api.harness.sender.requests[-1].body
    urls = [orjson.loads(body)["output_url"] for body in (first, second)]
    assert urls[0] != urls[1]
    assert f"/callbacks/{UUID(response.json()['id']).hex}.json?" in urls[1]
    full = await _today(api, run_id)
    for url in urls:
        assert (await api.client.get(url)).content == full


async def test_the_url_lives_through_the_delivery_s_whole_retry_window(
    store: Store, clock: ManualClock
) -> None:
    long = RetryPolicy(delays=(3600.0, 200_000.0), jitter=0.0)  # past the 24 h floor
    h = await make_harness(store, clock, policy=long, callback_max_bytes=LIMIT)

    await h.submit(model="runback/echo", input=BIG)
    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()

    url = orjson.loads(h.sender.requests[0].body)["output_url"]
    [expires] = parse_qs(urlsplit(url).query)["expires"]
    assert int(expires) >= (clock.now() + timedelta(seconds=long.window)).timestamp()


async def test_the_full_body_goes_with_its_run(store: Store, clock: ManualClock) -> None:
    h = await make_harness(store, clock, callback_max_bytes=LIMIT)
    run = await h.submit(model="runback/echo", input=BIG)
    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()
    delivery, _ = await h.only_delivery(run.id)
    key = full_body_key(delivery_id=delivery.id, run_id=run.id, batch_id=None)
    assert await h.blobs.size(key) is not None
    clock.advance(31 * 86400)

    await Pruner(
        store=store, blobs=h.blobs, clock=clock, retention=timedelta(days=30), batch=10
    ).prune()

    assert await store.runs.get(run.id) is None
    assert await h.blobs.size(key) is None


def test_the_limit_is_256_kib_by_default() -> None:
    assert load_settings().config().delivery.callback_max_bytes == 262_144


def test_the_limit_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBACK_CALLBACK_MAX_BYTES", "1048576")

    assert load_settings().config().delivery.callback_max_bytes == 1_048_576


def test_a_limit_under_4_kib_is_refused_in_plain_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBACK_CALLBACK_MAX_BYTES", "1000")

    with pytest.raises(ConfigError, match=r"^RUNBACK_CALLBACK_MAX_BYTES must be at least 4096"):
        load_settings()
    with pytest.raises(ConfigError, match="at least 4096 bytes"):
        DeliveryConfig(callback_max_bytes=1000)


async def test_a_batch_callback_over_the_limit_is_thin_and_goes_with_the_batch(
    api: Api,
) -> None:
    items = [{"text": "é" * 1500} for _ in range(3)]
    created = await api.client.post(
        "/v1/models/runback/echo/batches",
        json={"input": items, "callback_url": HOOK},
        headers=api.auth(),
    )
    assert created.status_code == 201, created.text
    batch_id = created.json()["id"]
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()
    sent = api.harness.sender.requests[-1].body
    thin = orjson.loads(sent)

    assert (thin["event"], thin["batch_id"], thin["output"]) == ("batch.succeeded", batch_id, None)
    assert thin["output_url"].startswith(f"http://runback.test/files/batches/{batch_id}/callbacks/")
    full = (await api.client.get(thin["output_url"])).content
    assert [item["output"] for item in orjson.loads(full)["output"]["items"]] == items
    assert thin_body(full, thin["output_url"]) == sent
    key = thin["output_url"].split("/files/", 1)[1].split("?", 1)[0]
    api.harness.clock.advance(31 * 86400)

    await Pruner(
        store=api.harness.store,
        blobs=api.harness.blobs,
        clock=api.harness.clock,
        retention=timedelta(days=30),
        batch=10,
    ).prune()

    assert await api.harness.blobs.size(key) is None


async def test_each_result_callback_is_thin_or_whole_by_its_own_size(api: Api) -> None:
    run_id = await api.run_id({"input": {}, "callback_url": HOOK}, model="acme/results")
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()

    big, small, end = (orjson.loads(r.body) for r in api.harness.sender.requests)

    assert (big["event"], big["run_id"], big["output"]) == ("run.result", run_id, None)
    assert list(big)[-2:] == ["output", "output_url"]  # output added, then the link
    full = orjson.loads((await api.client.get(big["output_url"])).content)
    assert full["result"] == BIG
    assert full | {"output": None, "output_url": big["output_url"]} == big
    assert (small["result"], "output_url" in small) == (SMALL, False)
    assert (end["output"], "output_url" in end) == (SMALL, False)


async def test_progress_events_over_the_limit_are_thin_with_their_bytes_as_made(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock, callback_max_bytes=LIMIT, event_interval=0.0)
    big_metadata = {"note": "é" * 3000}  # echoed in every event: each is over the limit
    run = await h.submit(
        model="runback/echo", input=SMALL, events=("start", "completed"), metadata=big_metadata
    )

    await h.executor.run_until_idle()

    made = (await h.store.events.after(run.id, 0))[0]  # run.started, kept as made
    found = await h.deliveries(run.id)
    started = next(d for d, _ in found if d.event_key == "event:1")
    thin = orjson.loads(started.payload_bytes)
    assert (thin["event"], thin["output"], thin["sequence"]) == ("run.started", None, 1)
    key = full_body_key(delivery_id=started.id, run_id=run.id, batch_id=None)
    assert b"".join([chunk async for chunk in h.blobs.read(key)]) == made.body
    assert thin_body(made.body, thin["output_url"]) == started.payload_bytes


async def test_a_refused_end_leaves_no_full_body_behind(
    store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    h = await make_harness(
        store, clock, callback_max_bytes=LIMIT, blobs=BlobStore.local(tmp_path / "blobs")
    )
    submitted = await h.submit(model="runback/echo", input=BIG)
    now = clock.now()
    [claimed] = await store.runs.claim_queued(
        worker="w1", limit=1, now=now, lease_until=now, models=["runback/echo"]
    )
    assert await h.outbox.end(claimed, Ending.canceled()) is not None  # first writer wins
    kept = tmp_path / "blobs" / "runs" / str(submitted.id) / "callbacks"

    again = await h.outbox.end(claimed, Ending(RunStatus.SUCCEEDED, dumps(BIG)))

    assert again is None  # refused: ended already
    assert not kept.exists() or not any(kept.iterdir())
