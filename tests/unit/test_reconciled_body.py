"""The body the reconciler records from a polled run is the sender's callback, byte for byte:
both are written by ``run_end_body``, one from the run, one from its GET view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest

from runback.client.records import Run as RunView
from runback.core.payload import run_callback_body
from runback.core.records import Run
from runback.core.states import RunStatus
from runback.provider.api.views import run_view
from runback.receiving.reconciler import ended_run_body
from support.factories import ended_run

CREATED_AT = datetime(2026, 5, 6, 10, 0, 0, 123456, tzinfo=UTC)
COMPLETED_AT = datetime(2026, 5, 6, 10, 1, 42, 468801, tzinfo=UTC)
OUTPUT = '{"outputs":[{"type":"image","url":"https://cdn.example/out.png?X-Expires=1"}]}'
RENDERED = '{"outputs":[{"type":"image","url":"https://api.example/files/o.png?sig=ab"}]}'


def make_run(**changes: Any) -> Run:
    fields: dict[str, Any] = {
        "id": UUID("0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60"),
        "output": OUTPUT,
        "metadata": '{"order":"A-17","note":"café ☕","n":[1,2.5,null]}',
        "created_at": CREATED_AT,
        "started_at": CREATED_AT + timedelta(seconds=1),
        "completed_at": COMPLETED_AT,
        "updated_at": COMPLETED_AT,
    }
    return ended_run(**(fields | changes))


def polled(run: Run, *, output: str | None = None) -> RunView:
    """The run as the client reads it from ``GET /v1/runs/{id}``."""
    return RunView.from_json(orjson.loads(orjson.dumps(run_view(run, output=output))))


@pytest.mark.parametrize(
    "changes",
    [
        {},  # succeeded, metadata with non-ASCII text and numbers
        {"metadata": None},  # no metadata: null
        {"status": RunStatus.FAILED, "output": '{"code":"boom","message":"no","errors":null}'},
        {"status": RunStatus.CANCELED},  # a cancelled run's callback says no output
        {"status": RunStatus.PARTIAL_SUCCEEDED},
        {"events": ("start", "completed"), "event_sequence": 4},  # numbered events: sequence
        {"completed_at": CREATED_AT},  # ended at once: duration 0
    ],
)
def test_a_polled_run_s_body_is_the_callback_s_byte_for_byte(changes: dict[str, Any]) -> None:
    run = make_run(**changes)

    assert ended_run_body(polled(run)) == run_callback_body(run)


def test_the_rendered_output_replaces_the_stored_one_alike() -> None:
    run = make_run()

    assert ended_run_body(polled(run, output=RENDERED)) == run_callback_body(run, output=RENDERED)


def test_a_run_not_ended_has_no_body() -> None:
    view = polled(make_run(status=RunStatus.RUNNING, completed_at=None))

    with pytest.raises(ValueError, match="not completed"):
        ended_run_body(view)
