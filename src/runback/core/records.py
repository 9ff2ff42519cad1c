"""The records the core reasons about: runs, batches, deliveries, attempts, secrets.

Frozen dataclasses, free of any database or HTTP type. JSON-valued fields (``input``,
``output``, ``metadata``) hold the compact JSON text exactly as stored, so that building a
payload or an API answer embeds them without re-parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from runback.core.retry import RetryPolicy
from runback.core.states import BatchStatus, DeliveryStatus, RunStatus

JsonText = str
"""Compact UTF-8 JSON text of one value, as runback serialises it."""

TERMINAL_EVENT = "terminal"
"""The ``event_key`` of a run's or a batch's end: the callback every subject sends once."""


@dataclass(frozen=True, slots=True)
class Run:
    id: UUID
    organization_id: UUID
    model: str
    status: RunStatus
    input: JsonText
    output: JsonText | None
    metadata: JsonText | None
    client_ref: str | None
    callback_url: str | None
    failure_code: str | None
    failure_message: str | None
    batch_id: UUID | None
    execution_count: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    output_url_ttl: int | None = None
    """Seconds the run's output URLs stay valid; None: the deployment's or model's rule."""
    claimed_by: str | None = None
    """The worker executing it (``dispatching`` or ``running``); None while it waits or
    once it has ended."""
    sequence_index: int | None = None
    """Its place in its batch (from 0), when it is a batch's item."""
    events: tuple[str, ...] | None = None
    """The events it asked for (``runback.core.events.EventKind`` values); None: only its
    end, in the callback's original bytes."""
    event_sequence: int = 0
    """The ``sequence`` of its latest event (0: none yet)."""
    traceparent: str | None = None
    """The W3C trace context of its submission, when traced: its execution continues it."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Runs of one model submitted together, with one callback once every item has ended."""

    id: UUID
    organization_id: UUID
    model: str
    status: BatchStatus
    metadata: JsonText | None
    callback_url: str | None
    items_total: int
    items_succeeded: int
    items_failed: int
    items_cancelled: int
    created_at: datetime
    completed_at: datetime | None
    updated_at: datetime
    callback_due: bool = False
    """Every item has ended and the batch callback is not yet committed."""

    @property
    def items_done(self) -> int:
        return self.items_succeeded + self.items_failed + self.items_cancelled


@dataclass(frozen=True, slots=True)
class Attempt:
    id: UUID
    delivery_id: UUID
    attempt_number: int
    status_code: int | None
    response_body: str | None
    response_time_ms: int
    error_message: str | None
    failure_reason_code: str | None
    signing_secret_id: UUID | None
    created_at: datetime
    refused_reason: str | None = None
    """Why the attempt did not count, when it did not: its worker had lost the delivery's
    claim (stalled past its lease) and another worker had taken it."""


@dataclass(frozen=True, slots=True)
class Delivery:
    id: UUID
    organization_id: UUID
    run_id: UUID | None
    batch_id: UUID | None
    callback_url: str
    webhook_id: str
    payload_bytes: bytes
    is_automatic: bool
    status: DeliveryStatus
    failure_reason_code: str | None
    failure_detail: str | None
    attempt_count: int
    retry_policy: RetryPolicy
    next_attempt_at: datetime | None
    signing_secret_id: UUID | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    destination: str = ""
    """The callback URL's ``host:port``: what its circuit breaker and concurrency go by."""
    recovery_id: UUID | None = None
    """The bulk recovery that queued this delivery, if one did."""
    claimed_by: str | None = None
    """The worker making its attempt (``delivering``); None otherwise."""
    event_key: str = TERMINAL_EVENT
    """Which of its subject's events it carries: ``terminal`` (the run's or batch's end),
    ``result:<id>`` (one result of a run that sends each as it exists), or ``event:<sequence>``
    (one of a run's progress events)."""
    ordered: bool = False
    """Its organization had ordered delivery on for its callback URL when it was made
    (the store decides, at the insert): it is sent only once every older ordered one to
    that URL has succeeded or failed."""
    traceparent: str | None = None
    """The W3C trace context of its ``deliver`` span, when traced: each attempt's parent."""

    @property
    def max_attempts(self) -> int:
        return self.retry_policy.max_attempts


class SecretType(StrEnum):
    """What a callback secret is, and so which ``webhook-signature`` entry it signs."""

    HMAC = "hmac"  # v1, and Runflow-Signature
    ED25519 = "ed25519"  # v1a


@dataclass(frozen=True, slots=True)
class CallbackSecret:
    """A key that signs an organization's callbacks: an HMAC secret (``secret`` is
    ``whsec_...``) or an Ed25519 key pair (``secret`` is the private ``whsk_...``,
    ``public_key`` its ``whpk_...``). ``is_current`` is per type: the current HMAC secret
    signs ``Runflow-Signature``; every active key signs ``webhook-signature``."""

    id: UUID
    organization_id: UUID
    label: str | None
    secret: str
    key_prefix: str
    is_current: bool
    disabled_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime
    type: SecretType = SecretType.HMAC
    public_key: str | None = None


@dataclass(frozen=True, slots=True)
class Organization:
    id: UUID
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as it may be shown again: never the token, only its prefix."""

    id: UUID
    key_prefix: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
    organizations: tuple[str, ...]
    """Names of the key's organizations, its default first."""


@dataclass(frozen=True, slots=True)
class OutputFile:
    """A file a run produced, kept in blob storage under ``key``."""

    id: UUID
    run_id: UUID
    organization_id: UUID
    position: int
    type: str
    """``image``, ``video``, ``audio`` or ``file``."""
    key: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunResult:
    """One result a run sent while it worked, each as its own callback event: what the
    model said of it, and the output file it is about, if any."""

    id: UUID
    run_id: UUID
    organization_id: UUID
    position: int
    data: JsonText
    output_id: UUID | None
    created_at: datetime

    @property
    def event_key(self) -> str:
        return f"result:{self.id}"


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event a run made (started, output, logs, its end), kept for its stream: the
    body its callback carries, under its ``sequence``."""

    run_id: UUID
    organization_id: UUID
    sequence: int
    event: str
    body: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OrderedCallback:
    """A callback URL of an organization whose callbacks go out one at a time, in the
    order they were made."""

    organization_id: UUID
    callback_url: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Recovery:
    """A bulk re-queue of the failed deliveries created in ``[created_from, created_to)``
    (to one ``destination``, if given)."""

    id: UUID
    organization_id: UUID
    created_from: datetime
    created_to: datetime
    destination: str | None
    queued: int
    skipped: int
    created_at: datetime
