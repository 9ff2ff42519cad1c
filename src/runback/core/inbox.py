"""The receiving side's records and rules: received callbacks, the copies of their output
files, and the handlers run for them.

An *event* is one callback, however many times it arrives (its dedupe key decides); each
arrival is a *receipt*, kept raw. Every output URL of an event gets a *copy*, fetched into the
user's storage in the background and retried until its URL expires; each event's handlers run
at least once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final
from uuid import UUID

from runback.core.retry import Random, RetryPolicy, doubling


class CopyState(StrEnum):
    PENDING = "pending"  # waiting for next_attempt_at
    COPYING = "copying"  # claimed: a fetch is under way
    COPIED = "copied"
    LOST = "lost"  # the URL expired before a copy succeeded: final


class HandlerState(StrEnum):
    NONE = "none"  # no handler is registered for the event
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # every attempt failed: replay it by hand


COPY_RETRY: Final = RetryPolicy(doubling(1.0, cap=300.0, count=10), repeat_last=True)
"""Between copy attempts: 1 s doubling to 5 min, then every 5 min until the URL expires."""

HANDLER_RETRY: Final = RetryPolicy(doubling(1.0, cap=600.0, count=12))
"""Between handler attempts: 12 retries over about an hour, then ``failed``."""


@dataclass(frozen=True, slots=True)
class InboxEvent:
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
    handler_state: HandlerState
    handler_attempts: int
    handler_error: str | None
    handler_next_at: datetime | None
    first_received_at: datetime
    last_received_at: datetime
    sequence: int | None = None
    """A run's event's ``sequence``, when it carried one."""
    stale: bool = False
    """A later event of its run (a higher ``sequence``) had come first: this snapshot is
    older than one already received."""
    reconciled: bool = False
    """Recorded by the reconciler from the run polled from its sender: no callback came."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """One arrival of a callback, kept as it came (a thin one with its full body)."""

    id: UUID
    event_id: UUID | None
    source: str
    body: bytes
    headers: str
    """The request's headers as JSON text."""
    scheme: str | None
    """How it was authenticated: ``runflow``, ``v1``, ``v1a``, ``token`` or ``none``."""
    rejected_reason: str | None
    """Why a verified request was not accepted as an event (e.g. malformed JSON)."""
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Copy:
    """One output URL of an event and its copy into the user's storage."""

    id: UUID
    event_id: UUID
    path: str
    source_url: str
    expires_at: datetime
    expected_sha256: str | None
    state: CopyState
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    stored_key: str | None
    size: int | None
    sha256: str | None
    content_type: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


def next_handler_attempt(
    attempts: int, *, now: datetime, random: Random, policy: RetryPolicy = HANDLER_RETRY
) -> datetime | None:
    """When to run a failed handler again after ``attempts`` tries; None: give up."""
    delay = policy.delay_after(attempts, random)
    return None if delay is None else now + timedelta(seconds=delay)


def next_copy_attempt(
    attempts: int,
    *,
    now: datetime,
    expires_at: datetime,
    random: Random,
    policy: RetryPolicy = COPY_RETRY,
) -> datetime | None:
    """When to try a failed copy again; None once its URL will have expired by then (or
    the policy gives up)."""
    delay = policy.delay_after(attempts, random)
    if delay is None:
        return None
    due = now + timedelta(seconds=delay)
    return None if due >= expires_at else due
