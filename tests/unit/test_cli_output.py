"""What the client commands print and how they end: a callback URL without its token, a
line per delivery, the API's JSON from a record, and one exit status per kind of error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runback.cli.exits import Exit, exit_status
from runback.cli.forwarding import Forwarded, line, record, where
from runback.cli.output import plain
from runback.client import DeliveryMessage, Recovery
from runback.errors import (
    ApiError,
    ConflictError,
    DatabaseUnavailableError,
    NotFoundError,
    NotFoundInStoreError,
    PermissionDeniedError,
    RunbackError,
    TransportError,
    UnauthorizedError,
    UnexpectedAnswerError,
    WaitTimeoutError,
)

NOW = datetime(2026, 12, 6, 10, 0, 1, tzinfo=UTC)
MESSAGE = DeliveryMessage(
    id="d1",
    created_at=NOW,
    body='{"event":"run.completed","run_id":"r1"}',
    headers={"webhook-id": "msg_1"},
    run_id="r1",
    webhook_id="msg_1",
    callback_url="https://example.com/hooks/a?token=s3cret#x",
    event_key="terminal",
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://example.com/hooks/a?token=s3cret", "example.com/hooks/a"),  # the token goes
        ("http://127.0.0.1:3000/", "127.0.0.1:3000/"),  # the port stays
        ("http://h", "h"),  # no path
        (None, "-"),  # a delivery without a URL (an operational one)
    ],
)
def test_a_callback_url_is_shown_without_its_query_string(url: str | None, shown: str) -> None:
    assert where(url) == shown


@pytest.mark.parametrize(
    ("forwarded", "ends"),
    [
        (None, "example.com/hooks/a"),  # not forwarded: only what came
        (Forwarded(status=204, ms=12), "-> 204 in 12 ms"),
        (Forwarded(status=500, ms=3, excerpt="boom"), "-> 500 in 3 ms: boom"),
        (Forwarded(status=None, ms=5, error="ConnectError"), "no answer after 5 ms (ConnectError)"),
    ],
)
def test_a_delivery_is_one_line_ending_with_the_handler_s_answer(
    forwarded: Forwarded | None, ends: str
) -> None:
    said = line(MESSAGE, forwarded, NOW)

    assert said.startswith("10:00:01  run.completed  run r1  msg_1  example.com/hooks/a")
    assert said.endswith(ends)
    assert "s3cret" not in said


def test_the_json_of_a_delivery_keeps_the_token_out_too() -> None:
    said = record(MESSAGE, Forwarded(status=200, ms=1))

    assert said["delivery"]["callback_url"] == "example.com/hooks/a"
    assert said["forwarded"] == {"status": 200, "ms": 1, "excerpt": None, "error": None}


def test_a_record_is_printed_with_the_api_s_field_names() -> None:
    recovery = Recovery(id="x", from_=NOW, to=NOW, created_at=NOW, queued=2)

    assert plain(recovery)["from"] == "2026-12-06T10:00:01+00:00"
    assert plain(recovery)["queued"] == 2


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (UnauthorizedError("no"), Exit.AUTH),
        (PermissionDeniedError("no"), Exit.AUTH),
        (NotFoundError("no"), Exit.NOT_FOUND),
        (ApiError.from_answer(404, None), Exit.NOT_FOUND),  # a 404 a proxy said
        (ConflictError("no"), Exit.REFUSED),
        (ApiError.from_answer(502, None), Exit.UNREACHABLE),  # a gateway in front
        (TransportError("no"), Exit.UNREACHABLE),
        (UnexpectedAnswerError("no"), Exit.UNREACHABLE),
        (WaitTimeoutError("no"), Exit.TIMEOUT),
        (NotFoundInStoreError("no organization named x"), Exit.NOT_FOUND),  # a server command
        (DatabaseUnavailableError("no"), Exit.UNREACHABLE),
        (RunbackError("no"), Exit.REFUSED),
    ],
)
def test_each_kind_of_error_has_its_exit_status(error: RunbackError, status: Exit) -> None:
    assert exit_status(error) is status
