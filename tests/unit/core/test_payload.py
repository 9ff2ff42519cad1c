"""The callback's bytes: fixed once, byte for byte, as CONTRACT.md §4 states them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest

from runback.core.payload import failure_output, run_callback_body
from runback.core.records import Run
from runback.core.states import RunStatus
from support.factories import ended_run

RUN_ID = UUID("0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60")
CREATED_AT = datetime(2026, 5, 6, 10, 0, 0, 123456, tzinfo=UTC)
COMPLETED_AT = datetime(2026, 5, 6, 10, 1, 42, 468801, tzinfo=UTC)
OUTPUT = '{"outputs":[{"type":"image","url":"https://cdn.example/out.png?X-Expires=1"}]}'
METADATA = '{"order":"A-17","note":"café ☕"}'


def make_run(**changes: Any) -> Run:
    """A succeeded run with a callback; ``changes`` replace any field."""
    fields: dict[str, Any] = {
        "id": RUN_ID,
        "output": OUTPUT,
        "metadata": METADATA,
        "created_at": CREATED_AT,
        "started_at": CREATED_AT + timedelta(seconds=1),
        "completed_at": COMPLETED_AT,
        "updated_at": COMPLETED_AT,
    }
    return ended_run(**(fields | changes))


def body_of(run: Run) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(run_callback_body(run))
    return parsed


def test_succeeded_run_callback_body_is_byte_exact() -> None:
    expected = (
        '{"event":"run.completed",'
        '"run_id":"0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60",'
        '"status":"succeeded",'
        '"output":{"outputs":[{"type":"image","url":"https://cdn.example/out.png?X-Expires=1"}]},'
        '"duration_ms":102345,'
        '"created_at":"2026-05-06T10:00:00.123456+00:00",'
        '"completed_at":"2026-05-06T10:01:42.468801+00:00",'
        '"metadata":{"order":"A-17","note":"café ☕"}}'
    ).encode()

    assert run_callback_body(make_run()) == expected


def test_callback_keys_come_in_the_contract_order() -> None:
    assert list(body_of(make_run())) == [
        "event",
        "run_id",
        "status",
        "output",
        "duration_ms",
        "created_at",
        "completed_at",
        "metadata",
    ]


def test_non_ascii_is_sent_as_utf8_not_escaped() -> None:
    body = run_callback_body(make_run())

    assert "café ☕".encode() in body
    assert b"\\u" not in body


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (RunStatus.SUCCEEDED, "run.completed"),
        (RunStatus.FAILED, "run.failed"),
        (RunStatus.CANCELED, "run.cancelled"),  # UK spelling in the event, US in the status
        (RunStatus.PARTIAL_SUCCEEDED, "run.partial_succeeded"),
    ],
)
def test_event_follows_the_terminal_status(status: RunStatus, event: str) -> None:
    body = body_of(make_run(status=status))

    assert (body["event"], body["status"]) == (event, status.value)


def test_cancelled_run_sends_null_output_even_when_one_is_stored() -> None:
    assert body_of(make_run(status=RunStatus.CANCELED))["output"] is None


def test_failed_run_sends_the_failure_envelope_as_output() -> None:
    run = make_run(status=RunStatus.FAILED, output=failure_output("model_error", "boom"))

    assert body_of(run)["output"] == {"code": "model_error", "message": "boom", "errors": None}


def test_failure_output_is_the_compact_error_envelope() -> None:
    assert failure_output("timeout", "ran past 60 s") == (
        '{"code":"timeout","message":"ran past 60 s","errors":null}'
    )


@pytest.mark.parametrize(
    ("elapsed", "duration_ms"),
    [
        (timedelta(0), 0),  # completed in the same instant
        (timedelta(microseconds=999), 0),  # under one millisecond rounds down
        (timedelta(milliseconds=1), 1),  # exactly one millisecond
        (timedelta(microseconds=1999), 1),  # 1.999 ms is floored, not rounded
        (timedelta(hours=2, microseconds=500), 7_200_000),  # long runs keep whole ms
    ],
)
def test_duration_ms_is_whole_milliseconds_floored(elapsed: timedelta, duration_ms: int) -> None:
    run = make_run(completed_at=CREATED_AT + elapsed)

    assert body_of(run)["duration_ms"] == duration_ms


def test_datetimes_in_another_offset_are_sent_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    run = make_run(
        created_at=datetime(2026, 5, 6, 12, 0, 0, 5, tzinfo=paris),
        completed_at=datetime(2026, 5, 6, 12, 0, 1, 5, tzinfo=paris),
    )

    body = body_of(run)

    assert (body["created_at"], body["completed_at"]) == (
        "2026-05-06T10:00:00.000005+00:00",
        "2026-05-06T10:00:01.000005+00:00",
    )


def test_whole_second_datetimes_have_no_fraction_as_isoformat_gives() -> None:
    run = make_run(created_at=datetime(2026, 5, 6, 10, 0, tzinfo=UTC))

    assert body_of(run)["created_at"] == "2026-05-06T10:00:00+00:00"


def test_metadata_is_sent_verbatim_in_its_key_order() -> None:
    run = make_run(metadata='{"z":1,"a":{"y":2,"b":[3,"ü"]}}')

    assert run_callback_body(run).endswith('"metadata":{"z":1,"a":{"y":2,"b":[3,"ü"]}}}'.encode())


def test_absent_metadata_is_null() -> None:
    assert run_callback_body(make_run(metadata=None)).endswith(b'"metadata":null}')


@pytest.mark.parametrize(
    "status",
    [
        RunStatus.QUEUED,  # not started
        RunStatus.DISPATCHING,  # claimed, not started
        RunStatus.RUNNING,  # still working
    ],
)
def test_a_run_that_has_not_ended_has_no_callback_body(status: RunStatus) -> None:
    run = make_run(status=status, completed_at=None)

    with pytest.raises(ValueError, match="not completed"):
        run_callback_body(run)


def test_a_non_terminal_status_has_no_callback_body_even_with_completed_at() -> None:
    run = make_run(status=RunStatus.RUNNING)

    with pytest.raises(ValueError, match="no callback"):
        run_callback_body(run)
