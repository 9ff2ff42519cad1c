"""Records and stored rows for tests, with defaults for every field a test does not care about."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from runback.core.ids import new_id
from runback.core.payload import dumps
from runback.core.records import Run
from runback.core.states import RunStatus


def queued_run(
    *,
    organization_id: UUID,
    now: datetime,
    model: str = "runback/echo",
    input: dict[str, Any] | None = None,
    callback_url: str | None = "https://receiver.example/hook",
    metadata: dict[str, Any] | None = None,
) -> Run:
    """A run as ``POST .../runs`` creates it."""
    return Run(
        id=new_id(),
        organization_id=organization_id,
        model=model,
        status=RunStatus.QUEUED,
        input=dumps(input if input is not None else {"hello": "world"}),
        output=None,
        metadata=None if metadata is None else dumps(metadata),
        client_ref=None,
        callback_url=callback_url,
        failure_code=None,
        failure_message=None,
        batch_id=None,
        execution_count=0,
        created_at=now,
        started_at=None,
        completed_at=None,
        updated_at=now,
    )
