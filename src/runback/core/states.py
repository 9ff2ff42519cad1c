"""Run and delivery states, and the transitions allowed between them.

The tables are the rules: the store declares each of its status writes as a move that these
tables must allow (``runback.store.moves``), and its guarded updates (``WHERE status = ...
AND claimed_by = ...``) enforce them against concurrent writers.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final, TypeVar

from runback.errors import InvalidTransitionError

S = TypeVar("S", bound=StrEnum)


class RunStatus(StrEnum):
    """A run's ``status_code``: ``queued`` → ``dispatching`` → ``running`` → terminal."""

    QUEUED = "queued"
    DISPATCHING = "dispatching"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    PARTIAL_SUCCEEDED = "partial_succeeded"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_RUN_STATUSES


TERMINAL_RUN_STATUSES: Final = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.PARTIAL_SUCCEEDED}
)

RUN_TRANSITIONS: Final[dict[RunStatus, frozenset[RunStatus]]] = {
    # claimed by an executor, or cancelled before anyone took it
    RunStatus.QUEUED: frozenset({RunStatus.DISPATCHING, RunStatus.CANCELED}),
    # handed back (shutdown, crash before the model started) or started
    RunStatus.DISPATCHING: frozenset(
        {RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.CANCELED, RunStatus.FAILED}
    ),
    # QUEUED again only by crash recovery, while executions remain
    RunStatus.RUNNING: frozenset({RunStatus.QUEUED} | TERMINAL_RUN_STATUSES),
}

# Events in UK spelling, statuses in US spelling: both literals are part of the contract.
CALLBACK_EVENTS: Final[dict[RunStatus, str]] = {
    RunStatus.SUCCEEDED: "run.completed",
    RunStatus.FAILED: "run.failed",
    RunStatus.CANCELED: "run.cancelled",
    RunStatus.PARTIAL_SUCCEEDED: "run.partial_succeeded",
}


class BatchStatus(StrEnum):
    """A batch's ``status_code``: ``queued`` until an item starts, ``running`` until every
    item has ended, then one terminal status from its items' outcomes."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    """Every item succeeded."""
    PARTIAL_SUCCEEDED = "partial_succeeded"
    """Some items succeeded."""
    FAILED = "failed"
    """None succeeded."""
    CANCELED = "canceled"
    """Every item was cancelled."""

    @property
    def is_terminal(self) -> bool:
        return self not in (BatchStatus.QUEUED, BatchStatus.RUNNING)


BATCH_EVENTS: Final[dict[BatchStatus, str]] = {
    BatchStatus.SUCCEEDED: "batch.succeeded",
    BatchStatus.PARTIAL_SUCCEEDED: "batch.partial_succeeded",
    BatchStatus.FAILED: "batch.failed",
    # The contract has no batch.cancelled: a batch with nothing succeeded has failed.
    BatchStatus.CANCELED: "batch.failed",
}


class DeliveryStatus(StrEnum):
    """A delivery's ``status_code``."""

    PENDING = "pending"  # waiting for its next_attempt_at
    DELIVERING = "delivering"  # claimed: an attempt is in flight
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)


IN_FLIGHT_DELIVERY_STATUSES: Final = frozenset({DeliveryStatus.PENDING, DeliveryStatus.DELIVERING})

DELIVERY_TRANSITIONS: Final[dict[DeliveryStatus, frozenset[DeliveryStatus]]] = {
    DeliveryStatus.PENDING: frozenset({DeliveryStatus.DELIVERING, DeliveryStatus.FAILED}),
    DeliveryStatus.DELIVERING: frozenset(
        {DeliveryStatus.PENDING, DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED}
    ),
}


def check_transition(
    transitions: Mapping[S, frozenset[S]], source: S, target: S, noun: str
) -> None:
    """Raise ``InvalidTransitionError`` unless ``transitions`` lets a ``noun`` go from
    ``source`` to ``target``."""
    if target not in transitions.get(source, frozenset()):
        raise InvalidTransitionError(f"a {noun} cannot go from {source} to {target}")


def check_run_transition(source: RunStatus, target: RunStatus) -> None:
    """Raise ``InvalidTransitionError`` unless a run may go from ``source`` to ``target``."""
    check_transition(RUN_TRANSITIONS, source, target, "run")


def check_delivery_transition(source: DeliveryStatus, target: DeliveryStatus) -> None:
    """Raise ``InvalidTransitionError`` unless a delivery may go from ``source`` to ``target``."""
    check_transition(DELIVERY_TRANSITIONS, source, target, "delivery")
