"""Destinations: the receivers callbacks go to, and the circuit breaker in front of each.

A destination is a callback URL's ``host:port``. One that is *dead* must not hold up the
others, nor burn its own deliveries' attempts while it is down; one that is merely *flaky*
(a few ``500`` during a deploy) must keep every delivery on its own retry ladder:

* its circuit *opens* only once it has failed ``threshold`` times in a row **and** has had
  no success for ``window``, longer than the fast rungs of the ladder (250 ms ... 8 s);
* while open, its pending deliveries are held, attempts unspent, and nothing is sent for
  ``first_open`` (twice as long after each failed probe, up to ``max_open``), but never
  past the earliest time a held delivery's own ladder would try it (``probe_time``): the
  breaker saves attempts, it never makes a callback later than its ladder says;
* then it is *half-open*: one delivery probes it; a success closes the circuit and
  releases the rest at once, a failure opens it again. Failures of attempts that were
  already under way when it opened count, but do not lengthen the wait;
* failing without a break for ``disable_after``, it is *disabled*: nothing is sent until an
  operator enables it again. Its deliveries stay recorded and can be replayed.

Pure functions over ``Destination`` records; the store applies them under a row lock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    DISABLED = "disabled"


class Transition(StrEnum):
    """A change operators are told about (log, metrics, operational callback)."""

    DISABLED = "destination.disabled"
    RECOVERED = "destination.recovered"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    threshold: int = 5
    window: timedelta = timedelta(seconds=30)
    first_open: timedelta = timedelta(seconds=30)
    max_open: timedelta = timedelta(minutes=10)
    disable_after: timedelta = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Destination:
    host: str
    consecutive_failures: int = 0
    trips: int = 0
    """How many times in a row the circuit opened: the next open period doubles with it."""
    failing_since: datetime | None = None
    open_until: datetime | None = None
    disabled_at: datetime | None = None

    @property
    def tripped(self) -> bool:
        """Whether its circuit opened (or it was disabled) since its last success."""
        return self.trips > 0 or self.disabled_at is not None

    def state(self, now: datetime, policy: BreakerPolicy) -> BreakerState:
        if self.disabled_at is not None:
            return BreakerState.DISABLED
        if self.open_until is not None and self.open_until > now:
            return BreakerState.OPEN
        if self.trips > 0:  # it opened and has not succeeded since
            return BreakerState.HALF_OPEN
        return BreakerState.CLOSED

    def allowance(self, now: datetime, policy: BreakerPolicy, *, limit: int) -> int:
        """How many attempts may be under way to this destination at once."""
        state = self.state(now, policy)
        if state in (BreakerState.DISABLED, BreakerState.OPEN):
            return 0
        return 1 if state is BreakerState.HALF_OPEN else limit


def probe_time(open_until: datetime, earliest_held: datetime | None) -> datetime:
    """When an open circuit half-opens: at the end of its open period, or sooner when a
    held delivery's own ladder would try it before then."""
    return open_until if earliest_held is None else min(open_until, earliest_held)


def destination_of(url: str) -> str:
    """A URL's destination: its lowercase ``host:port`` (the scheme's port when implied)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    return f"{host}:{port}"


def after_outcome(
    destination: Destination, *, succeeded: bool, now: datetime, policy: BreakerPolicy
) -> tuple[Destination, Transition | None]:
    """The destination after one attempt to it, and the transition to report, if any."""
    if succeeded:
        transition = Transition.RECOVERED if destination.tripped else None
        return Destination(destination.host), transition
    failures = destination.consecutive_failures + 1
    since = destination.failing_since or now
    opened, trips = destination.open_until, destination.trips
    state = destination.state(now, policy)
    if state is BreakerState.HALF_OPEN or (
        state is BreakerState.CLOSED
        and failures >= policy.threshold
        and now - since >= policy.window
    ):
        trips += 1
        opened = now + min(policy.first_open * 2 ** min(trips - 1, 16), policy.max_open)
    disabled = destination.disabled_at
    transition = None
    if disabled is None and now - since >= policy.disable_after:
        disabled, transition = now, Transition.DISABLED
    return (
        replace(
            destination,
            consecutive_failures=failures,
            trips=trips,
            failing_since=since,
            open_until=opened,
            disabled_at=disabled,
        ),
        transition,
    )
