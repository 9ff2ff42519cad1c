"""Delivery families: attempts, their latency per destination host, deliveries' ends, and
the circuit breakers.

The dispatcher calls these once per attempt and once per round: each is a few dictionary
look-ups and a counter or histogram update, never a query.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

from runback.core.delivery import FailureReason, NextStep, SendError, SendResult
from runback.core.destinations import BreakerState, Transition
from runback.core.states import DeliveryStatus
from runback.metrics.hosts import HostLabels

ATTEMPTS = Counter("runback_delivery_attempts_total", "Callback attempts, by outcome.", ["outcome"])
FAILED = Counter(
    "runback_deliveries_failed_total", "Deliveries that ended failed, by reason.", ["reason"]
)
DELIVERIES = Counter(
    "runback_deliveries_total",
    "Deliveries that reached their end, by outcome (succeeded, failed).",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "runback_delivery_attempt_duration_seconds",
    "Time from sending an attempt to its answer (or error), by destination host:port.",
    ["host"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TRANSITIONS = Counter(
    "runback_destination_transitions_total",
    "Destinations disabled and recovered.",
    ["transition"],
)
DESTINATIONS = Gauge("runback_destinations", "Troubled destinations, by circuit state.", ["state"])
CIRCUIT = Gauge(
    "runback_destination_circuit_state",
    "Circuit state of each destination host:port with failures on record "
    "(0 closed, 1 half-open, 2 open, 3 disabled).",
    ["host"],
)

CIRCUIT_LEVELS: Mapping[BreakerState, int] = {
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
    BreakerState.DISABLED: 3,
}

hosts = HostLabels()
"""The process's host labels, shared by every host-labelled family."""

_ATTEMPT_OUTCOMES = {reason: ATTEMPTS.labels(outcome=reason.value) for reason in FailureReason}
_SUCCEEDED_ATTEMPT = ATTEMPTS.labels(outcome="succeeded")
_FAILED_REASONS = {reason: FAILED.labels(reason=reason.value) for reason in FailureReason}
_FAILED_UNKNOWN = FAILED.labels(reason="unknown")
_ENDS = {
    status: DELIVERIES.labels(outcome=status.value)
    for status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)  # no pending "outcome"
}
_latency: dict[str, Histogram] = {}
_levels: dict[str, int] = {}
"""The circuit level last shown per host label."""
_last_states: dict[str, BreakerState] = {}

for _state in (BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.DISABLED):
    DESTINATIONS.labels(state=_state.value).set(0)


def attempted(destination: str, result: SendResult, step: NextStep) -> None:
    """An attempt to ``destination`` was recorded; ``step`` is what its delivery does next."""
    reason = result.failure_reason
    (_SUCCEEDED_ATTEMPT if reason is None else _ATTEMPT_OUTCOMES[reason]).inc()
    if result.error is not SendError.BLOCKED_URL:  # nothing went on the wire
        label = hosts(destination)
        child = _latency.get(label)
        if child is None:
            child = _latency[label] = ATTEMPT_SECONDS.labels(host=label)
        child.observe(result.elapsed_ms / 1000)
    if step.status is DeliveryStatus.SUCCEEDED:
        _ENDS[DeliveryStatus.SUCCEEDED].inc()
    elif step.status is DeliveryStatus.FAILED:
        delivery_failed(step.failure_reason_code)


def attempt_refused() -> None:
    """An attempt whose worker had lost the delivery's claim: logged, not counted."""
    ATTEMPTS.labels(outcome="refused").inc()


def delivery_failed(reason: FailureReason | None) -> None:
    """A delivery ended failed, for ``reason``."""
    _ENDS[DeliveryStatus.FAILED].inc()
    (_FAILED_REASONS[reason] if reason else _FAILED_UNKNOWN).inc()


def destination_transition(transition: Transition) -> None:
    TRANSITIONS.labels(transition=transition.value).inc()


def observe_circuits(states: Mapping[str, BreakerState]) -> None:
    """The circuit of each troubled destination, as a round read them; a destination no
    longer troubled is closed again. Gauges are set only when something changed."""
    if states == _last_states:
        return
    counted = Tally(states.values())
    for state in (BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.DISABLED):
        DESTINATIONS.labels(state=state.value).set(counted.get(state, 0))
    levels: dict[str, int] = {}
    for destination, state in states.items():
        label = hosts(destination)
        levels[label] = max(levels.get(label, 0), CIRCUIT_LEVELS[state])
    for label in _levels.keys() - levels.keys():
        CIRCUIT.labels(host=label).set(0)
    for label, level in levels.items():
        if _levels.get(label) != level:
            CIRCUIT.labels(host=label).set(level)
    _levels.clear()
    _levels.update(levels)
    _last_states.clear()
    _last_states.update(states)
