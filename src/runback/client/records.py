"""What the client answers: the API's JSON as frozen dataclasses.

A record takes the keys it knows and ignores the others, so a newer server that adds fields
never breaks an older client. Field names are the API's (``status_code``, ``created_at``);
every ``*_at`` field is a ``datetime``; the JSON a run carries (``input``, ``output``,
``metadata``) stays as parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

from runback.core.states import BatchStatus, DeliveryStatus, RunStatus
from runback.errors import UnexpectedAnswerError

TERMINAL_EVENTS = frozenset(
    {"run.completed", "run.failed", "run.cancelled", "run.partial_succeeded"}
)
"""The events a run's stream ends with."""

R = TypeVar("R")


def _datetime(value: str) -> datetime:
    return datetime.fromisoformat(value)


def read(
    cls: type[R],
    data: object,
    *,
    convert: Mapping[str, Callable[[Any], Any]] | None = None,
    renamed: Mapping[str, str] | None = None,
) -> R:
    """A ``cls`` from an answer's JSON object: each field from its key (``renamed`` maps a
    field to another key), through ``convert`` (or ``datetime`` for ``*_at``) unless null;
    a missing key takes the field's default. ``UnexpectedAnswerError`` if it cannot."""
    try:
        return cls(**_values(cls, data, convert or {}, renamed or {}))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UnexpectedAnswerError(
            f"the server's answer is not a {cls.__name__} ({exc!r}): is base_url runback's?"
        ) from exc


def _values(
    cls: type[Any],
    data: object,
    convert: Mapping[str, Callable[[Any], Any]],
    renamed: Mapping[str, str],
) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise TypeError(f"{type(data).__name__} instead of an object")
    values: dict[str, Any] = {}
    for item in fields(cls):
        key = renamed.get(item.name, item.name)
        if key not in data:
            if item.default is MISSING and item.default_factory is MISSING:
                raise KeyError(key)
            continue
        value = data[key]
        change = convert.get(item.name)
        if change is None and item.name.endswith("_at"):
            change = _datetime
        values[item.name] = value if value is None or change is None else change(value)
    return values


def items_of(page: object) -> list[Any]:
    """The ``items`` of a listing's answer (``{"items", "next"}``)."""
    items = page.get("items") if isinstance(page, Mapping) else None
    if not isinstance(items, list):
        raise UnexpectedAnswerError("the server's answer is not a listing: is base_url runback's?")
    return items


def array_of(answer: object) -> list[Any]:
    """A bare array answer (a run's deliveries)."""
    if not isinstance(answer, list):
        raise UnexpectedAnswerError("the server's answer is not an array: is base_url runback's?")
    return answer


@dataclass(frozen=True)
class CallbackSummary:
    """How the latest delivery of a run's (or batch's) end is doing."""

    delivery_id: str
    status_code: DeliveryStatus
    attempts: int
    last_status_code: int | None
    delivered_at: datetime | None

    @classmethod
    def from_json(cls, data: object) -> CallbackSummary:
        return read(cls, data, convert={"status_code": DeliveryStatus})


def _summary(value: object) -> CallbackSummary:
    return CallbackSummary.from_json(value)


@dataclass(frozen=True)
class Run:
    """A run as the API shows it; ``callback`` only on a single run's answer."""

    id: str
    model: str
    status_code: RunStatus
    input: Any
    output: Any
    created_at: datetime
    metadata: Any = None
    client_ref: str | None = None
    callback_url: str | None = None
    duration_ms: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    batch_id: str | None = None
    sequence_index: int | None = None
    output_url_ttl: int | None = None
    events: tuple[str, ...] = ()
    event_sequence: int = 0
    callback: CallbackSummary | None = None

    @property
    def ended(self) -> bool:
        """Whether the run has reached a terminal status."""
        return self.status_code.is_terminal

    @classmethod
    def from_json(cls, data: object) -> Run:
        return read(
            cls, data, convert={"status_code": RunStatus, "events": tuple, "callback": _summary}
        )


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch (a run); the items listing adds how it ended."""

    id: str
    sequence_index: int
    run_id: str
    status_code: RunStatus
    client_ref: str | None = None
    output: Any = None
    failure_code: str | None = None
    failure_message: str | None = None
    completed_at: datetime | None = None

    @classmethod
    def from_json(cls, data: object) -> BatchItem:
        return read(cls, data, convert={"status_code": RunStatus})


def _items(value: list[Any]) -> tuple[BatchItem, ...]:
    return tuple(BatchItem.from_json(item) for item in value)


@dataclass(frozen=True)
class Batch:
    """A batch, its items and (on a single batch's answer) how its callback is doing."""

    id: str
    model: str
    status_code: BatchStatus
    items_total: int
    created_at: datetime
    items_succeeded: int = 0
    items_failed: int = 0
    items_cancelled: int = 0
    metadata: Any = None
    callback_url: str | None = None
    duration_ms: int | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None
    items: tuple[BatchItem, ...] = ()
    callback: CallbackSummary | None = None

    @property
    def ended(self) -> bool:
        """Whether every item has ended."""
        return self.status_code.is_terminal

    @classmethod
    def from_json(cls, data: object) -> Batch:
        return read(
            cls,
            data,
            convert={"status_code": BatchStatus, "items": _items, "callback": _summary},
        )


@dataclass(frozen=True)
class Attempt:
    """One attempt of a delivery: what the receiver answered, or why it failed."""

    id: str
    attempt_number: int
    created_at: datetime
    delivery_id: str | None = None
    status_code: int | None = None
    response_body: str | None = None
    response_time_ms: int | None = None
    error_message: str | None = None
    failure_reason_code: str | None = None
    signing_secret_id: str | None = None
    refused_reason: str | None = None

    @classmethod
    def from_json(cls, data: object) -> Attempt:
        return read(cls, data)


def _attempts(value: list[Any]) -> tuple[Attempt, ...]:
    return tuple(Attempt.from_json(item) for item in value)


@dataclass(frozen=True)
class Delivery:
    """A callback delivery with its attempts, oldest first; ``payload_bytes`` are the exact
    bytes every attempt sends."""

    id: str
    status_code: DeliveryStatus
    created_at: datetime
    run_id: str | None = None
    batch_id: str | None = None
    event_key: str | None = None
    webhook_id: str | None = None
    callback_url: str | None = None
    payload: Any = None
    payload_bytes: bytes = b""
    signing_secret_id: str | None = None
    is_automatic: bool = True
    ordered: bool = False
    """Sent only after every older callback to its URL ended (ordered delivery)."""
    failure_reason_code: str | None = None
    failure_detail: str | None = None
    attempt_count: int = 0
    max_attempts: int | None = None
    next_attempt_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    attempts: tuple[Attempt, ...] = ()

    @classmethod
    def from_json(cls, data: object) -> Delivery:
        return read(
            cls,
            data,
            convert={
                "status_code": DeliveryStatus,
                "payload_bytes": str.encode,
                "attempts": _attempts,
            },
        )


@dataclass(frozen=True)
class CallbackTest:
    """A signed ``test.ping`` sent to a URL now (``POST /v1/callback-tests``): what came
    back, or why nothing did (``failure``: ``dns_error``, ``timeout``, ``redirect``,
    ``http_5xx``...)."""

    id: str
    url: str
    ok: bool
    created_at: datetime
    status_code: int | None = None
    latency_ms: int | None = None
    response_excerpt: str | None = None
    failure: str | None = None
    failure_detail: str | None = None
    request: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: object) -> CallbackTest:
        return read(cls, data)


@dataclass(frozen=True)
class DeliveryMessage:
    """A delivery as ``runback listen`` forwards it: what it is, its exact body, and its
    headers signed when the server sent it; ``cursor`` resumes a stream after it."""

    id: str
    created_at: datetime
    body: str
    headers: dict[str, str]
    run_id: str | None = None
    batch_id: str | None = None
    event_key: str | None = None
    webhook_id: str | None = None
    callback_url: str | None = None
    is_automatic: bool = True
    cursor: str | None = None

    @property
    def body_bytes(self) -> bytes:
        """The exact bytes the delivery sends (and its signature covers)."""
        return self.body.encode()

    @classmethod
    def from_json(cls, data: object, *, cursor: str | None = None) -> DeliveryMessage:
        if not isinstance(data, Mapping) or not isinstance(data.get("delivery"), Mapping):
            raise UnexpectedAnswerError(
                "the server's answer is not a delivery's message: is base_url runback's?"
            )
        flat = {**data["delivery"], "body": data.get("body"), "headers": data.get("headers")}
        return read(cls, {**flat, "cursor": cursor}, convert={"headers": dict})


@dataclass(frozen=True)
class Recovery:
    """A bulk recovery of failed deliveries: how many it queued and how they are doing."""

    id: str
    from_: datetime
    to: datetime
    created_at: datetime
    destination: str | None = None
    queued: int = 0
    skipped: int = 0
    pending: int = 0
    delivered: int = 0
    failed: int = 0

    @classmethod
    def from_json(cls, data: object) -> Recovery:
        return read(
            cls, data, convert={"from_": _datetime, "to": _datetime}, renamed={"from_": "from"}
        )


@dataclass(frozen=True)
class Secret:
    """A callback secret: ``plain_secret`` only in the answer that created an HMAC secret,
    ``public_key`` always for an Ed25519 key."""

    id: str
    type: str
    is_current: bool
    created_at: datetime
    label: str | None = None
    key_prefix: str | None = None
    plain_secret: str | None = None
    public_key: str | None = None
    disabled_at: datetime | None = None
    last_used_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_json(cls, data: object) -> Secret:
        return read(cls, data)


@dataclass(frozen=True)
class Model:
    """A model the server runs, with its limits and input schema."""

    name: str
    description: str | None = None
    is_async: bool = True
    timeout: float | None = None
    concurrency: int | None = None
    output_url_ttl: int | None = None
    input_schema: Any = None

    @classmethod
    def from_json(cls, data: object) -> Model:
        return read(cls, data)


@dataclass(frozen=True)
class RunEvent:
    """One event of a run's stream: its name, its sequence (the SSE ``id``) and its body,
    the JSON its callback carries."""

    event: str
    sequence: int
    data: Any = None

    @property
    def is_terminal(self) -> bool:
        """Whether this is the run's end (the stream's last event)."""
        return self.event in TERMINAL_EVENTS
