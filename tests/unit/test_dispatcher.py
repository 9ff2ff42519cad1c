"""The dispatcher: attempts signed at send time, recorded, retried on the delivery's policy."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest

from runback.core.delivery import SendError, SendResult
from runback.core.records import CallbackSecret
from runback.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from runback.core.signing import new_callback_secret, runflow_signature
from runback.core.states import DeliveryStatus
from runback.store import Store
from runback.testing import ManualClock, respond
from support.harness import Harness, make_harness


async def _finished_run_with_delivery(h: Harness, **fields: object) -> None:
    await h.submit(**fields)
    await h.executor.run_until_idle()


async def _add_secret(h: Harness, label: str) -> CallbackSecret:
    made = new_callback_secret(h.organization_id, label=label, now=h.clock.now())
    return await h.store.secrets.create(made)


async def test_a_delivery_to_a_healthy_receiver_succeeds_in_one_attempt(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    run = await h.submit()
    await h.executor.run_until_idle()

    assert await h.dispatcher.deliver_due() == 1

    delivery, [attempt] = await h.only_delivery(run.id)
    assert delivery.status is DeliveryStatus.SUCCEEDED
    assert (delivery.attempt_count, delivery.completed_at) == (1, clock.now())
    assert delivery.next_attempt_at is None
    assert (attempt.attempt_number, attempt.status_code, attempt.error_message) == (1, 200, None)
    [request] = h.sender.requests
    assert request.body == delivery.payload_bytes
    assert request.url == "https://receiver.example/hook"


async def test_every_attempt_carries_the_contract_headers(store: Store, clock: ManualClock) -> None:
    h = await make_harness(store, clock)
    run = await h.submit()
    await h.executor.run_until_idle()

    await h.dispatcher.deliver_due()

    delivery, _ = await h.only_delivery(run.id)
    [request] = h.sender.requests
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Runflow-Request-Id"] == str(delivery.id)
    assert request.headers["webhook-id"] == f"msg_{run.id.hex}"
    assert request.headers["webhook-timestamp"] == str(int(clock.now().timestamp()))


async def test_without_a_secret_the_callback_is_unsigned(store: Store, clock: ManualClock) -> None:
    h = await make_harness(store, clock)
    await _finished_run_with_delivery(h)

    await h.dispatcher.deliver_due()

    [request] = h.sender.requests
    assert "Runflow-Signature" not in request.headers
    assert "webhook-signature" not in request.headers


async def test_the_current_secret_signs_and_is_recorded_on_the_attempt(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    secret = await _add_secret(h, "production")
    run = await h.submit()
    await h.executor.run_until_idle()

    await h.dispatcher.deliver_due()

    [request] = h.sender.requests
    assert request.headers["Runflow-Signature"] == runflow_signature(secret.secret, request.body)
    assert request.headers["webhook-signature"].startswith("v1,")
    delivery, [attempt] = await h.only_delivery(run.id)
    assert attempt.signing_secret_id == delivery.signing_secret_id == secret.id


async def test_a_receiver_failing_three_times_gets_four_attempts_then_success(
    store: Store, clock: ManualClock
) -> None:
    answers = iter(
        [
            respond(500),
            respond(503),
            SendResult(None, None, 5, SendError.TIMEOUT, "no answer"),
            respond(204),
        ]
    )
    h = await make_harness(store, clock, handler=lambda _r: next(answers))
    run = await h.submit()
    await h.executor.run_until_idle()

    for _ in range(4):
        await h.dispatcher.deliver_due()
        delivery, _ = await h.only_delivery(run.id)
        if delivery.next_attempt_at is not None:
            clock.set(delivery.next_attempt_at)

    delivery, attempts = await h.only_delivery(run.id)
    assert delivery.status is DeliveryStatus.SUCCEEDED
    assert [a.status_code for a in attempts] == [500, 503, None, 204]
    assert [a.failure_reason_code for a in attempts] == ["http_5xx", "http_5xx", "timeout", None]
    assert attempts[2].error_message == "no answer"
    assert len({request.body for request in h.sender.requests}) == 1


async def test_retries_are_scheduled_exactly_as_the_default_policy_says(
    store: Store, clock: ManualClock
) -> None:
    # random() = 0.5 puts every delay at base * 1.1: the middle of the 0-20 % jitter.
    h = await make_harness(
        store, clock, handler=lambda _r: respond(500), policy=DEFAULT_RETRY_POLICY
    )
    run = await h.submit()
    await h.executor.run_until_idle()

    scheduled: list[timedelta] = []
    while True:
        assert await h.dispatcher.deliver_due() == 1
        delivery, _ = await h.only_delivery(run.id)
        if delivery.next_attempt_at is None:
            break
        scheduled.append(delivery.next_attempt_at - clock.now())
        clock.set(delivery.next_attempt_at)

    expected = [timedelta(seconds=d * 1.1) for d in DEFAULT_RETRY_POLICY.delays]
    assert scheduled == expected
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.failure_reason_code == "exhausted"
    assert delivery.attempt_count == 15


async def test_a_delivery_is_not_attempted_before_it_is_due(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock, handler=lambda _r: respond(500))
    run = await h.submit()
    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()
    delivery, _ = await h.only_delivery(run.id)
    assert delivery.next_attempt_at is not None

    clock.set(delivery.next_attempt_at - timedelta(microseconds=1))
    assert await h.dispatcher.deliver_due() == 0
    clock.set(delivery.next_attempt_at)
    assert await h.dispatcher.deliver_due() == 1


async def test_a_receiver_that_never_succeeds_exhausts_a_short_policy(
    store: Store, clock: ManualClock
) -> None:
    policy = RetryPolicy(delays=(0.1, 0.1), jitter=0.0)
    h = await make_harness(store, clock, handler=lambda _r: respond(502), policy=policy)
    run = await h.submit()
    await h.executor.run_until_idle()

    for _ in range(3):
        clock.advance(0.1)
        await h.dispatcher.deliver_due()

    delivery, attempts = await h.only_delivery(run.id)
    assert (delivery.status, delivery.failure_reason_code) == (DeliveryStatus.FAILED, "exhausted")
    assert delivery.failure_detail == "3 attempts failed; the last: receiver answered HTTP 502"
    assert len(attempts) == delivery.max_attempts == 3


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (respond(410), "gone"),  # the receiver says the endpoint is gone for good
    ],
)
async def test_some_answers_end_the_delivery_at_once(
    store: Store, clock: ManualClock, answer: SendResult, reason: str
) -> None:
    h = await make_harness(store, clock, handler=lambda _r: answer)
    run = await h.submit()
    await h.executor.run_until_idle()

    await h.dispatcher.deliver_due()

    delivery, [_] = await h.only_delivery(run.id)
    assert (delivery.status, delivery.failure_reason_code) == (DeliveryStatus.FAILED, reason)


async def test_a_url_the_policy_refuses_at_send_time_fails_without_a_request(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)  # nothing internal is allowed
    run = await h.submit(callback_url="http://127.0.0.1:9/hook")
    await h.executor.run_until_idle()

    await h.dispatcher.deliver_due()

    delivery, [attempt] = await h.only_delivery(run.id)
    assert (delivery.status, delivery.failure_reason_code) == (
        DeliveryStatus.FAILED,
        "blocked_url",
    )
    assert "loopback" in (attempt.error_message or "")
    assert h.sender.requests == []


async def test_a_url_that_can_never_work_fails_at_once_and_is_recorded(
    store: Store, clock: ManualClock
) -> None:
    # Stored before the policy normalised hosts: it must not enter the 45-hour ladder.
    h = await make_harness(store, clock)
    run = await h.submit(callback_url="http://\uff11\uff12\uff17.0.0.1/hook")
    await h.executor.run_until_idle()

    await h.dispatcher.deliver_due()

    delivery, [attempt] = await h.only_delivery(run.id)
    assert (delivery.status, delivery.failure_reason_code) == (DeliveryStatus.FAILED, "blocked_url")
    assert delivery.next_attempt_at is None
    assert "127.0.0.1" in (attempt.error_message or "")
    assert h.sender.requests == []


async def test_the_callback_url_query_string_is_passed_on_unchanged(
    store: Store, clock: ManualClock
) -> None:
    url = "https://receiver.example/hook?token=a%2Fb&x=%7E&y=a+b"
    h = await make_harness(store, clock)
    await h.submit(callback_url=url)
    await h.executor.run_until_idle()

    await h.dispatcher.deliver_due()

    [request] = h.sender.requests
    assert request.url == url


async def test_in_flight_deliveries_are_handed_back_after_a_restart(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    run = await h.submit()
    await h.executor.run_until_idle()
    await store.deliveries.claim_due(
        worker="dead", limit=10, now=clock.now(), lease_until=clock.now()
    )
    assert await h.dispatcher.deliver_due() == 0

    assert await store.deliveries.release_all(now=clock.now()) == 1

    assert await h.dispatcher.deliver_due() == 1
    delivery, _ = await h.only_delivery(run.id)
    assert delivery.status is DeliveryStatus.SUCCEEDED


async def test_the_payload_names_the_run_and_its_final_status(
    store: Store, clock: ManualClock
) -> None:
    h = await make_harness(store, clock)
    run = await h.submit(input={"x": "é"})
    await h.executor.run_until_idle()

    await h.dispatcher.deliver_due()

    [request] = h.sender.requests
    body = orjson.loads(request.body)
    assert (body["event"], body["run_id"], body["status"]) == (
        "run.completed",
        str(run.id),
        "succeeded",
    )
    assert body["output"] == {"x": "é"}


async def test_a_round_that_claims_signs_and_plans_its_sleep_is_one_transaction(
    store: Store, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await make_harness(store, clock)
    await _add_secret(h, "current")
    await _finished_run_with_delivery(h)
    await _finished_run_with_delivery(h)
    opened: list[str] = []
    for kind in ("read", "write"):
        begin = getattr(store.database, kind)

        def counted(begin: Any = begin, kind: str = kind) -> Any:
            opened.append(kind)
            return begin()

        monkeypatch.setattr(store.database, kind, counted)

    started, due = await h.dispatcher._start_due()

    # The breakers, the claim, the secrets to sign with and the next due time: one.
    assert (started, opened) == (2, ["write"])
    assert due is None  # both claimed: nothing else is pending
    await h.dispatcher.deliver_due()
