"""The gate in front of every destination: how many attempts may go to it at once.

A healthy destination takes up to ``per_destination`` attempts at a time, so one slow or
blackholed receiver holds at most that many of the dispatcher's slots and never the others'.
A failing one takes what its circuit breaker allows: none while open or disabled, one probe
while half-open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from runback.core.destinations import BreakerPolicy, BreakerState, Destination
from runback.core.records import Delivery


class DestinationGate:
    """Counts attempts in flight per destination and admits claimed deliveries."""

    def __init__(self, *, per_destination: int, breaker: BreakerPolicy) -> None:
        self.per_destination = per_destination
        self.breaker = breaker
        self._in_flight: Counter[str] = Counter()
        self._troubled: dict[str, Destination] = {}
        self._now: datetime | None = None

    def update(self, troubled: dict[str, Destination], *, now: datetime) -> None:
        """Take the breakers' state as read at the start of a round."""
        self._troubled, self._now = troubled, now

    def _allowance(self, host: str) -> int:
        found = self._troubled.get(host)
        if found is None or self._now is None:
            return self.per_destination
        return found.allowance(self._now, self.breaker, limit=self.per_destination)

    def room(self, host: str) -> int:
        """How many more attempts ``host`` may take now."""
        return max(self._allowance(host) - self._in_flight[host], 0)

    def open_to(self, host: str) -> bool:
        """Whether ``host`` may take an attempt now with nothing to probe: its circuit is
        closed (it has no failures on record) and it has room."""
        return host not in self._troubled and self._in_flight[host] < self.per_destination

    def closed(self) -> set[str]:
        """Destinations that may take no more attempts now: skip them when claiming."""
        hosts = set(self._troubled) | set(self._in_flight)
        return {host for host in hosts if self.room(host) == 0}

    def reopens_at(self) -> datetime | None:
        """When the first open circuit half-opens (its probe is due then), if any is open."""
        now = self._now
        ends = [
            d.open_until
            for d in self._troubled.values()
            if d.open_until is not None and now is not None and d.open_until > now
        ]
        return min(ends, default=None)

    def admit(self, claimed: Iterable[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
        """Split claimed deliveries into those to send now (counted in flight) and those
        beyond their destination's allowance (to hand back)."""
        admitted: list[Delivery] = []
        refused: list[Delivery] = []
        for delivery in claimed:
            if self._in_flight[delivery.destination] < self._allowance(delivery.destination):
                self._in_flight[delivery.destination] += 1
                admitted.append(delivery)
            else:
                refused.append(delivery)
        return admitted, refused

    def done(self, destination: str) -> None:
        """An attempt to ``destination`` ended."""
        self._in_flight[destination] -= 1
        if self._in_flight[destination] <= 0:
            del self._in_flight[destination]

    def circuits(self) -> dict[str, BreakerState]:
        """The circuit state of each troubled destination (for metrics)."""
        now = self._now
        if now is None or not self._troubled:
            return {}
        return {host: d.state(now, self.breaker) for host, d in self._troubled.items()}
