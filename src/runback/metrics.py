"""Prometheus metrics of the process, served at ``/metrics`` by every role.

Counters are process-wide (Prometheus sums them across processes); the names say what is
counted, the labels by what.
"""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from runback.core.delivery import FailureReason
from runback.core.destinations import BreakerState, Transition

ATTEMPTS = Counter("runback_delivery_attempts_total", "Callback attempts, by outcome.", ["outcome"])
FAILED = Counter(
    "runback_deliveries_failed_total", "Deliveries that ended failed, by reason.", ["reason"]
)
TRANSITIONS = Counter(
    "runback_destination_transitions_total",
    "Destinations disabled and recovered.",
    ["transition"],
)
DESTINATIONS = Gauge("runback_destinations", "Troubled destinations, by circuit state.", ["state"])


def attempt(reason: FailureReason | None) -> None:
    ATTEMPTS.labels(outcome="succeeded" if reason is None else reason.value).inc()


def attempt_refused() -> None:
    """An attempt whose worker had lost the delivery's claim: logged, not counted."""
    ATTEMPTS.labels(outcome="refused").inc()


def delivery_failed(reason: FailureReason | None) -> None:
    FAILED.labels(reason=reason.value if reason else "unknown").inc()


def destination_transition(transition: Transition) -> None:
    TRANSITIONS.labels(transition=transition.value).inc()


def observe_destinations(states: Tally[BreakerState]) -> None:
    for state in (BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.DISABLED):
        DESTINATIONS.labels(state=state.value).set(states.get(state, 0))


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
