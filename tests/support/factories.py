"""Records and stored rows for tests, with defaults for every field a test does not care about."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from runback.core.ids import new_id
from runback.core.payload import dumps
from runback.core.records import Run
from runback.core.runs import new_run


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
    return new_run(
        run_id=new_id(),
        organization_id=organization_id,
        model=model,
        input=dumps(input if input is not None else {"hello": "world"}),
        now=now,
        callback_url=callback_url,
        metadata=None if metadata is None else dumps(metadata),
    )
