"""A test ping: a signed sample event sent now, so a developer sees what their receiver does.

``POST /v1/callback-tests`` sends one: the body of event ``test.ping``, its own
``webhook-id``, signed with the organization's active secrets exactly as a callback
(``attempt_headers``), through the same URL policy and sender. It is not a delivery: it is
never retried nor recorded, and it counts towards no breaker. What came back is told as one
of the classes of ``PingFailure`` (or none), the answer's status, latency and first bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final
from uuid import UUID

from runback.core.clock import isoformat
from runback.core.delivery import FailureReason, SendResult, attempt_headers, current_hmac
from runback.core.ids import webhook_id
from runback.core.payload import dumps
from runback.core.records import CallbackSecret

PING_EVENT: Final = "test.ping"
EXCERPT_CHARS: Final = 1024
"""Characters of the receiver's answer shown back."""


class PingFailure(StrEnum):
    """Why a test ping failed, in the classes a developer acts on."""

    DNS_ERROR = "dns_error"
    TLS_ERROR = "tls_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    REDIRECT = "redirect"  # any 3xx: callbacks never follow one
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    HTTP_OTHER = "http_other"  # a 1xx, or a status outside 100-599
    BLOCKED_URL = "blocked_url"  # the name resolved to an address the URL policy refuses


_FAILURES: Final = {
    FailureReason.DNS_ERROR: PingFailure.DNS_ERROR,
    FailureReason.TLS_ERROR: PingFailure.TLS_ERROR,
    FailureReason.TIMEOUT: PingFailure.TIMEOUT,
    FailureReason.CONNECTION_ERROR: PingFailure.CONNECTION_ERROR,
    FailureReason.HTTP_3XX: PingFailure.REDIRECT,
    FailureReason.HTTP_4XX: PingFailure.HTTP_4XX,
    FailureReason.GONE: PingFailure.HTTP_4XX,
    FailureReason.RATE_LIMITED: PingFailure.HTTP_4XX,
    FailureReason.HTTP_5XX: PingFailure.HTTP_5XX,
    FailureReason.HTTP_OTHER: PingFailure.HTTP_OTHER,
    FailureReason.BLOCKED_URL: PingFailure.BLOCKED_URL,
}


@dataclass(frozen=True, slots=True)
class Ping:
    """One test ping, ready to send."""

    id: UUID
    webhook_id: str
    body: bytes
    headers: dict[str, str]


def new_ping(
    *, ping_id: UUID, organization_id: UUID, now: datetime, secrets: Sequence[CallbackSecret]
) -> Ping:
    """A ``test.ping`` of ``organization_id``, signed with its active ``secrets`` (the
    current first, as the store reads them) as a callback attempt is."""
    body = dumps(
        {
            "event": PING_EVENT,
            "test_id": str(ping_id),
            "created_at": isoformat(now),
            "organization_id": str(organization_id),
        }
    ).encode()
    msg_id = webhook_id(ping_id)
    current = current_hmac(secrets)
    headers = attempt_headers(
        body=body,
        webhook_id=msg_id,
        delivery_id=ping_id,
        timestamp=int(now.timestamp()),
        current=current.secret if current else None,
        active=[s.secret for s in secrets],
    )
    return Ping(ping_id, msg_id, body, headers)


def ping_failure(result: SendResult) -> PingFailure | None:
    """The class of a ping's failure; None when the receiver answered ``2xx``."""
    reason = result.failure_reason
    return None if reason is None else _FAILURES[reason]


def excerpt(text: str | None) -> str | None:
    """The first ``EXCERPT_CHARS`` of a receiver's answer."""
    return None if text is None else text[:EXCERPT_CHARS]
