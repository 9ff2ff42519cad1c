"""The provider API's answers, for the OpenAPI document only.

Each model mirrors a dict builder (``provider.api.views`` and the routes' own ``*_view``):
the same keys, types and nullability. Answers are never validated through these models at
run time; ``tests/e2e/test_openapi_fuzz.py`` checks real answers against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from runback.core.records import SecretType
from runback.core.states import BatchStatus, DeliveryStatus, RunStatus
from runback.web.schemas import Shape


class CallbackSummary(Shape):
    """How the latest delivery of a run's (or batch's) end is doing."""

    delivery_id: UUID
    status_code: DeliveryStatus
    attempts: int
    last_status_code: int | None = Field(description="the HTTP status of the last attempt")
    delivered_at: datetime | None


class Run(Shape):
    """A run (``views.run_view``)."""

    id: UUID
    model: str
    status_code: RunStatus
    input: dict[str, Any]
    output: Any = Field(description="the model's output (any JSON), null until it has one")
    metadata: dict[str, Any] | None
    client_ref: str | None
    callback_url: str | None
    duration_ms: int | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    failure_code: str | None
    failure_message: str | None
    batch_id: UUID | None
    sequence_index: int | None
    output_url_ttl: int | None
    events: list[str]
    event_sequence: int


class RunDetail(Run):
    """A run as ``GET /v1/runs/{run_id}`` shows it: with how its callback is doing."""

    callback: CallbackSummary | None = Field(
        description="null until the run has ended with a callback_url"
    )
    waiting_for: str | None = Field(
        default=None, description="only while queued with no live worker serving its model"
    )


class BatchItem(Shape):
    """A batch's item (a run), as a batch lists it."""

    id: UUID
    sequence_index: int
    run_id: UUID
    status_code: RunStatus
    client_ref: str | None


class BatchItemResult(BatchItem):
    """A batch's item with how it ended (``GET /v1/batches/{batch_id}/items``)."""

    output: Any = Field(description="the item's output (any JSON), null until it has one")
    failure_code: str | None
    failure_message: str | None
    completed_at: datetime | None


class Batch(Shape):
    """A batch (``views.batch_view``), its items listed."""

    id: UUID
    model: str
    status_code: BatchStatus
    items_total: int
    items_succeeded: int
    items_failed: int
    items_cancelled: int
    metadata: dict[str, Any] | None
    callback_url: str | None
    duration_ms: int | None
    created_at: datetime
    completed_at: datetime | None
    updated_at: datetime
    items: list[BatchItem]


class BatchDetail(Batch):
    """A batch as ``GET /v1/batches/{batch_id}`` shows it: with how its callback is doing."""

    callback: CallbackSummary | None


class Attempt(Shape):
    """One attempt at a delivery."""

    id: UUID
    delivery_id: UUID
    attempt_number: int
    status_code: int | None = Field(description="the receiver's HTTP status, null without one")
    response_body: str | None
    response_time_ms: int | None
    error_message: str | None
    failure_reason_code: str | None
    signing_secret_id: UUID | None
    created_at: datetime
    refused_reason: str | None


class Delivery(Shape):
    """A callback delivery, its attempts inline."""

    id: UUID
    run_id: UUID | None
    batch_id: UUID | None
    event_key: str
    webhook_id: str
    callback_url: str
    payload_bytes: str = Field(description="the exact body sent, as text")
    payload: dict[str, Any] = Field(description="the same body, as JSON")
    signing_secret_id: UUID | None
    is_automatic: bool
    ordered: bool = Field(
        description="sent only after every older callback to its URL ended (ordered delivery)"
    )
    status_code: DeliveryStatus
    failure_reason_code: str | None
    failure_detail: str | None
    attempt_count: int
    max_attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    attempts: list[Attempt]


class Recovery(Shape):
    """A recovery: failed deliveries queued again, and how they are doing."""

    id: UUID
    from_: datetime = Field(alias="from")
    to: datetime
    destination: str | None
    queued: int
    skipped: int
    pending: int
    delivered: int
    failed: int
    created_at: datetime


class Secret(Shape):
    """A callback secret; ``plain_secret`` only in an HMAC secret's create answer,
    ``public_key`` only for an Ed25519 key."""

    id: UUID
    label: str | None
    public_key: str | None = Field(default=None, description="ed25519 only: whpk_...")
    plain_secret: str | None = Field(
        default=None, description="hmac only, in the create answer only: whsec_..."
    )
    type: SecretType
    key_prefix: str
    is_current: bool
    disabled_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime


class Jwk(Shape):
    """An Ed25519 public key as a JWK."""

    kty: str
    crv: str
    x: str
    kid: str
    use: str
    alg: str


class Jwks(Shape):
    """The public keys of the active Ed25519 secrets."""

    keys: list[Jwk]


class Model(Shape):
    """A model this server runs."""

    name: str
    description: str
    is_async: bool
    timeout: float | None
    concurrency: int | None
    output_url_ttl: float | None
    input_schema: dict[str, Any] = Field(description="its input's JSON Schema")


class PingRequest(Shape):
    """What a test ping sent."""

    webhook_id: str
    headers: dict[str, str]
    body: str


class CallbackTest(Shape):
    """A test ping's attempt (``POST /v1/callback-tests``)."""

    id: UUID
    url: str
    ok: bool
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    failure: str | None
    failure_detail: str | None
    request: PingRequest
    created_at: datetime | None


class OrderedHead(Shape):
    """The oldest callback in flight to an ordered URL, which every later one waits for."""

    delivery_id: UUID
    run_id: UUID | None
    event_key: str
    status_code: DeliveryStatus
    attempt_count: int
    max_attempts: int
    next_attempt_at: datetime | None
    failure_reason_code: str | None
    failure_detail: str | None
    created_at: datetime


class OrderedCallback(Shape):
    """A callback URL whose callbacks go out one at a time, in order."""

    callback_url: str
    created_at: datetime
    in_flight: int
    head: OrderedHead | None


class ListenedDelivery(Shape):
    """What a delivery is, as ``runback listen`` forwards it."""

    id: UUID
    run_id: UUID | None
    batch_id: UUID | None
    event_key: str
    webhook_id: str
    callback_url: str
    is_automatic: bool
    created_at: datetime


class DeliveryMessage(Shape):
    """A delivery with its body and headers signed now (``runback listen --replay``)."""

    delivery: ListenedDelivery
    headers: dict[str, str]
    body: str


class HeadshotsAccepted(Shape):
    headshots_id: UUID


class HeadshotsError(Shape):
    code: str
    message: str


class HeadshotsStatus(Shape):
    headshots_id: UUID
    status: RunStatus
    created_at: datetime
    completed_at: datetime | None
    image_urls: list[str] | None = Field(default=None, description="once succeeded")
    error: HeadshotsError | None = Field(default=None, description="once failed or cancelled")


class HeadshotsAnswer(Shape):
    """The headshots front door's answer to a submission."""

    success: bool
    data: HeadshotsAccepted


class HeadshotsStatusAnswer(Shape):
    """The headshots front door's answer to a status read."""

    success: bool
    data: HeadshotsStatus


class HeadshotsRefusal(Shape):
    """Every error of the headshots front door, in its own envelope."""

    success: bool
    error: HeadshotsError


class RunwareError(Shape):
    code: str
    message: str
    parameter: str | None
    taskType: str | None  # noqa: N815 (Runware's own names)
    taskUUID: str | None  # noqa: N815


class RunwareErrors(Shape):
    """Every error of the Runware front door, in Runware's envelope."""

    errors: list[RunwareError]


class RunwareAnswer(Shape):
    """Runware's answer: one entry per result or accepted task, in Runware's shapes."""

    data: list[dict[str, Any]]
