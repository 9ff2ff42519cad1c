"""The JSON shapes of the API's answers, built from the core's records.

Stored JSON (input, output, metadata, payload bytes) is embedded as-is, never re-parsed.
"""

from __future__ import annotations

from typing import Any

import orjson

from runback.core.clock import isoformat, whole_ms
from runback.core.events import DEFAULT_EVENTS
from runback.core.payload import raw
from runback.core.records import (
    TERMINAL_EVENT,
    Attempt,
    Batch,
    CallbackSecret,
    Delivery,
    JsonText,
    Run,
    SecretType,
)
from runback.core.states import BatchStatus, DeliveryStatus


def _id(value: object | None) -> str | None:
    return None if value is None else str(value)


def run_view(run: Run, *, output: JsonText | None = None) -> dict[str, Any]:
    """A run; ``output`` replaces its stored output (rendered with its files' URLs)."""
    return {
        "id": str(run.id),
        "model": run.model,
        "status_code": run.status.value,
        "input": raw(run.input),
        "output": raw(output or run.output),
        "metadata": raw(run.metadata),
        "client_ref": run.client_ref,
        "callback_url": run.callback_url,
        "duration_ms": (
            None if run.completed_at is None else whole_ms(run.created_at, run.completed_at)
        ),
        "created_at": isoformat(run.created_at),
        "started_at": isoformat(run.started_at),
        "completed_at": isoformat(run.completed_at),
        "updated_at": isoformat(run.updated_at),
        "failure_code": run.failure_code,
        "failure_message": run.failure_message,
        "batch_id": _id(run.batch_id),
        "sequence_index": run.sequence_index,
        "output_url_ttl": run.output_url_ttl,
        "events": list(run.events or DEFAULT_EVENTS),
        "event_sequence": run.event_sequence,
    }


def batch_view(batch: Batch, status: BatchStatus, items: list[Run] | None = None) -> dict[str, Any]:
    """A batch; ``status`` as it stands now (a stored batch says only whether it ended);
    ``items`` listed when given."""
    view: dict[str, Any] = {
        "id": str(batch.id),
        "model": batch.model,
        "status_code": status.value,
        "items_total": batch.items_total,
        "items_succeeded": batch.items_succeeded,
        "items_failed": batch.items_failed,
        "items_cancelled": batch.items_cancelled,
        "metadata": raw(batch.metadata),
        "callback_url": batch.callback_url,
        "duration_ms": (
            None if batch.completed_at is None else whole_ms(batch.created_at, batch.completed_at)
        ),
        "created_at": isoformat(batch.created_at),
        "completed_at": isoformat(batch.completed_at),
        "updated_at": isoformat(batch.updated_at),
    }
    if items is not None:
        view["items"] = [item_view(run) for run in items]
    return view


def item_view(run: Run, *, output: JsonText | None = None, full: bool = False) -> dict[str, Any]:
    """A batch's item (a run); ``full`` adds how it ended."""
    view: dict[str, Any] = {
        "id": str(run.id),
        "sequence_index": run.sequence_index,
        "run_id": str(run.id),
        "status_code": run.status.value,
        "client_ref": run.client_ref,
    }
    if full:
        view |= {
            "output": raw(output or run.output),
            "failure_code": run.failure_code,
            "failure_message": run.failure_message,
            "completed_at": isoformat(run.completed_at),
        }
    return view


def callback_summary(found: list[tuple[Delivery, list[Attempt]]]) -> dict[str, Any] | None:
    """How the latest delivery of a run's (or batch's) end is doing, for a polling client
    that need not read the delivery log; None before there is one."""
    ends = [(d, attempts) for d, attempts in found if d.event_key == TERMINAL_EVENT]
    if not ends:
        return None
    delivery, attempts = ends[-1]
    return {
        "delivery_id": str(delivery.id),
        "status_code": delivery.status.value,
        "attempts": delivery.attempt_count,
        "last_status_code": attempts[-1].status_code if attempts else None,
        "delivered_at": (
            isoformat(delivery.completed_at)
            if delivery.status is DeliveryStatus.SUCCEEDED
            else None
        ),
    }


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    return {
        "id": str(attempt.id),
        "delivery_id": str(attempt.delivery_id),
        "attempt_number": attempt.attempt_number,
        "status_code": attempt.status_code,
        "response_body": attempt.response_body,
        "response_time_ms": attempt.response_time_ms,
        "error_message": attempt.error_message,
        "failure_reason_code": attempt.failure_reason_code,
        "signing_secret_id": _id(attempt.signing_secret_id),
        "created_at": isoformat(attempt.created_at),
        "refused_reason": attempt.refused_reason,
    }


def delivery_view(delivery: Delivery, attempts: list[Attempt]) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "run_id": _id(delivery.run_id),
        "batch_id": _id(delivery.batch_id),
        "event_key": delivery.event_key,
        "webhook_id": delivery.webhook_id,
        "callback_url": delivery.callback_url,
        "payload_bytes": delivery.payload_bytes.decode(),
        "payload": orjson.Fragment(delivery.payload_bytes),
        "signing_secret_id": _id(delivery.signing_secret_id),
        "is_automatic": delivery.is_automatic,
        "ordered": delivery.ordered,
        "status_code": delivery.status.value,
        "failure_reason_code": delivery.failure_reason_code,
        "failure_detail": delivery.failure_detail,
        "attempt_count": delivery.attempt_count,
        "max_attempts": delivery.max_attempts,
        "next_attempt_at": isoformat(delivery.next_attempt_at),
        "created_at": isoformat(delivery.created_at),
        "updated_at": isoformat(delivery.updated_at),
        "completed_at": isoformat(delivery.completed_at),
        "attempts": [attempt_view(a) for a in attempts],
    }


def secret_view(secret: CallbackSecret, *, plain: bool = False) -> dict[str, Any]:
    """A secret; an HMAC secret's plain value only when ``plain`` (the create answer, once),
    an Ed25519 key's public key always, its private key never."""
    view: dict[str, Any] = {"id": str(secret.id), "label": secret.label}
    if secret.type is SecretType.ED25519:
        view["public_key"] = secret.public_key
    elif plain:
        view["plain_secret"] = secret.secret
    view |= {
        "type": secret.type,
        "key_prefix": secret.key_prefix,
        "is_current": secret.is_current,
        "disabled_at": isoformat(secret.disabled_at),
        "last_used_at": isoformat(secret.last_used_at),
        "created_at": isoformat(secret.created_at),
        "updated_at": isoformat(secret.updated_at),
    }
    return view
