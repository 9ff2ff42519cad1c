"""The API client's pure parts: records read from answers, the SSE decoder, the backoff,
and errors mapped from the envelope (the client against a server: tests/e2e/test_client.py,
its retries: tests/integration/test_client_transport.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runback.client import Delivery, Run
from runback.client.sse import Decoder, Message
from runback.client.transport import Backoff
from runback.core.states import DeliveryStatus, RunStatus
from runback.errors import (
    ApiError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailableError,
    UnexpectedAnswerError,
    ValidationFailedError,
)

RUN = {
    "id": "r1",
    "model": "a/b",
    "status_code": "running",
    "input": {"x": 1},
    "output": None,
    "created_at": "2026-01-02T03:04:05.123456+00:00",
    "started_at": None,
}


def test_a_record_ignores_keys_it_does_not_know() -> None:
    run = Run.from_json({**RUN, "invented_later": {"deep": True}})

    assert run.status_code is RunStatus.RUNNING
    assert run.created_at == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert run.started_at is None
    assert not run.ended


@pytest.mark.parametrize(
    "answer",
    [
        {key: value for key, value in RUN.items() if key != "model"},  # a required key missing
        {**RUN, "status_code": "sleeping"},  # no such status
        {**RUN, "created_at": "yesterday"},  # not a datetime
        {**RUN, "callback": []},  # not an object
        "<html>",  # another service's page
    ],
)
def test_an_answer_not_of_the_api_s_shape_is_one_error(answer: object) -> None:
    with pytest.raises(UnexpectedAnswerError, match="answer is not a"):
        Run.from_json(answer)


def test_a_delivery_keeps_its_payload_bytes_and_attempts() -> None:
    delivery = Delivery.from_json(
        {
            "id": "d1",
            "status_code": "failed",
            "created_at": "2026-01-02T03:04:05+00:00",
            "payload_bytes": '{"event":"run.completed","ü":1}',
            "attempts": [{"id": "a1", "attempt_number": 1, "created_at": RUN["created_at"]}],
        }
    )

    assert delivery.status_code is DeliveryStatus.FAILED
    assert delivery.payload_bytes == '{"event":"run.completed","ü":1}'.encode()
    assert delivery.attempts[0].attempt_number == 1


def test_the_decoder_reads_messages_comments_and_multiline_data() -> None:
    decoder = Decoder()
    lines = [
        "retry: 1000", "", ": keepalive", "",
        "event: run.logs", "id: 4", "data: {\"a\":", "data: 1}", "",
        "data: no event name", "",
    ]  # fmt: skip

    messages = [m for line in lines if (m := decoder.feed(line)) is not None]

    assert messages == [
        Message(event="run.logs", id="4", data='{"a":\n1}'),
        Message(event="message", id="4", data="no event name"),
    ]
    assert decoder.retry_ms == 1000
    assert decoder.last_id == "4"


@pytest.mark.parametrize(
    ("attempt", "chance", "seconds"),
    [
        (0, 0.0, 0.25),  # the base, no jitter drawn
        (0, 1.0, 0.125),  # at most half taken off
        (3, 0.0, 2.0),  # doubling
        (10, 0.0, 8.0),  # capped
    ],
)
def test_the_backoff_doubles_to_its_cap_with_jitter(
    attempt: int, chance: float, seconds: float
) -> None:
    assert Backoff().delay(attempt, chance) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (404, {"code": "RUN_NOT_FOUND", "message": "no"}, NotFoundError, "RUN_NOT_FOUND"),
        # the redelivery's one exception: a conflict answered 422
        (422, {"code": "CONFLICT", "message": "in flight"}, ValidationFailedError, "CONFLICT"),
        (409, {"code": "RUN_NOT_TERMINAL", "message": "wait"}, ConflictError, "RUN_NOT_TERMINAL"),
        (429, {"code": "RATE_LIMITED", "message": "wait"}, RateLimitedError, "RATE_LIMITED"),
        (503, None, ServiceUnavailableError, "SERVICE_UNAVAILABLE"),  # a proxy's own page
        (502, "<html>", ApiError, "INTERNAL"),
    ],
)
def test_an_answer_maps_to_the_class_of_its_status(
    status: int, body: object, kind: type[ApiError], code: str
) -> None:
    error = ApiError.from_answer(status, body)

    assert type(error) is kind
    assert error.status == status
    assert error.code == code


def test_field_errors_come_through() -> None:
    body = {"code": "VALIDATION_ERROR", "message": "m", "errors": [{"field": "input.n"}]}

    error = ApiError.from_answer(422, body)

    assert error.errors == [{"field": "input.n", "message": ""}]
    assert error.message == "m"
