"""Retry schedules as data: the default policy, jitter bounds, and the JSON form."""

from __future__ import annotations

import json
import math

import pytest

from runback.core.inbox import COPY_RETRY, HANDLER_RETRY
from runback.core.retry import DEFAULT_RETRY_POLICY, RUNWARE_LADDER, RetryPolicy, doubling
from runback.errors import ConfigError

HOUR = 3600.0
# The largest float below 1: what random.random() can return at most.
ALMOST_ONE = math.nextafter(1.0, 0.0)


def always_zero() -> float:
    return 0.0


def almost_one() -> float:
    return ALMOST_ONE


def test_default_policy_makes_15_attempts() -> None:
    assert DEFAULT_RETRY_POLICY.max_attempts == 15


def test_default_policy_is_the_runware_ladder_then_a_long_tail() -> None:
    assert DEFAULT_RETRY_POLICY.delays == (
        *(0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0),
        *(60.0, 300.0, 1800.0, 7200.0, 21600.0, 43200.0, 86400.0),
    )


def test_runware_ladder_is_the_published_schedule() -> None:
    assert RUNWARE_LADDER == (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0)


def test_default_jitter_is_up_to_20_percent() -> None:
    assert DEFAULT_RETRY_POLICY.jitter == 0.2


# Attempt n failed: the base delay before attempt n + 1.
BASE_DELAYS = [
    (1, 0.25),  # Runware's first retry
    (2, 0.5),
    (3, 1.0),
    (4, 2.0),
    (5, 4.0),
    (6, 8.0),  # the ladder's cap...
    (7, 8.0),  # ...held once more
    (8, 60.0),  # the long tail begins: a minute
    (9, 300.0),
    (10, 1800.0),
    (11, 7200.0),
    (12, 21600.0),
    (13, 43200.0),
    (14, 86400.0),  # the last retry, a day later
]


@pytest.mark.parametrize(("attempt", "base"), BASE_DELAYS)
def test_delay_without_jitter_is_the_base_delay(attempt: int, base: float) -> None:
    assert DEFAULT_RETRY_POLICY.delay_after(attempt, always_zero) == base


@pytest.mark.parametrize(("attempt", "base"), BASE_DELAYS)
def test_delay_with_the_most_jitter_stays_within_20_percent(attempt: int, base: float) -> None:
    delay = DEFAULT_RETRY_POLICY.delay_after(attempt, almost_one)

    assert delay is not None
    assert delay == pytest.approx(base * 1.2)
    assert delay <= base * 1.2


@pytest.mark.parametrize(
    "attempt",
    [
        15,  # the last attempt of the default policy failed
        16,  # past the end (a policy shortened under a running delivery)
    ],
)
def test_no_delay_after_the_last_attempt(attempt: int) -> None:
    assert DEFAULT_RETRY_POLICY.delay_after(attempt, always_zero) is None


def test_default_schedule_spans_about_45_hours_without_jitter() -> None:
    delays = [DEFAULT_RETRY_POLICY.delay_after(n, always_zero) for n in range(1, 15)]

    total = sum(d for d in delays if d is not None)

    assert 44 * HOUR < total < 46 * HOUR


def test_default_schedule_spans_at_most_54_hours_with_the_most_jitter() -> None:
    delays = [DEFAULT_RETRY_POLICY.delay_after(n, almost_one) for n in range(1, 15)]

    total = sum(d for d in delays if d is not None)

    assert 53 * HOUR < total <= 54 * HOUR


def test_zero_jitter_ignores_the_random_source() -> None:
    policy = RetryPolicy(delays=(5.0,), jitter=0.0)

    assert policy.delay_after(1, almost_one) == 5.0


def test_a_policy_without_delays_makes_one_attempt() -> None:
    policy = RetryPolicy(delays=())

    assert (policy.max_attempts, policy.delay_after(1, always_zero)) == (1, None)


@pytest.mark.parametrize(
    "policy",
    [
        DEFAULT_RETRY_POLICY,  # the default, as stored on most deliveries
        RetryPolicy(delays=(1.5, 0.0), jitter=0.0),  # zero delay and zero jitter survive
        RetryPolicy(delays=(), jitter=1.0),  # one attempt only, full jitter
    ],
)
def test_policy_round_trips_through_json(policy: RetryPolicy) -> None:
    stored = json.dumps(policy.to_json())

    assert RetryPolicy.from_json(json.loads(stored)) == policy


def test_from_json_accepts_integers_as_json_writes_them() -> None:
    policy = RetryPolicy.from_json({"delays": [1, 2], "jitter": 0})

    assert policy == RetryPolicy(delays=(1.0, 2.0), jitter=0.0)


@pytest.mark.parametrize(
    ("delays", "jitter"),
    [
        ((1.0, -0.5), 0.2),  # a negative delay
        ((1.0,), 1.5),  # jitter above 100 %
        ((1.0,), -0.1),  # negative jitter
    ],
)
def test_invalid_policy_is_a_config_error(delays: tuple[float, ...], jitter: float) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(delays=delays, jitter=jitter)


@pytest.mark.parametrize(
    ("first", "cap", "count", "expected"),
    [
        (0.25, 8.0, 7, (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0)),  # Runware's ladder
        (1.0, 100.0, 4, (1.0, 2.0, 4.0, 8.0)),  # cap never reached
        (3.0, 2.0, 2, (2.0, 2.0)),  # cap below the first delay
        (1.0, 8.0, 0, ()),  # no delays at all
    ],
)
def test_doubling(first: float, cap: float, count: int, expected: tuple[float, ...]) -> None:
    assert doubling(first, cap=cap, count=count) == expected


def test_a_policy_that_repeats_its_last_delay_never_gives_up() -> None:
    policy = RetryPolicy(delays=(1.0, 5.0), jitter=0.0, repeat_last=True)

    assert [policy.delay_after(n, lambda: 0.0) for n in (1, 2, 3, 50)] == [1.0, 5.0, 5.0, 5.0]


def test_the_receivers_retries_are_policies_like_the_senders() -> None:
    assert isinstance(COPY_RETRY, RetryPolicy)
    assert isinstance(HANDLER_RETRY, RetryPolicy)
    assert HANDLER_RETRY.delay_after(HANDLER_RETRY.max_attempts, lambda: 0.0) is None
    assert COPY_RETRY.delay_after(1_000, lambda: 0.0) == COPY_RETRY.delays[-1]
