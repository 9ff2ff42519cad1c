"""The receiver's answers, for the OpenAPI document only.

Each model mirrors a dict builder of ``receiving.app`` or ``receiving.expecting``: the same
keys, types and nullability. Never used to validate an answer at run time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from runback.core.expected import ExpectedState
from runback.core.inbox import CopyState, HandlerState
from runback.web.schemas import Shape


class Received(Shape):
    """A callback accepted and stored (or its duplicate recognised)."""

    received: bool
    event_id: UUID
    duplicate: bool


class Handler(Shape):
    """How an event's handler is doing."""

    state: HandlerState
    attempts: int
    error: str | None
    next_at: datetime | None


class InboxEvent(Shape):
    """A received event (``receiving.app.event_view``)."""

    id: UUID
    source: str
    dedupe_key: str
    event: str | None
    run_id: str | None
    batch_id: str | None
    headshots_id: str | None
    task_uuid: str | None
    status: str | None
    webhook_id: str | None
    receipt_count: int
    sequence: int | None
    stale: bool
    reconciled: bool
    handler: Handler
    first_received_at: datetime
    last_received_at: datetime


class InboxReceipt(Shape):
    """One request that delivered an event, as received."""

    id: UUID
    scheme: str | None
    rejected_reason: str | None
    received_at: datetime
    headers: dict[str, Any]
    body: str


class InboxCopy(Shape):
    """A file an event named, copied before its URL expires."""

    id: UUID
    path: str
    source_url: str
    expires_at: datetime
    state: CopyState
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    stored_key: str | None
    size: int | None
    sha256: str | None
    content_type: str | None
    completed_at: datetime | None


class InboxEventDetail(InboxEvent):
    """An event with its receipts and copies."""

    receipts: list[InboxReceipt]
    copies: list[InboxCopy]


class Expected(Shape):
    """A run whose end the receiver expects, and how it stands."""

    source: str
    run_id: str
    state: ExpectedState
    expected_by: datetime
    next_poll_at: datetime | None
    attempts: int
    last_error: str | None
    event_id: UUID | None = Field(description="the event that settled it")
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None
