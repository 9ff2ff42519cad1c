"""Run and delivery states: the transition tables, the terminal set, the events map."""

from __future__ import annotations

from itertools import product

import pytest

from runback.core.states import (
    CALLBACK_EVENTS,
    IN_FLIGHT_DELIVERY_STATUSES,
    TERMINAL_RUN_STATUSES,
    DeliveryStatus,
    RunStatus,
    check_delivery_transition,
    check_run_transition,
)
from runback.errors import InvalidTransitionError, RunbackError

R = RunStatus
D = DeliveryStatus

ALLOWED_RUN_TRANSITIONS = [
    (R.QUEUED, R.DISPATCHING),  # an executor claims it
    (R.QUEUED, R.CANCELED),  # cancelled before anyone took it
    (R.DISPATCHING, R.QUEUED),  # handed back at shutdown
    (R.DISPATCHING, R.RUNNING),  # the model starts
    (R.DISPATCHING, R.CANCELED),  # cancelled while being handed over
    (R.DISPATCHING, R.FAILED),  # could not start (unknown model, crash)
    (R.RUNNING, R.QUEUED),  # crash recovery, while executions remain
    (R.RUNNING, R.SUCCEEDED),  # the model finished
    (R.RUNNING, R.FAILED),  # the model failed
    (R.RUNNING, R.CANCELED),  # cancelled mid-run
    (R.RUNNING, R.PARTIAL_SUCCEEDED),  # some outputs landed
]

ALLOWED_DELIVERY_TRANSITIONS = [
    (D.PENDING, D.DELIVERING),  # claimed for an attempt
    (D.PENDING, D.FAILED),  # ended without an attempt
    (D.DELIVERING, D.PENDING),  # attempt failed, a retry is scheduled
    (D.DELIVERING, D.SUCCEEDED),  # the receiver answered 2xx
    (D.DELIVERING, D.FAILED),  # gone, blocked or exhausted
]


@pytest.mark.parametrize(("source", "target"), ALLOWED_RUN_TRANSITIONS)
def test_allowed_run_transitions_pass(source: RunStatus, target: RunStatus) -> None:
    check_run_transition(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (R.QUEUED, R.RUNNING),  # must be dispatched first
        (R.QUEUED, R.SUCCEEDED),  # cannot finish without running
        (R.DISPATCHING, R.SUCCEEDED),  # cannot succeed before the model started
        (R.RUNNING, R.DISPATCHING),  # goes back to the queue, not to dispatching
        (R.RUNNING, R.RUNNING),  # no self-transition
        (R.SUCCEEDED, R.FAILED),  # terminal states are final...
        (R.FAILED, R.QUEUED),  # ...no retry of a failed run
        (R.CANCELED, R.RUNNING),  # ...a cancelled run stays cancelled
        (R.CANCELED, R.CANCELED),  # ...cancelling twice is not a transition
        (R.PARTIAL_SUCCEEDED, R.SUCCEEDED),  # ...and partial stays partial
    ],
)
def test_refused_run_transitions_raise(source: RunStatus, target: RunStatus) -> None:
    with pytest.raises(InvalidTransitionError):
        check_run_transition(source, target)


# Every pair of run statuses the table above does not list.
REFUSED_RUN_PAIRS = [
    pair for pair in product(RunStatus, RunStatus) if pair not in ALLOWED_RUN_TRANSITIONS
]


@pytest.mark.parametrize(("source", "target"), REFUSED_RUN_PAIRS)
def test_every_run_transition_outside_the_table_is_refused(
    source: RunStatus, target: RunStatus
) -> None:
    with pytest.raises(InvalidTransitionError):
        check_run_transition(source, target)


@pytest.mark.parametrize(("source", "target"), ALLOWED_DELIVERY_TRANSITIONS)
def test_allowed_delivery_transitions_pass(source: DeliveryStatus, target: DeliveryStatus) -> None:
    check_delivery_transition(source, target)


# Every pair of delivery statuses the table above does not list.
REFUSED_DELIVERY_PAIRS = [
    pair
    for pair in product(DeliveryStatus, DeliveryStatus)
    if pair not in ALLOWED_DELIVERY_TRANSITIONS
]


@pytest.mark.parametrize(("source", "target"), REFUSED_DELIVERY_PAIRS)
def test_every_delivery_transition_outside_the_table_is_refused(
    source: DeliveryStatus, target: DeliveryStatus
) -> None:
    with pytest.raises(InvalidTransitionError):
        check_delivery_transition(source, target)


def test_invalid_transition_names_both_states() -> None:
    with pytest.raises(InvalidTransitionError, match="succeeded to running"):
        check_run_transition(R.SUCCEEDED, R.RUNNING)


def test_invalid_transition_belongs_to_the_error_tree() -> None:
    assert issubclass(InvalidTransitionError, RunbackError)


def test_run_status_literals_are_the_contracts() -> None:
    assert [s.value for s in RunStatus] == [
        "queued",
        "dispatching",
        "running",
        "succeeded",
        "failed",
        "canceled",
        "partial_succeeded",
    ]


def test_terminal_run_statuses() -> None:
    assert {R.SUCCEEDED, R.FAILED, R.CANCELED, R.PARTIAL_SUCCEEDED} == TERMINAL_RUN_STATUSES


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        (R.QUEUED, False),  # waiting for an executor
        (R.DISPATCHING, False),  # being handed to an executor
        (R.RUNNING, False),  # the model is working
        (R.SUCCEEDED, True),  # fires run.completed
        (R.FAILED, True),  # fires run.failed
        (R.CANCELED, True),  # fires run.cancelled
        (R.PARTIAL_SUCCEEDED, True),  # fires run.partial_succeeded
    ],
)
def test_is_terminal(status: RunStatus, terminal: bool) -> None:
    assert status.is_terminal is terminal


def test_callback_events_map_each_terminal_status() -> None:
    # UK spelling in the event, US in the status: both literals are stable.
    assert {
        R.SUCCEEDED: "run.completed",
        R.FAILED: "run.failed",
        R.CANCELED: "run.cancelled",
        R.PARTIAL_SUCCEEDED: "run.partial_succeeded",
    } == CALLBACK_EVENTS


def test_delivery_status_literals() -> None:
    assert [s.value for s in DeliveryStatus] == ["pending", "delivering", "succeeded", "failed"]


@pytest.mark.parametrize(
    ("status", "final"),
    [
        (D.PENDING, False),  # waiting for next_attempt_at
        (D.DELIVERING, False),  # an attempt is in flight
        (D.SUCCEEDED, True),  # the receiver took it
        (D.FAILED, True),  # gone, blocked or exhausted
    ],
)
def test_delivery_is_final(status: DeliveryStatus, final: bool) -> None:
    assert status.is_final is final


def test_in_flight_deliveries_are_the_non_final_ones() -> None:
    assert {s for s in DeliveryStatus if not s.is_final} == IN_FLIGHT_DELIVERY_STATUSES
