"""A test ping: its body, its signature, and the failure classes of what came back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

import pytest

from runback.core.delivery import SendError, SendResult
from runback.core.pings import EXCERPT_CHARS, excerpt, new_ping, ping_failure
from runback.core.records import CallbackSecret, SecretType
from runback.core.signing import generate_secret
from runback.core.verification import verify

PING_ID = UUID("0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60")
ORG = UUID("0193b7e4-0000-7000-8000-000000000001")
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _secret(value: str, *, current: bool) -> CallbackSecret:
    return CallbackSecret(
        id=PING_ID, organization_id=ORG, label=None, secret=value, key_prefix=value[:16],
        is_current=current, disabled_at=None, last_used_at=None, created_at=NOW,
        updated_at=NOW, type=SecretType.HMAC, public_key=None,
    )  # fmt: skip


def test_a_ping_is_a_test_ping_event_signed_with_every_active_secret() -> None:
    old, new = generate_secret(), generate_secret()

    ping = new_ping(
        ping_id=PING_ID,
        organization_id=ORG,
        now=NOW,
        secrets=[_secret(new, current=True), _secret(old, current=False)],
    )

    assert json.loads(ping.body) == {
        "event": "test.ping",
        "test_id": str(PING_ID),
        "created_at": "2026-12-06T12:00:00+00:00",
        "organization_id": str(ORG),
    }
    assert ping.body.startswith(b'{"event":"test.ping",')  # compact, as every callback
    assert ping.webhook_id == f"msg_{PING_ID.hex}"
    assert ping.headers["Runflow-Request-Id"] == str(PING_ID)
    for secret in (old, new):
        assert verify(ping.body, ping.headers, [secret], now=NOW).webhook_id == ping.webhook_id
    assert verify(ping.body, {"Runflow-Signature": ping.headers["Runflow-Signature"]}, [new])


@pytest.mark.parametrize(
    ("result", "failure"),
    [
        (SendResult(204, "", 3), None),
        (SendResult(301, "", 3), "redirect"),  # never followed
        (SendResult(404, "", 3), "http_4xx"),
        (SendResult(410, "", 3), "http_4xx"),  # final for a delivery, a 4xx here
        (SendResult(429, "", 3), "http_4xx"),
        (SendResult(503, "", 3), "http_5xx"),
        (SendResult(101, "", 3), "http_other"),
        (SendResult(None, None, 3, SendError.TIMEOUT), "timeout"),
        (SendResult(None, None, 3, SendError.DNS_ERROR), "dns_error"),
        (SendResult(None, None, 3, SendError.TLS_ERROR), "tls_error"),
        (SendResult(None, None, 3, SendError.CONNECTION_ERROR), "connection_error"),
        (SendResult(None, None, 0, SendError.BLOCKED_URL), "blocked_url"),
    ],
)
def test_each_outcome_has_its_failure_class(result: SendResult, failure: str | None) -> None:
    assert ping_failure(result) == failure


def test_an_excerpt_is_bounded() -> None:
    assert excerpt("x" * 5000) == "x" * EXCERPT_CHARS
    assert excerpt(None) is None
