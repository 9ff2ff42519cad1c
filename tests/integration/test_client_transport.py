"""The API client's transport against a real HTTP server on loopback that fails on purpose:
what it retries (connection resets, timeouts, ``5xx``, ``503 Retry-After``) and what it
never does (a ``4xx``, a create without its key); how it resumes a stream; how ``wait``
polls when the server has no stream. Sync and async alike."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from runback.client import AsyncClient, Backoff, Client, Timeouts
from runback.errors import (
    ApiError,
    NotFoundError,
    ServiceUnavailableError,
    TransportError,
    UnexpectedAnswerError,
    ValidationFailedError,
)
from support.scripted import (
    RESET,
    Reply,
    ScriptedServer,
    Seen,
    envelope,
    in_turn,
    json_reply,
)

QUICK = Backoff(base=0.001, cap=0.01)
RUN = {
    "id": "0190a000-0000-7000-8000-000000000001",
    "model": "runback/echo",
    "status_code": "succeeded",
    "input": {},
    "output": {"a": 1},
    "created_at": "2026-01-01T00:00:00+00:00",
    "a_field_of_a_newer_server": True,
}
UNAVAILABLE = envelope(503, "SERVICE_UNAVAILABLE", "database restarting", **{"Retry-After": "0"})


@pytest.fixture(params=["async", "sync"])
def flavor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Api:
    """The same calls through either client; what they answer or raise."""

    def __init__(self, flavor: str, url: str, **options: Any) -> None:
        self.flavor, self.url, self.options = flavor, url, {"backoff": QUICK, **options}

    async def __call__(self, part: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.flavor == "sync":
            # The server answers from its own thread: a blocking call cannot starve it.
            with Client(self.url, "rb_test", **self.options) as client:
                answer = getattr(getattr(client, part), method)(*args, **kwargs)
                return list(answer) if isinstance(answer, Iterator) else answer
        async with AsyncClient(self.url, "rb_test", **self.options) as aclient:
            answer = getattr(getattr(aclient, part), method)(*args, **kwargs)
            if isinstance(answer, AsyncIterator):
                return [item async for item in answer]
            return await answer


async def test_a_read_is_retried_through_503s_and_a_reset(flavor: str) -> None:
    script = in_turn([UNAVAILABLE, RESET, UNAVAILABLE], json_reply(200, RUN))
    with ScriptedServer(script) as server:
        run = await Api(flavor, server.url)("runs", "get", RUN["id"])

    assert run.output == {"a": 1}
    assert len(server.seen) == 4
    assert server.seen[0].headers["Authorization"] == "Bearer rb_test"


async def test_a_create_is_retried_with_one_generated_idempotency_key(flavor: str) -> None:
    script = in_turn([UNAVAILABLE, RESET], json_reply(201, RUN))
    with ScriptedServer(script) as server:
        await Api(flavor, server.url)("runs", "create", "runback/echo", {"n": 1})

    keys = {seen.headers["Idempotency-Key"] for seen in server.seen}
    assert len(server.seen) == 3
    assert len(keys) == 1
    uuid.UUID(keys.pop())
    assert server.paths() == ["/v1/models/runback/echo/runs"] * 3


async def test_a_given_idempotency_key_is_sent_as_given(flavor: str) -> None:
    with ScriptedServer(in_turn([UNAVAILABLE], json_reply(201, RUN))) as server:
        await Api(flavor, server.url)("runs", "create", "a/b", {}, idempotency_key="order-7")

    assert [seen.headers["Idempotency-Key"] for seen in server.seen] == ["order-7"] * 2


async def test_a_4xx_is_never_retried(flavor: str) -> None:
    refused = json_reply(
        422,
        {
            "code": "VALIDATION_ERROR",
            "message": "callback_url: must be http or https",
            "errors": [{"field": "callback_url", "message": "must be http or https"}],
        },
    )
    with (
        ScriptedServer(in_turn([], refused)) as server,
        pytest.raises(ValidationFailedError) as raised,
    ):
        await Api(flavor, server.url)("runs", "create", "a/b", {}, callback_url="ftp://x")

    assert len(server.seen) == 1
    assert raised.value.status == 422
    assert raised.value.errors == [{"field": "callback_url", "message": "must be http or https"}]


async def test_a_call_that_makes_something_new_is_sent_once(flavor: str) -> None:
    with (
        ScriptedServer(in_turn([], UNAVAILABLE)) as server,
        pytest.raises(ServiceUnavailableError) as raised,
    ):
        await Api(flavor, server.url)("deliveries", "redeliver", RUN["id"])

    assert len(server.seen) == 1
    assert raised.value.code == "SERVICE_UNAVAILABLE"
    assert raised.value.message == "database restarting"


async def test_retries_are_bounded_and_end_with_the_last_error(flavor: str) -> None:
    with (
        ScriptedServer(in_turn([], Reply(502, b"bad gateway"))) as server,
        pytest.raises(ApiError) as raised,
    ):
        await Api(flavor, server.url, retries=2)("models", "list")

    assert len(server.seen) == 3
    assert type(raised.value) is ApiError  # no class of its own for a 502
    assert raised.value.status == 502


async def test_no_server_is_a_transport_error(flavor: str) -> None:
    with ScriptedServer(in_turn([], RESET)) as server, pytest.raises(TransportError):
        await Api(flavor, server.url, retries=1)("runs", "get", RUN["id"])

    assert len(server.seen) == 2


async def test_a_read_past_its_timeout_is_retried(flavor: str) -> None:
    release = threading.Event()
    script = in_turn([Reply(hold=release)], json_reply(200, RUN))
    with ScriptedServer(script) as server:
        try:
            api = Api(flavor, server.url, timeout=Timeouts(connect=2, read=0.2))
            run = await api("runs", "get", RUN["id"])
        finally:
            release.set()

    assert run.id == RUN["id"]
    assert len(server.seen) == 2


def _sse(*events: tuple[str, int]) -> Reply:
    body = "retry: 1000\n\n" + "".join(
        f'event: {name}\nid: {sequence}\ndata: {{"event": "{name}", "sequence": {sequence}}}\n\n'
        for name, sequence in events
    )
    return Reply(200, body.encode(), {"Content-Type": "text/event-stream"})


async def test_a_stream_that_stops_early_is_resumed_after_its_last_event(flavor: str) -> None:
    script = in_turn([_sse(("run.started", 1)), RESET], _sse(("run.logs", 2), ("run.completed", 3)))
    with ScriptedServer(script) as server:
        events = await Api(flavor, server.url)("runs", "events", RUN["id"])

    assert [(e.event, e.sequence) for e in events] == [
        ("run.started", 1), ("run.logs", 2), ("run.completed", 3),
    ]  # fmt: skip
    assert events[-1].data == {"event": "run.completed", "sequence": 3}
    resumed = [seen.headers.get("Last-Event-ID") for seen in server.seen]
    assert resumed == [None, "1", "1"]


async def test_wait_polls_a_server_without_the_stream(flavor: str) -> None:
    running = json_reply(200, {**RUN, "status_code": "running"})

    def script(seen: Seen) -> Reply:
        if seen.path.endswith("/stream"):
            return envelope(404, "NOT_FOUND", "no route /v1/runs/x/stream")
        gets = sum(not s.path.endswith("/stream") for s in server.seen)
        return running if gets < 3 else json_reply(200, RUN)

    with ScriptedServer(script) as server:
        run = await Api(flavor, server.url)("runs", "wait", RUN["id"], timeout=10)

    assert run.status_code == "succeeded"
    assert [p.rsplit("/", 1)[-1] for p in server.paths()] == ["stream"] + [RUN["id"]] * 3


async def test_a_run_the_stream_does_not_know_is_not_polled(flavor: str) -> None:
    with (
        ScriptedServer(in_turn([], envelope(404, "RUN_NOT_FOUND"))) as server,
        pytest.raises(NotFoundError) as raised,
    ):
        await Api(flavor, server.url)("runs", "wait", RUN["id"], timeout=10)

    assert raised.value.code == "RUN_NOT_FOUND"
    assert len(server.seen) == 1


async def test_a_success_that_is_not_the_api_s_json_is_an_unexpected_answer(flavor: str) -> None:
    page = Reply(200, b"<html>a login page</html>", {"Content-Type": "text/html"})
    with ScriptedServer(in_turn([], page)) as server, pytest.raises(UnexpectedAnswerError):
        await Api(flavor, server.url)("models", "list")

    assert len(server.seen) == 1


async def test_a_stream_failing_for_a_moment_is_asked_again(flavor: str) -> None:
    script = in_turn([UNAVAILABLE, RESET], _sse(("run.completed", 1)))
    with ScriptedServer(script) as server:
        events = await Api(flavor, server.url)("runs", "events", RUN["id"])

    assert [e.event for e in events] == ["run.completed"]
    assert len(server.seen) == 3


async def test_wait_polls_when_the_stream_keeps_closing_early(flavor: str) -> None:
    def script(seen: Seen) -> Reply:
        return _sse() if seen.path.endswith("/stream") else json_reply(200, RUN)

    with ScriptedServer(script) as server:
        run = await Api(flavor, server.url, retries=2)("runs", "wait", RUN["id"], timeout=10)

    assert run.status_code == "succeeded"
    assert [p.rsplit("/", 1)[-1] for p in server.paths()] == ["stream"] * 3 + [RUN["id"]]


def _deliveries_sse(*cursors: str) -> Reply:
    message = {
        "delivery": {"id": "d", "webhook_id": "msg_1", "created_at": RUN["created_at"]},
        "headers": {"webhook-id": "msg_1"},
        "body": '{"event":"run.completed"}',
    }
    body = "".join(
        f"event: delivery\nid: {cursor}\ndata: {json.dumps(message)}\n\n" for cursor in cursors
    )
    return Reply(200, (": keepalive\n\n" + body).encode(), {"Content-Type": "text/event-stream"})


async def _first_messages(flavor: str, url: str, count: int, **filters: Any) -> list[Any]:
    """The first ``count`` messages of the deliveries' stream (it never ends by itself)."""
    taken: list[Any] = []
    if flavor == "sync":
        with Client(url, "rb_test", backoff=QUICK) as client:
            for message in client.deliveries.stream(**filters):
                taken.append(message)
                if len(taken) == count:
                    break
        return taken
    async with AsyncClient(url, "rb_test", backoff=QUICK) as aclient:
        stream = aclient.deliveries.stream(**filters)
        async for message in stream:
            taken.append(message)
            if len(taken) == count:
                break
        await stream.aclose()
    return taken


async def test_the_deliveries_stream_resumes_after_its_last_message(flavor: str) -> None:
    script = in_turn([_deliveries_sse("c1"), RESET], _deliveries_sse("c2"))
    with ScriptedServer(script) as server:
        messages = await _first_messages(flavor, server.url, 2, url_prefix="http://x/a b")

    assert [m.cursor for m in messages] == ["c1", "c2"]
    assert messages[0].body_bytes == b'{"event":"run.completed"}'
    assert messages[0].headers == {"webhook-id": "msg_1"}
    assert [seen.headers.get("Last-Event-ID") for seen in server.seen[:3]] == [None, "c1", "c1"]
    assert server.seen[0].path == "/v1/callback-deliveries/stream?url_prefix=http%3A%2F%2Fx%2Fa+b"


async def test_the_deliveries_stream_refused_is_not_asked_again(flavor: str) -> None:
    refusing = ScriptedServer(in_turn([], envelope(401, "UNAUTHORIZED")))
    with refusing as server, pytest.raises(ApiError) as raised:
        await _first_messages(flavor, server.url, 1)

    assert raised.value.status == 401
    assert len(server.seen) == 1
