"""``events`` on submit, the run's stream (Server-Sent Events), and a progress event
redelivered by its sequence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from runback.models import register_builtins
from runback.provider.registry import ModelRegistry
from runback.store import Store
from runback.testing import ManualClock
from support.api import Api, api_client

HOOK = "https://receiver.example/hook"
ALL = ["start", "output", "logs", "completed"]


@pytest.fixture
async def api(store: Store, clock: ManualClock) -> AsyncIterator[Api]:
    async with api_client(store, clock, registry=register_builtins(ModelRegistry())) as client:
        yield client


def _messages(text: str) -> list[dict[str, str]]:
    """The messages of a Server-Sent Events body (comments and ``retry`` left out)."""
    messages = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if "event" in fields:
            messages.append(fields)
    return messages


async def _ran(api: Api, body: dict[str, Any]) -> str:
    run_id = await api.run_id(body, model="runback/sleep")
    await api.harness.executor.run_until_idle()
    return run_id


@pytest.mark.parametrize(
    ("events", "said"),
    [
        (["logs", "progress"], "'progress' is not an event"),
        ([], "at least one"),
        ("logs", "JSON array"),
    ],
)
async def test_unknown_events_are_a_422_naming_the_field(
    api: Api, events: object, said: str
) -> None:
    response = await api.submit({"input": {}, "events": events})

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "events"
    assert said in error["message"]


async def test_a_run_says_which_events_it_asked_for(api: Api) -> None:
    asked = await api.submit({"input": {}, "events": ["logs", "start"]})
    default = await api.submit({"input": {}, "events": ["completed"]})

    assert asked.json()["events"] == ["start", "logs"]
    assert default.json()["events"] == ["completed"]


async def test_the_stream_of_an_ended_run_gives_every_event_in_order(api: Api) -> None:
    run_id = await _ran(api, {"input": {"seconds": 0, "steps": 3}, "events": ALL})

    response = await api.get(f"/v1/runs/{run_id}/stream")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    messages = _messages(response.text)
    assert [int(m["id"]) for m in messages] == list(range(1, len(messages) + 1))
    assert messages[0]["event"] == "run.started"
    assert messages[-1]["event"] == "run.completed"
    for message in messages:
        data = orjson.loads(message["data"])
        assert data["event"] == message["event"]
        assert data["sequence"] == int(message["id"])
    log = orjson.loads(messages[-2]["data"])
    assert log["progress"] == {"fraction": 1.0, "message": "slept 0 s"}
    assert log["logs"].endswith("step 3 of 3")


async def test_the_stream_goes_on_after_the_last_event_id(api: Api) -> None:
    run_id = await _ran(api, {"input": {"seconds": 0, "steps": 2}, "events": ALL})
    whole = _messages((await api.get(f"/v1/runs/{run_id}/stream")).text)

    response = await api.client.get(
        f"/v1/runs/{run_id}/stream", headers={**api.auth(), "Last-Event-ID": "1"}
    )

    assert _messages(response.text) == whole[1:]


async def test_a_bad_last_event_id_is_a_422(api: Api) -> None:
    run_id = await _ran(api, {"input": {"seconds": 0}, "events": ALL})

    response = await api.client.get(
        f"/v1/runs/{run_id}/stream", headers={**api.auth(), "Last-Event-ID": "abc"}
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Last-Event-ID"


async def test_a_run_without_events_streams_its_end_as_its_callback_says_it(api: Api) -> None:
    run_id = await _ran(api, {"input": {"seconds": 0}, "callback_url": HOOK})
    await api.harness.dispatcher.deliver_due()
    [sent] = api.harness.sender.requests

    [message] = _messages((await api.get(f"/v1/runs/{run_id}/stream")).text)

    assert message["event"] == "run.completed"
    assert message["id"] == "1"
    assert message["data"].encode() == sent.body


async def test_a_progress_event_is_redelivered_by_its_sequence(api: Api) -> None:
    run_id = await _ran(api, {"input": {"seconds": 0}, "callback_url": HOOK, "events": ALL})
    await api.harness.dispatcher.deliver_due()
    first = next(r for r in api.harness.sender.requests if b'"run.started"' in r.body)

    made = await api.post(f"/v1/runs/{run_id}/callback-redeliveries", {"sequence": 1})
    await api.harness.dispatcher.deliver_due()
    both = await api.post(
        f"/v1/runs/{run_id}/callback-redeliveries",
        {"sequence": 1, "result_id": "0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60"},
    )
    missing = await api.post(f"/v1/runs/{run_id}/callback-redeliveries", {"sequence": 99})

    assert made.status_code == 201, made.text
    again = api.harness.sender.requests[-1]
    assert again.body == first.body
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert both.status_code == 422
    assert missing.status_code == 404
    assert missing.json()["code"] == "EVENT_NOT_FOUND"
