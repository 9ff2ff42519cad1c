"""A delivery's life: created from a terminal run, then attempt by attempt until it ends.

An attempt succeeds on any ``2xx`` within the timeout. Everything else is a failed attempt and
is retried by the delivery's policy, with two exceptions runback decides: ``410 Gone`` (the
receiver says the endpoint is gone for good) and a URL the policy now refuses end the delivery
at once. A redirect is a failure: runback never follows one, so a ``3xx`` is retried like a
``5xx``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from uuid import UUID

from runback.core.destinations import destination_of
from runback.core.ids import webhook_id
from runback.core.payload import run_callback_body
from runback.core.records import (
    TERMINAL_EVENT,
    Batch,
    CallbackSecret,
    Delivery,
    JsonText,
    Run,
    SecretType,
)
from runback.core.retry import Random, RetryPolicy
from runback.core.signing import signature_headers
from runback.core.states import DeliveryStatus

RESPONSE_BODY_LIMIT = 4096
"""Bytes of a receiver's answer kept on its attempt record."""


class SendError(StrEnum):
    """Why an attempt got no HTTP answer."""

    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"  # refused, reset, unreachable
    DNS_ERROR = "dns_error"  # the host name does not resolve
    TLS_ERROR = "tls_error"  # handshake or certificate failure
    BLOCKED_URL = "blocked_url"  # refused by the URL policy, before or at connect time


class FailureReason(StrEnum):
    """A delivery's ``failure_reason_code`` (also each failed attempt's)."""

    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    DNS_ERROR = "dns_error"
    TLS_ERROR = "tls_error"
    HTTP_3XX = "http_3xx"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    HTTP_OTHER = "http_other"
    RATE_LIMITED = "rate_limited"  # 429: retried, no sooner than its Retry-After
    GONE = "gone"  # 410: final
    BLOCKED_URL = "blocked_url"  # final
    EXHAUSTED = "exhausted"  # final: every attempt of the policy failed
    RELEASED = "released"  # final: an operator gave up an ordered URL's stuck head


_FINAL_REASONS = frozenset({FailureReason.GONE, FailureReason.BLOCKED_URL})


def new_delivery(
    run: Run,
    *,
    delivery_id: UUID,
    now: datetime,
    policy: RetryPolicy,
    is_automatic: bool,
    output: JsonText | None = None,
    body: bytes | None = None,
) -> Delivery:
    """A pending delivery of ``run``'s callback, its body frozen now, due at once;
    ``output`` replaces the run's stored output (see ``run_callback_body``), and ``body``
    the whole body (a front door's own shape)."""
    if run.callback_url is None:
        raise ValueError(f"run {run.id} has no callback_url")
    return pending_delivery(
        organization_id=run.organization_id,
        run_id=run.id,
        callback_url=run.callback_url,
        webhook_id=webhook_id(run.id),
        body=body if body is not None else run_callback_body(run, output=output),
        delivery_id=delivery_id,
        now=now,
        policy=policy,
        is_automatic=is_automatic,
    )


def new_event_delivery(
    run: Run,
    *,
    event_key: str,
    webhook_id: str,
    body: bytes,
    delivery_id: UUID,
    now: datetime,
    policy: RetryPolicy,
    is_automatic: bool,
) -> Delivery:
    """A pending delivery of one of ``run``'s other events (a result, a progress event):
    an event of its own, with its own ``webhook-id``."""
    if run.callback_url is None:
        raise ValueError(f"run {run.id} has no callback_url")
    return pending_delivery(
        organization_id=run.organization_id,
        run_id=run.id,
        callback_url=run.callback_url,
        webhook_id=webhook_id,
        body=body,
        delivery_id=delivery_id,
        now=now,
        policy=policy,
        is_automatic=is_automatic,
        event_key=event_key,
    )


def new_batch_delivery(
    batch: Batch,
    *,
    body: bytes,
    delivery_id: UUID,
    now: datetime,
    policy: RetryPolicy,
    is_automatic: bool,
) -> Delivery:
    """A pending delivery of ``batch``'s callback (``batch_callback_body``), due at once."""
    if batch.callback_url is None:
        raise ValueError(f"batch {batch.id} has no callback_url")
    return pending_delivery(
        organization_id=batch.organization_id,
        batch_id=batch.id,
        callback_url=batch.callback_url,
        webhook_id=webhook_id(batch.id),
        body=body,
        delivery_id=delivery_id,
        now=now,
        policy=policy,
        is_automatic=is_automatic,
    )


def pending_delivery(
    *,
    organization_id: UUID,
    callback_url: str,
    webhook_id: str,
    body: bytes,
    delivery_id: UUID,
    now: datetime,
    policy: RetryPolicy,
    is_automatic: bool,
    run_id: UUID | None = None,
    batch_id: UUID | None = None,
    event_key: str = TERMINAL_EVENT,
) -> Delivery:
    """A delivery of one event's frozen ``body``, pending and due at once."""
    return Delivery(
        id=delivery_id,
        organization_id=organization_id,
        run_id=run_id,
        batch_id=batch_id,
        callback_url=callback_url,
        webhook_id=webhook_id,
        payload_bytes=body,
        is_automatic=is_automatic,
        status=DeliveryStatus.PENDING,
        failure_reason_code=None,
        failure_detail=None,
        attempt_count=0,
        retry_policy=policy,
        next_attempt_at=now,
        signing_secret_id=None,
        created_at=now,
        updated_at=now,
        completed_at=None,
        destination=destination_of(callback_url),
        event_key=event_key,
    )


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one attempt got back: a status and body, or an error without a status."""

    status: int | None
    body: str | None
    elapsed_ms: int
    error: SendError | None = None
    error_message: str | None = None
    retry_after: float | None = None
    """Seconds the receiver asked to wait (``Retry-After`` of a 429 or 503)."""

    @property
    def failure_reason(self) -> FailureReason | None:
        """Why this attempt failed; None when it succeeded."""
        if self.error is not None:
            return FailureReason(self.error.value)
        status = self.status or 0
        if 200 <= status < 300:
            return None
        if status == 410:
            return FailureReason.GONE
        if status == 429:
            return FailureReason.RATE_LIMITED
        bands = {3: FailureReason.HTTP_3XX, 4: FailureReason.HTTP_4XX, 5: FailureReason.HTTP_5XX}
        return bands.get(status // 100, FailureReason.HTTP_OTHER)

    def describe(self) -> str | None:
        """A one-line account of a failed attempt, for ``error_message``/``failure_detail``."""
        if self.error is not None:
            return self.error_message or self.error.value
        if self.failure_reason is None:
            return None
        return f"receiver answered HTTP {self.status}"


@dataclass(frozen=True, slots=True)
class NextStep:
    """The delivery's state after an attempt."""

    status: DeliveryStatus
    next_attempt_at: datetime | None
    failure_reason_code: FailureReason | None
    failure_detail: str | None


def attempt_headers(
    *,
    body: bytes,
    webhook_id: str,
    delivery_id: UUID | str,
    timestamp: int,
    current: str | None,
    active: Sequence[str],
) -> dict[str, str]:
    """Every header of one callback attempt: both signature schemes, the JSON content type
    and ``Runflow-Request-Id`` (the delivery's id, for a receiver to quote)."""
    headers = signature_headers(
        body=body, msg_id=webhook_id, timestamp=timestamp, current=current, active=active
    )
    headers["Content-Type"] = "application/json"
    headers["Runflow-Request-Id"] = str(delivery_id)
    return headers


def current_hmac(secrets: Sequence[CallbackSecret]) -> CallbackSecret | None:
    """The secret that makes ``Runflow-Signature`` (HMAC only: an Ed25519 key may be
    current too, among its own kind)."""
    return next((s for s in secrets if s.is_current and s.type is SecretType.HMAC), None)


def delivery_headers(
    delivery: Delivery, secrets: Sequence[CallbackSecret], *, timestamp: int
) -> dict[str, str]:
    """The headers of an attempt of ``delivery`` at ``timestamp``, signed with ``secrets``
    (its organization's active ones) as the dispatcher signs them."""
    current = current_hmac(secrets)
    return attempt_headers(
        body=delivery.payload_bytes,
        webhook_id=delivery.webhook_id,
        delivery_id=delivery.id,
        timestamp=timestamp,
        current=None if current is None else current.secret,
        active=[secret.secret for secret in secrets],
    )


def after_attempt(
    result: SendResult,
    *,
    attempt_number: int,
    policy: RetryPolicy,
    now: datetime,
    random: Random,
) -> NextStep:
    """Decide what a delivery does after attempt ``attempt_number`` ended with ``result``."""
    reason = result.failure_reason
    if reason is None:
        return NextStep(DeliveryStatus.SUCCEEDED, None, None, None)
    detail = result.describe()
    if reason in _FINAL_REASONS:
        return NextStep(DeliveryStatus.FAILED, None, reason, detail)
    delay = policy.delay_after(attempt_number, random)
    if delay is None:
        summary = f"{attempt_number} attempts failed; the last: {detail}"
        return NextStep(DeliveryStatus.FAILED, None, FailureReason.EXHAUSTED, summary)
    if result.retry_after is not None:
        # Honour the receiver's wish, but never past the policy's longest delay.
        delay = max(delay, min(result.retry_after, max(policy.delays)))
    return NextStep(DeliveryStatus.PENDING, now + timedelta(seconds=delay), reason, detail)


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """A ``Retry-After`` header as seconds from ``now``: delay-seconds or an HTTP date;
    None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit() and len(text) <= 9:
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)
