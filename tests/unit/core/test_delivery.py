"""A delivery's life: created from a terminal run, then decided attempt by attempt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from runback.core.delivery import (
    FailureReason,
    NextStep,
    SendError,
    SendResult,
    after_attempt,
    new_delivery,
    retry_after_seconds,
)
from runback.core.payload import run_callback_body
from runback.core.records import Run
from runback.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from runback.core.states import DeliveryStatus
from support.factories import ended_run

NOW = datetime(2026, 5, 6, 10, 2, tzinfo=UTC)
RUN_ID = UUID("0193b7e4-8c1a-7d2e-9f3a-1b2c3d4e5f60")
DELIVERY_ID = UUID("0193b7e4-9000-7000-8000-000000000001")


def make_run(**changes: Any) -> Run:
    """A succeeded run with a callback; ``changes`` replace any field."""
    created = NOW - timedelta(minutes=2)
    fields: dict[str, Any] = {
        "id": RUN_ID,
        "client_ref": "my-own-id",
        "callback_url": "https://receiver.example/hook?token=abc",
        "created_at": created,
        "started_at": created,
        "completed_at": NOW - timedelta(seconds=1),
        "updated_at": NOW - timedelta(seconds=1),
    }
    return ended_run(**(fields | changes))


def half() -> float:
    """A fixed random source: every delay gets half the policy's jitter."""
    return 0.5


def http(status: int) -> SendResult:
    return SendResult(status=status, body="", elapsed_ms=12)


def decide(result: SendResult, attempt_number: int = 1) -> NextStep:
    return after_attempt(
        result, attempt_number=attempt_number, policy=DEFAULT_RETRY_POLICY, now=NOW, random=half
    )


def test_new_delivery_freezes_the_run_callback_body() -> None:
    run = make_run()

    delivery = new_delivery(
        run, delivery_id=DELIVERY_ID, now=NOW, policy=DEFAULT_RETRY_POLICY, is_automatic=True
    )

    assert delivery.payload_bytes == run_callback_body(run)


def test_new_delivery_webhook_id_is_msg_and_the_run_id_hex() -> None:
    delivery = new_delivery(
        make_run(), delivery_id=DELIVERY_ID, now=NOW, policy=DEFAULT_RETRY_POLICY, is_automatic=True
    )

    assert delivery.webhook_id == "msg_0193b7e48c1a7d2e9f3a1b2c3d4e5f60"


def test_a_redelivery_shares_the_webhook_id_of_the_first_delivery() -> None:
    first = new_delivery(
        make_run(), delivery_id=DELIVERY_ID, now=NOW, policy=DEFAULT_RETRY_POLICY, is_automatic=True
    )
    again = new_delivery(
        make_run(output='{"outputs":["fresh"]}'),
        delivery_id=UUID(int=2),
        now=NOW + timedelta(days=1),
        policy=DEFAULT_RETRY_POLICY,
        is_automatic=False,
    )

    assert again.webhook_id == first.webhook_id


def test_new_delivery_is_pending_and_due_at_once() -> None:
    delivery = new_delivery(
        make_run(),
        delivery_id=DELIVERY_ID,
        now=NOW,
        policy=DEFAULT_RETRY_POLICY,
        is_automatic=False,
    )

    assert (
        delivery.status,
        delivery.attempt_count,
        delivery.next_attempt_at,
        delivery.created_at,
        delivery.completed_at,
        delivery.is_automatic,
        delivery.max_attempts,
    ) == (DeliveryStatus.PENDING, 0, NOW, NOW, None, False, 15)


def test_new_delivery_keeps_the_callback_url_verbatim() -> None:
    delivery = new_delivery(
        make_run(), delivery_id=DELIVERY_ID, now=NOW, policy=DEFAULT_RETRY_POLICY, is_automatic=True
    )

    assert delivery.callback_url == "https://receiver.example/hook?token=abc"


def test_new_delivery_needs_a_callback_url() -> None:
    with pytest.raises(ValueError, match="no callback_url"):
        new_delivery(
            make_run(callback_url=None),
            delivery_id=DELIVERY_ID,
            now=NOW,
            policy=DEFAULT_RETRY_POLICY,
            is_automatic=True,
        )


@pytest.mark.parametrize(
    "status",
    [
        200,  # OK
        201,  # Created
        204,  # No Content
        299,  # the top of the 2xx band
    ],
)
def test_any_2xx_succeeds(status: int) -> None:
    assert decide(http(status)) == NextStep(DeliveryStatus.SUCCEEDED, None, None, None)


@pytest.mark.parametrize(
    ("result", "reason", "detail"),
    [
        (http(301), FailureReason.HTTP_3XX, "receiver answered HTTP 301"),  # never followed
        (http(302), FailureReason.HTTP_3XX, "receiver answered HTTP 302"),  # never followed
        (http(400), FailureReason.HTTP_4XX, "receiver answered HTTP 400"),  # bad request
        (http(401), FailureReason.HTTP_4XX, "receiver answered HTTP 401"),  # signature refused
        (http(404), FailureReason.HTTP_4XX, "receiver answered HTTP 404"),  # maybe not deployed
        (http(429), FailureReason.RATE_LIMITED, "receiver answered HTTP 429"),  # rate limited
        (http(500), FailureReason.HTTP_5XX, "receiver answered HTTP 500"),  # receiver crashed
        (http(503), FailureReason.HTTP_5XX, "receiver answered HTTP 503"),  # receiver restarting
        (http(101), FailureReason.HTTP_OTHER, "receiver answered HTTP 101"),  # outside any band
        (
            SendResult(None, None, 10_000, SendError.TIMEOUT, "no answer within 10 s"),
            FailureReason.TIMEOUT,
            "no answer within 10 s",
        ),  # the receiver was too slow
        (
            SendResult(None, None, 3, SendError.CONNECTION_ERROR, "connection refused"),
            FailureReason.CONNECTION_ERROR,
            "connection refused",
        ),  # the receiver is down
        (
            SendResult(None, None, 3, SendError.CONNECTION_ERROR),
            FailureReason.CONNECTION_ERROR,
            "connection_error",
        ),  # no message: the code stands in
    ],
)
def test_failed_attempts_are_retried_after_the_policy_delay(
    result: SendResult, reason: FailureReason, detail: str
) -> None:
    # After attempt 3 the base delay is 1 s; the fixed random adds half of 20 %.
    step = decide(result, attempt_number=3)

    assert step == NextStep(DeliveryStatus.PENDING, NOW + timedelta(seconds=1.1), reason, detail)


@pytest.mark.parametrize(
    ("attempt_number", "delay"),
    [
        (1, timedelta(seconds=0.275)),  # 250 ms + 10 %
        (7, timedelta(seconds=8.8)),  # the capped 8 s + 10 %
        (8, timedelta(seconds=66)),  # the long tail's minute + 10 %
        (14, timedelta(hours=26.4)),  # the last retry: a day + 10 %
    ],
)
def test_next_attempt_is_due_now_plus_the_jittered_delay(
    attempt_number: int, delay: timedelta
) -> None:
    step = decide(http(500), attempt_number=attempt_number)

    assert step.next_attempt_at == NOW + delay


def test_410_gone_fails_at_once() -> None:
    step = decide(http(410), attempt_number=1)

    assert step == NextStep(
        DeliveryStatus.FAILED, None, FailureReason.GONE, "receiver answered HTTP 410"
    )


def test_blocked_url_fails_at_once() -> None:
    result = SendResult(None, None, 0, SendError.BLOCKED_URL, "host 10.0.0.1 is a private address")

    step = decide(result, attempt_number=1)

    assert step == NextStep(
        DeliveryStatus.FAILED, None, FailureReason.BLOCKED_URL, "host 10.0.0.1 is a private address"
    )


def test_last_attempt_failing_exhausts_the_delivery() -> None:
    step = decide(http(503), attempt_number=15)

    assert step == NextStep(
        DeliveryStatus.FAILED,
        None,
        FailureReason.EXHAUSTED,
        "15 attempts failed; the last: receiver answered HTTP 503",
    )


def test_exhaustion_follows_the_delivery_policy_not_the_default() -> None:
    short = RetryPolicy(delays=(1.0, 2.0))

    step = after_attempt(
        SendResult(None, None, 5, SendError.TIMEOUT, "timed out"),
        attempt_number=3,
        policy=short,
        now=NOW,
        random=half,
    )

    assert (step.status, step.failure_reason_code, step.failure_detail) == (
        DeliveryStatus.FAILED,
        FailureReason.EXHAUSTED,
        "3 attempts failed; the last: timed out",
    )


class TestRetryAfter:
    """A 429 is retried no sooner than the receiver asks, and no later than the policy's
    longest delay."""

    POLICY = RetryPolicy(delays=(0.25, 0.5, 60.0), jitter=0.0)

    @pytest.mark.parametrize(
        ("retry_after", "expected"),
        [
            (None, 0.25),  # no wish: the policy's delay
            (5.0, 5.0),  # the receiver's wish, longer than the policy's delay
            (0.1, 0.25),  # shorter than the policy's delay: the policy wins
            (3600.0, 60.0),  # capped at the policy's longest delay
        ],
    )
    def test_the_next_attempt_waits_for_the_receivers_wish_within_the_policy(
        self, retry_after: float | None, expected: float
    ) -> None:
        result = SendResult(429, "", 1, retry_after=retry_after)

        step = after_attempt(
            result, attempt_number=1, policy=self.POLICY, now=NOW, random=lambda: 0.0
        )

        assert step.failure_reason_code is FailureReason.RATE_LIMITED
        assert step.next_attempt_at == NOW + timedelta(seconds=expected)

    @pytest.mark.parametrize(
        ("header", "seconds"),
        [
            ("120", 120.0),  # delay-seconds
            ("Wed, 06 May 2026 10:03:00 GMT", 60.0),  # an HTTP date a minute after NOW
            ("Wed, 06 May 2026 09:00:00 GMT", 0.0),  # a date already past: at once
            ("soon", None),  # unreadable: ignored
            ("-5", None),  # not delay-seconds
            ("9" * 40, None),  # absurdly large: ignored
            (None, None),  # absent
        ],
    )
    def test_a_retry_after_header_is_read_as_seconds(
        self, header: str | None, seconds: float | None
    ) -> None:
        assert retry_after_seconds(header, now=NOW) == seconds
