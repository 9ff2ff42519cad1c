"""Records and stored rows for tests, with defaults for every field a test does not care about."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from runback.core.ids import new_id
from runback.core.payload import dumps
from runback.core.records import Run
from runback.core.runs import new_run
from runback.core.states import RunStatus


def queued_run(
    *,
    organization_id: UUID,
    now: datetime,
    model: str = "runback/echo",
    input: dict[str, Any] | None = None,
    callback_url: str | None = "https://receiver.example/hook",
    metadata: dict[str, Any] | None = None,
    events: tuple[str, ...] | None = None,
) -> Run:
    """A run as ``POST .../runs`` creates it."""
    return new_run(
        run_id=new_id(),
        organization_id=organization_id,
        model=model,
        input=dumps(input if input is not None else {"hello": "world"}),
        now=now,
        callback_url=callback_url,
        metadata=None if metadata is None else dumps(metadata),
        events=events,
    )


ENDED_AT = datetime(2026, 5, 6, 10, 2, tzinfo=UTC)


def ended_run(**changes: Any) -> Run:
    """A succeeded run with a callback, every field set; ``changes`` replace any of them."""
    created = ENDED_AT - timedelta(minutes=2)
    run = new_run(
        run_id=UUID("0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60"),
        organization_id=UUID(int=1),
        model="runback/echo",
        input='{"prompt":"a cat"}',
        now=created,
        callback_url="https://receiver.example/hook",
        metadata='{"order":"A-17"}',
    )
    ended = replace(
        run,
        status=RunStatus.SUCCEEDED,
        output='{"outputs":[]}',
        execution_count=1,
        started_at=created,
        completed_at=ENDED_AT,
        updated_at=ENDED_AT,
    )
    return replace(ended, **changes)
