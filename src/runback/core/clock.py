"""Time as a parameter: the clock seam.

Logic takes ``now`` as an argument; adapters ask a ``Clock``. Tests use
``runback.testing.ManualClock`` instead of patching time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def to_utc(moment: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def isoformat(moment: datetime | None) -> str | None:
    """The contract's datetime text: ``datetime.isoformat()`` in UTC, so ``+00:00``."""
    return None if moment is None else to_utc(moment).isoformat()


def whole_ms(start: datetime, end: datetime) -> int:
    """Whole milliseconds from ``start`` to ``end`` (floor)."""
    return (end - start) // timedelta(milliseconds=1)
