"""Runware's task API: ``POST /v1`` with task arrays, Bearer or an authentication task,
``imageInference`` with each result POSTed to ``webhookURL`` as soon as it exists (the body
the result object, the URL's query kept byte for byte, the Runware ladder), or the results
in the answer; ``getResponse``; a repeated ``taskUUID`` replays; Runware's error envelope."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import httpx
import orjson
from PIL import Image

from runback.core.retry import RUNWARE_LADDER
from support.api import Api
from support.waiting import eventually

WEBHOOK = "https://api.example.com/webhooks/runware?token=a%2Fb&projectId=proj_789"


def _task(**fields: Any) -> dict[str, Any]:
    return {
        "taskType": "imageInference",
        "taskUUID": str(uuid.uuid4()),
        "model": "runware:100@1",
        "positivePrompt": "a serene landscape at sunset",
        "width": 256,
        "height": 192,
        **fields,
    }


async def _post(api: Api, tasks: list[dict[str, Any]], *, bearer: bool = True) -> httpx.Response:
    headers = api.auth() if bearer else {}
    return await api.client.post("/v1", json=tasks, headers=headers)


async def _run_all(api: Api) -> None:
    await api.harness.executor.run_until_idle()
    await api.harness.dispatcher.deliver_due()


async def test_each_result_goes_to_the_webhook_as_soon_as_it_exists(api: Api) -> None:
    task = _task(numberResults=3, webhookURL=WEBHOOK)

    answer = await _post(api, [task])
    await _run_all(api)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"data": [{"taskType": "imageInference", "taskUUID": task["taskUUID"]}]}
    sent = api.harness.sender.requests
    assert [r.url for r in sent] == [WEBHOOK] * 3  # the query byte for byte; no end callback
    bodies = [orjson.loads(r.body) for r in sent]
    assert [list(b) for b in bodies] == [[
        "taskType", "taskUUID", "imageUUID", "imageURL", "model", "width", "height", "seed",
        "cost", "createdAt",
    ]] * 3  # fmt: skip
    assert {b["taskUUID"] for b in bodies} == {task["taskUUID"]}
    assert len({b["imageUUID"] for b in bodies}) == 3
    assert len({r.headers["webhook-id"] for r in sent}) == 3
    image = await api.client.get(bodies[0]["imageURL"])
    assert Image.open(io.BytesIO(image.content)).size == (256, 192)


async def test_the_webhook_retries_on_the_runware_ladder(api: Api) -> None:
    task = _task(webhookURL=WEBHOOK)
    await _post(api, [task])
    await _run_all(api)

    [run] = (await api.get("/v1/runs")).json()["items"]
    [delivery] = (await api.get(f"/v1/runs/{run['id']}/callback")).json()

    assert delivery["max_attempts"] == len(RUNWARE_LADDER) + 1
    assert delivery["event_key"].startswith("result:")


async def test_without_a_webhook_the_answer_carries_the_results(api: Api) -> None:
    task = _task(numberResults=2)

    posted = asyncio.create_task(_post(api, [task]))

    async def submitted() -> bool:
        return bool((await api.get("/v1/runs")).json()["items"])

    await eventually(submitted, timeout=10, what="the task's run")
    await api.harness.executor.run_until_idle()
    answer = await posted

    assert answer.status_code == 200, answer.text
    results = answer.json()["data"]
    assert [r["taskUUID"] for r in results] == [task["taskUUID"]] * 2
    assert api.harness.sender.requests == []


async def test_an_authentication_task_authenticates(api: Api) -> None:
    task = _task(webhookURL=WEBHOOK)

    answer = await _post(
        api, [{"taskType": "authentication", "apiKey": api.key}, task], bearer=False
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == [{"taskType": "imageInference", "taskUUID": task["taskUUID"]}]


async def test_get_response_answers_the_results_so_far(api: Api) -> None:
    task = _task(numberResults=2, webhookURL=WEBHOOK)
    await _post(api, [task])
    asking = [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]

    before = (await _post(api, asking)).json()["data"]
    await _run_all(api)
    after = (await _post(api, asking)).json()["data"]

    assert [r["status"] for r in before] == ["processing"]
    assert [r["status"] for r in after] == ["success", "success"]
    assert after[0]["imageURL"].startswith("http://runback.test/files/")


async def test_a_repeated_task_uuid_replays_and_another_task_under_it_is_refused(
    api: Api,
) -> None:
    task = _task(webhookURL=WEBHOOK)

    first = await _post(api, [dict(task)])
    again = await _post(api, [dict(task)])
    other = await _post(api, [{**task, "positivePrompt": "something else"}])

    assert first.json() == again.json()
    assert len((await api.get("/v1/runs")).json()["items"]) == 1
    assert other.status_code == 409
    assert other.json()["errors"][0]["code"] == "duplicateTaskUUID"


async def test_errors_are_in_runware_s_envelope(api: Api) -> None:
    no_key = await _post(api, [_task()], bearer=False)
    bad_key = await _post(api, [{"taskType": "authentication", "apiKey": "rb_no"}, _task()])
    bad_width = await _post(api, [_task(width=250)])
    not_uuid = await _post(api, [_task(taskUUID="nope")])
    not_array = await api.client.post(
        "/v1", json={"taskType": "imageInference"}, headers=api.auth()
    )

    assert (no_key.status_code, no_key.json()["errors"][0]["code"]) == (401, "missingApiKey")
    assert (bad_key.status_code, bad_key.json()["errors"][0]["code"]) == (401, "invalidApiKey")
    assert bad_width.status_code == 400
    assert bad_width.json()["errors"][0]["parameter"] == "width"
    assert not_uuid.json()["errors"][0]["parameter"] == "taskUUID"
    assert not_array.status_code == 400
    assert list(no_key.json()["errors"][0]) == [
        "code", "message", "parameter", "taskType", "taskUUID",
    ]  # fmt: skip
