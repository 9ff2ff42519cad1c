"""``events`` on submit, the run's stream (Server-Sent Events), and a progress event
redelivered by its sequence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from runback.models import register_builtins
from runback.provider.registry import ModelRegistry
from runback.receiver import LatestSequences
from runback.receiver.config import ReceiveConfig
from runback.store import Store
from runback.testing import ManualClock
from support.api import Api, api_client
from support.inbox import inbox_client

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


# -- the receiving side: stale arrivals -----------------------------------------------------


async def test_runback_receive_marks_an_event_older_than_one_received_stale(
    api: Api, store: Store, clock: ManualClock
) -> None:
    run_id = await _ran(
        api, {"input": {"seconds": 0, "steps": 2}, "callback_url": HOOK, "events": ALL}
    )
    await api.harness.dispatcher.deliver_due()
    sent = sorted(api.harness.sender.requests, key=lambda r: orjson.loads(r.body)["sequence"])
    late = sent[1]  # arrives after the one that followed it

    async with inbox_client(store, clock, config=ReceiveConfig(), blobs=None) as box:
        for request in [sent[0], *sent[2:], late]:
            answer = await box.post("runback", request.body, dict(request.headers))
            assert answer.status_code == 200, answer.text
        events = await box.events(limit=50)

    assert {e["run_id"] for e in events} == {run_id}
    stale = {e["sequence"]: e["stale"] for e in events}
    assert stale == {n: n == 2 for n in range(1, len(sent) + 1)}


def test_the_library_keeps_the_highest_sequence_per_run() -> None:
    latest = LatestSequences(max_runs=2)

    assert not latest.is_stale({"run_id": "a", "sequence": 2})
    assert latest.is_stale({"run_id": "a", "sequence": 1})
    assert not latest.is_stale({"run_id": "a", "sequence": 2})  # a duplicate, not stale
    assert not latest.is_stale({"run_id": "b", "sequence": 1})
    assert not latest.is_stale({"run_id": "a", "event": "run.completed"})  # no sequence
    assert not latest.is_stale({"run_id": "c", "sequence": 5})  # 'a' is forgotten now
    assert not latest.is_stale({"run_id": "a", "sequence": 1})
