"""Expected runs: the runs a receiver waits for a callback about, and the reconciler's rules.

The sender's caller tells the receiver which run to expect (``POST /v1/expected``). The
expectation *waits* until the run's end arrives as a callback (*arrived*), or, once its
deadline passed without one, until the reconciler polled the run from the sender and found
it ended: it then records the end as if the callback had come (*reconciled*). A run still
going is polled again later, the delays growing (``RECONCILE_POLL``); past the give-up
horizon the expectation ends *gave_up*. A callback that came before its expectation is
matched the moment the expectation is made.

The body the reconciler records is built by ``runback.core.payload.run_end_body`` from the
run's GET view, so it has the callback's dedupe key: a real callback coming later is a
duplicate of it, not a second event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final
from uuid import UUID

from runback.core.events import DEFAULT_EVENTS
from runback.core.retry import Random, RetryPolicy, doubling
from runback.core.states import CALLBACK_EVENTS, RunStatus


class ExpectedState(StrEnum):
    WAITING = "waiting"  # no run's end yet: polled once its deadline passed
    ARRIVED = "arrived"  # its callback came
    RECONCILED = "reconciled"  # polled and recorded as if its callback had come
    GAVE_UP = "gave_up"  # polled until the give-up horizon without seeing it end

    @property
    def is_final(self) -> bool:
        return self is not ExpectedState.WAITING


END_EVENTS: Final = frozenset(CALLBACK_EVENTS.values())
"""The events that end a run: one of them arriving settles its expectation."""

DEFAULT_RECONCILE_AFTER: Final = timedelta(minutes=10)
DEFAULT_GIVE_UP_AFTER: Final = timedelta(days=7)
RECONCILE_POLL: Final = RetryPolicy(doubling(30.0, cap=3600.0, count=8), repeat_last=True)
"""Between polls of a run not yet ended: 30 s doubling to an hour, then hourly."""


@dataclass(frozen=True, slots=True)
class ExpectedRun:
    """One run a receiver expects the end of, from one source."""

    source: str
    run_id: str
    state: ExpectedState
    expected_by: datetime
    """The deadline: without a callback by then, the run is polled."""
    next_poll_at: datetime | None
    attempts: int
    """Polls made so far."""
    last_error: str | None
    event_id: UUID | None
    """The event that settled it (arrived or reconciled)."""
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None


def next_poll(
    attempts: int,
    *,
    now: datetime,
    expected_by: datetime,
    give_up_after: timedelta,
    random: Random,
    policy: RetryPolicy = RECONCILE_POLL,
) -> datetime | None:
    """When to poll again after ``attempts`` polls that did not see the run end; None once
    that would be past the give-up horizon (counted from the deadline)."""
    delay = policy.delay_after(max(attempts, 1), random)
    if delay is None:
        return None
    due = now + timedelta(seconds=delay)
    return None if due > expected_by + give_up_after else due


def end_sequence(status: RunStatus, events: tuple[str, ...], event_sequence: int) -> int | None:
    """The ``sequence`` a run's end callback carries, from the run's view: only a run that
    asked for more than the default events numbers them."""
    if status not in CALLBACK_EVENTS:
        raise ValueError(f"a run in status {status} has not ended")
    return None if tuple(events) == DEFAULT_EVENTS else event_sequence
