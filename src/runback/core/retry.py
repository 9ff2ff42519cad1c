"""Retry schedules as data.

A ``RetryPolicy`` is the list of delays between attempts plus a jitter fraction: attempt
``n + 1`` is due ``delays[n - 1] * (1 + U[0, jitter])`` after attempt ``n`` failed, and there
are ``len(delays) + 1`` attempts in all. The policy is frozen into each delivery when it is
created, so changing the default never reschedules callbacks already underway.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from runback.errors import ConfigError

Random = Callable[[], float]
"""A source of floats uniform in [0, 1): ``random.random`` or a seeded twin."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays (seconds) between consecutive attempts, and the jitter added to each."""

    delays: tuple[float, ...]
    jitter: float = 0.2
    repeat_last: bool = False
    """Keep retrying at the last delay past the list (something else ends it, such as the
    expiry of the URL a copy reads)."""

    def __post_init__(self) -> None:
        if any(delay < 0 for delay in self.delays):
            raise ConfigError("retry delays must not be negative")
        if self.repeat_last and not self.delays:
            raise ConfigError("a retry policy that repeats its last delay needs one")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("retry jitter must be a fraction between 0 and 1")

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    @property
    def window(self) -> float:
        """Seconds from the first attempt to the last, at most (with the largest jitter)."""
        return sum(self.delays) * (1 + self.jitter)

    def delay_after(self, attempt_number: int, random: Random) -> float | None:
        """Seconds to wait after failed attempt ``attempt_number`` (1-based); None: give up."""
        if attempt_number >= self.max_attempts and not self.repeat_last:
            return None
        base = self.delays[min(attempt_number, len(self.delays)) - 1]
        return base * (1 + self.jitter * random())

    def to_json(self) -> dict[str, Any]:
        return {"delays": list(self.delays), "jitter": self.jitter}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetryPolicy:
        return cls(delays=tuple(float(d) for d in data["delays"]), jitter=float(data["jitter"]))

    @staticmethod
    @lru_cache(maxsize=64)
    def parse(text: str | bytes) -> RetryPolicy:
        """The policy stored as JSON ``text``; cached, as every delivery stores one of a few
        (the records are frozen, so they are shared safely)."""
        return RetryPolicy.from_json(json.loads(text))


def doubling(first: float, *, cap: float, count: int) -> tuple[float, ...]:
    """``count`` delays starting at ``first``, each twice the last, none above ``cap``."""
    return tuple(min(first * 2**n, cap) for n in range(count))


_MINUTE: Final = 60.0
_HOUR: Final = 3600.0
_LONG_TAIL: Final = (
    _MINUTE,
    5 * _MINUTE,
    30 * _MINUTE,
    2 * _HOUR,
    6 * _HOUR,
    12 * _HOUR,
    24 * _HOUR,
)

RUNWARE_LADDER: Final = doubling(0.25, cap=8.0, count=7)
"""Runware's published schedule: 250 ms, 500 ms, 1 s, 2 s, 4 s, 8 s, 8 s."""

DEFAULT_RETRY_POLICY: Final = RetryPolicy(
    # The Runware ladder covers the first 8 attempts (a receiver restarting or a blip); the
    # long tail keeps trying for about 45 h in all, so a receiver down for a whole day
    # still gets its results.
    delays=(*RUNWARE_LADDER, *_LONG_TAIL),
    jitter=0.2,
)
