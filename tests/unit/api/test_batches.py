"""Batches: submit 1-100 items, one callback once every item has ended (none before), its
event by the items' outcomes, items paged, cancel, idempotency, redelivery, and the
callback's outcome shown on the batch and on a run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest
from pydantic import BaseModel

from runback.core.ids import webhook_id
from runback.core.runs import Ending, end_run
from runback.errors import ModelError
from runback.models import register_builtins
from runback.provider.context import RunContext
from runback.provider.registry import ModelRegistry
from runback.store import Store
from runback.testing import ManualClock
from support.api import Api, api_client

HOOK = "https://receiver.example/hook"
ITEM_HOOK = "https://receiver.example/item"


class Prompt(BaseModel):
    prompt: str
    fail: bool = False


async def maybe(input: Prompt, context: RunContext) -> dict[str, Any]:
    """Fails when asked to; else saves one file and says its prompt."""
    if input.fail:
        raise ModelError("asked to fail", code="asked")
    await context.save_output(input.prompt.encode(), content_type="text/plain")
    return {"prompt": input.prompt}


@pytest.fixture
async def api(store: Store, clock: ManualClock) -> AsyncIterator[Api]:
    registry = register_builtins(ModelRegistry())
    registry.register("acme/maybe", maybe, input_model=Prompt)
    async with api_client(store, clock, registry=registry) as client:
        yield client


async def _submit(api: Api, body: dict[str, Any], **headers: str) -> Any:
    return await api.client.post(
        "/v1/models/acme/maybe/batches", json=body, headers={**api.auth(), **headers}
    )


def _body(*items: dict[str, Any] | str, **fields: Any) -> dict[str, Any]:
    listed = [{"prompt": item} if isinstance(item, str) else item for item in items]
    return {"input": listed, "callback_url": HOOK, **fields}


async def _created(api: Api, *items: dict[str, Any] | str, **fields: Any) -> dict[str, Any]:
    response = await _submit(api, _body(*items, **fields))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _run_all(api: Api) -> None:
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()


def _sent(api: Api, url: str = HOOK) -> list[tuple[dict[str, str], dict[str, Any]]]:
    requests = api.harness.sender.requests
    return [(dict(r.headers), orjson.loads(r.body)) for r in requests if r.url == url]


async def test_a_batch_is_answered_at_once_with_its_items_queued(api: Api) -> None:
    batch = await _created(api, "a", {"prompt": "b", "client_ref": "mine"}, "c")

    assert batch["status_code"] == "queued"
    assert [batch[f"items_{n}"] for n in ("total", "succeeded", "failed", "cancelled")] == [
        3, 0, 0, 0,
    ]  # fmt: skip
    assert [(i["sequence_index"], i["status_code"]) for i in batch["items"]] == [
        (0, "queued"), (1, "queued"), (2, "queued"),
    ]  # fmt: skip
    assert batch["items"][1]["client_ref"] == "mine"
    run = (await api.get(f"/v1/runs/{batch['items'][1]['run_id']}")).json()
    assert (run["batch_id"], run["sequence_index"], run["client_ref"]) == (batch["id"], 1, "mine")
    assert run["input"] == {"prompt": "b"}  # the item's own keys are not the model's input
    assert run["callback_url"] is None
    assert (await api.get(f"/v1/batches/{batch['id']}")).json()["status_code"] == "queued"


async def test_one_callback_when_every_item_has_ended_none_before(api: Api) -> None:
    batch = await _created(api, "a", "b", metadata={"order": "A-17"})
    first = await api.harness.store.runs.get(UUID(batch["items"][0]["run_id"]))
    assert first is not None

    await api.harness.outbox.end(first, Ending.canceled())  # one of two items ended
    await api.harness.dispatcher.deliver_due()

    assert _sent(api) == []
    assert (await api.get(f"/v1/batches/{batch['id']}/callback")).json() == []
    shown = (await api.get(f"/v1/batches/{batch['id']}")).json()
    assert (shown["status_code"], shown["items_cancelled"], shown["callback"]) == (
        "running", 1, None,
    )  # fmt: skip

    await _run_all(api)

    [(headers, body)] = _sent(api)
    assert headers["webhook-id"] == webhook_id(UUID(batch["id"]))
    assert list(body) == [
        "event", "batch_id", "status", "output", "duration_ms", "created_at", "completed_at",
        "metadata",
    ]  # fmt: skip
    assert (body["event"], body["batch_id"], body["status"], body["metadata"]) == (
        "batch.partial_succeeded", batch["id"], "partial_succeeded", {"order": "A-17"},
    )  # fmt: skip
    output = body["output"]
    assert [output[n] for n in ("succeeded", "failed", "cancelled", "total")] == [1, 0, 1, 2]
    assert [(i["sequence_index"], i["run_id"], i["status"]) for i in output["items"]] == [
        (0, batch["items"][0]["run_id"], "canceled"),
        (1, batch["items"][1]["run_id"], "succeeded"),
    ]
    assert output["items"][0]["output"] is None
    assert output["items"][1]["output"]["prompt"] == "b"
    assert output["items"][1]["output"]["outputs"][0]["url"].startswith("http://runback.test/")
    assert len(api.harness.sender.requests) == 1  # the items named no callback of their own


@pytest.mark.parametrize(
    ("items", "event", "status"),
    [
        (["a", "b"], "batch.succeeded", "succeeded"),
        (["a", {"prompt": "b", "fail": True}], "batch.partial_succeeded", "partial_succeeded"),
        ([{"prompt": "a", "fail": True}], "batch.failed", "failed"),
    ],
)
async def test_the_event_follows_the_items_outcomes(
    api: Api, items: list[dict[str, Any] | str], event: str, status: str
) -> None:
    batch = await _created(api, *items)

    await _run_all(api)

    [(_, body)] = _sent(api)
    assert (body["event"], body["status"]) == (event, status)
    shown = (await api.get(f"/v1/batches/{batch['id']}")).json()
    assert shown["status_code"] == status
    assert shown["completed_at"] is not None


async def test_a_failed_item_carries_its_error_in_the_batch_callback(api: Api) -> None:
    await _created(api, {"prompt": "a", "fail": True})

    await _run_all(api)

    [(_, body)] = _sent(api)
    assert body["output"]["items"][0]["output"] == {
        "code": "asked", "message": "asked to fail", "errors": None,
    }  # fmt: skip


async def test_cancelling_a_batch_cancels_its_items_and_sends_batch_failed(api: Api) -> None:
    batch = await _created(api, "a", "b", "c")

    response = await api.post(f"/v1/batches/{batch['id']}/cancel")
    await api.harness.dispatcher.deliver_due()

    assert response.status_code == 200
    assert (response.json()["status_code"], response.json()["items_cancelled"]) == (
        "canceled", 3,
    )  # fmt: skip
    [(_, body)] = _sent(api)
    assert (body["event"], body["status"]) == ("batch.failed", "canceled")
    assert [body["output"][n] for n in ("succeeded", "failed", "cancelled")] == [0, 0, 3]


async def test_an_item_with_its_own_callback_url_sends_its_own_callback_too(api: Api) -> None:
    await _created(api, {"prompt": "a", "callback_url": ITEM_HOOK}, "b")

    await _run_all(api)

    [(_, item)] = _sent(api, ITEM_HOOK)
    [(_, whole)] = _sent(api)
    assert (item["event"], whole["event"]) == ("run.completed", "batch.succeeded")


async def test_a_hundred_items_are_one_batch_and_a_hundred_and_one_are_refused(
    api: Api,
) -> None:
    hundred = await _submit(api, _body(*(str(n) for n in range(100))))
    too_many = await _submit(api, _body(*(str(n) for n in range(101))))
    none = await _submit(api, _body())

    assert hundred.status_code == 201
    assert len(hundred.json()["items"]) == 100
    for refused in (too_many, none):
        assert (refused.status_code, refused.json()["code"]) == (422, "VALIDATION_ERROR")
        assert refused.json()["errors"][0]["field"] == "input"


async def test_an_invalid_item_is_named_by_its_index(api: Api) -> None:
    response = await _submit(api, _body("a", {"prompt": 7}, "c"))

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["input[1].prompt"]
    assert (await api.get("/v1/runs")).json()["items"] == []  # nothing was created


async def test_an_item_that_is_not_an_object_is_named_by_its_index(api: Api) -> None:
    response = await _submit(api, {"input": [{"prompt": "a"}, "b"], "callback_url": HOOK})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "input[1]"


async def test_an_item_s_refused_callback_url_is_named(api: Api) -> None:
    response = await _submit(api, _body("a", {"prompt": "b", "callback_url": "http://10.0.0.1/"}))

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "input[1].callback_url"


async def test_an_unknown_model_is_a_404(api: Api) -> None:
    response = await api.client.post(
        "/v1/models/acme/nothing/batches", json=_body("a"), headers=api.auth()
    )

    assert (response.status_code, response.json()["code"]) == (404, "MODEL_UNAVAILABLE")


async def test_items_are_paged_in_order(api: Api) -> None:
    batch = await _created(api, *"abcde")
    await _run_all(api)

    first = (await api.get(f"/v1/batches/{batch['id']}/items?limit=2")).json()
    second = (
        await api.get(f"/v1/batches/{batch['id']}/items?limit=2&cursor={first['next']}")
    ).json()
    third = (
        await api.get(f"/v1/batches/{batch['id']}/items?limit=2&cursor={second['next']}")
    ).json()

    pages = [first, second, third]
    assert [[i["sequence_index"] for i in p["items"]] for p in pages] == [[0, 1], [2, 3], [4]]
    assert third["next"] is None
    assert first["items"][0]["output"]["prompt"] == "a"
    assert (await api.get(f"/v1/batches/{batch['id']}/items?cursor=nonsense")).status_code == 400


async def test_the_same_key_replays_the_first_answer_and_another_body_is_a_409(
    api: Api,
) -> None:
    first = await _submit(api, _body("a", "b"), **{"Idempotency-Key": "b-1"})
    await _run_all(api)

    again = await _submit(api, _body("a", "b"), **{"Idempotency-Key": "b-1"})
    other = await _submit(api, _body("a", "c"), **{"Idempotency-Key": "b-1"})

    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (other.status_code, other.json()["code"]) == (409, "CONFLICT")


async def test_concurrent_creates_with_one_key_make_one_batch(api: Api) -> None:
    answers = await asyncio.gather(
        *(_submit(api, _body("a", "b"), **{"Idempotency-Key": "burst"}) for _ in range(8))
    )

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len((await api.get("/v1/runs")).json()["items"]) == 2


async def test_a_redelivery_is_built_fresh_and_one_is_in_flight_at_a_time(api: Api) -> None:
    batch = await _created(api, "a")
    await _run_all(api)
    [(_, first)] = _sent(api)
    api.harness.clock.advance(3600)

    made = await api.post(f"/v1/batches/{batch['id']}/callback-redeliveries")
    busy = await api.post(f"/v1/batches/{batch['id']}/callback-redeliveries")
    await api.harness.dispatcher.deliver_due()

    assert made.status_code == 201
    assert (busy.status_code, busy.json()["code"]) == (422, "CONFLICT")
    [_, (headers, again)] = _sent(api)
    assert headers["webhook-id"] == webhook_id(UUID(batch["id"]))
    url = "output.items.0.output.outputs.0.url"
    assert _at(again, url) != _at(first, url)  # signed again, an hour later
    log = (await api.get(f"/v1/batches/{batch['id']}/callback")).json()
    assert [d["is_automatic"] for d in log] == [True, False]
    assert all(d["batch_id"] == batch["id"] and d["run_id"] is None for d in log)


def _at(body: dict[str, Any], path: str) -> Any:
    found: Any = body
    for part in path.split("."):
        found = found[int(part)] if part.isdigit() else found[part]
    return found


async def test_a_batch_not_ended_is_not_redelivered(api: Api) -> None:
    batch = await _created(api, "a")

    response = await api.post(f"/v1/batches/{batch['id']}/callback-redeliveries")

    assert (response.status_code, response.json()["code"]) == (409, "BATCH_NOT_TERMINAL")


async def test_the_callback_s_outcome_is_on_the_batch_and_on_a_run(api: Api) -> None:
    batch = await _created(api, {"prompt": "a", "callback_url": ITEM_HOOK})
    await _run_all(api)

    on_batch = (await api.get(f"/v1/batches/{batch['id']}")).json()["callback"]
    on_run = (await api.get(f"/v1/runs/{batch['items'][0]['run_id']}")).json()["callback"]

    for summary in (on_batch, on_run):
        assert (summary["status_code"], summary["attempts"], summary["last_status_code"]) == (
            "succeeded", 1, 200,
        )  # fmt: skip
        assert summary["delivered_at"] is not None


async def test_an_owed_callback_is_sent_by_the_sweep_exactly_once(api: Api) -> None:
    # The process that ended the last item died before committing the batch's callback.
    batch = await _created(api, "a")
    [item] = batch["items"]
    run = await api.harness.store.runs.get(UUID(item["run_id"]))
    assert run is not None
    ended = end_run(run, Ending.canceled(), now=api.harness.clock.now())

    await api.harness.store.outbox.end(run, ended, None)
    assert (await api.get(f"/v1/batches/{batch['id']}/callback")).json() == []
    later = api.harness.clock.now() + timedelta(minutes=5)

    sent = await api.harness.executor.send_owed_batch_callbacks(before=later)
    again = await api.harness.executor.send_owed_batch_callbacks(before=later)

    assert (sent, again) == (1, 0)
    assert len((await api.get(f"/v1/batches/{batch['id']}/callback")).json()) == 1


async def test_the_batch_statuses_are_listed(api: Api) -> None:
    response = await api.get("/v1/batches/statuses")

    assert response.json() == [
        "queued", "running", "succeeded", "partial_succeeded", "failed", "canceled",
    ]  # fmt: skip


async def test_another_organization_s_batch_is_not_found(api: Api) -> None:
    batch = await _created(api, "a")

    response = await api.get(f"/v1/batches/{batch['id']}", key=await api.other_organization_key())

    assert (response.status_code, response.json()["code"]) == (404, "BATCH_NOT_FOUND")
