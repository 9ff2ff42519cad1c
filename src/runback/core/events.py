"""A run's events while it works: which a run asks for, and what each one says.

A run that asks for events (``events`` on submit, like Replicate's ``webhook_events_filter``)
makes ``run.started``, ``run.output`` (a file saved) and ``run.logs`` (lines written, or
progress reported) as they happen, then its terminal event. Each is a full snapshot of the
run, so a receiver that drops a stale one loses nothing, and each carries a ``sequence``
higher than every earlier event of its run. A run that asks for none makes only its terminal
event, in today's bytes (no ``sequence``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from uuid import UUID, uuid5

from runback.core.ids import webhook_id
from runback.core.records import Run


class EventKind(StrEnum):
    """What a run may ask to be told about (``events`` on submit)."""

    START = "start"
    OUTPUT = "output"
    LOGS = "logs"
    COMPLETED = "completed"
    """Any terminal event: ``run.completed``, ``run.failed``, ``run.cancelled``..."""


DEFAULT_EVENTS: Final = (EventKind.COMPLETED,)

STARTED: Final = "run.started"
OUTPUT: Final = "run.output"
LOGS: Final = "run.logs"

EVENT_NAMES: Final[dict[EventKind, str]] = {
    EventKind.START: STARTED,
    EventKind.OUTPUT: OUTPUT,
    EventKind.LOGS: LOGS,
}

EVENT_KEY_PREFIX: Final = "event:"
"""The ``event_key`` of a delivery of one of a run's intermediate events: ``event:<sequence>``."""


def chosen_events(values: Iterable[str]) -> tuple[EventKind, ...] | None:
    """The events a run asked for, in a fixed order; None for the default (``completed``
    alone), which keeps today's callback. ``ValueError`` names an unknown or missing one."""
    chosen: set[EventKind] = set()
    for value in values:
        try:
            chosen.add(EventKind(value))
        except ValueError:
            known = ", ".join(kind.value for kind in EventKind)
            raise ValueError(f"'{value}' is not an event; choose among {known}") from None
    if not chosen:
        raise ValueError("choose at least one event, or leave the field out for 'completed'")
    ordered = tuple(kind for kind in EventKind if kind in chosen)
    return None if ordered == DEFAULT_EVENTS else ordered


def events_column(events: tuple[str, ...] | None) -> str | None:
    """How a run's chosen events are stored: comma-separated, None for the default."""
    return None if events is None else ",".join(events)


def events_of(column: str | None) -> tuple[EventKind, ...] | None:
    """A run's chosen events as stored (``events_column``)."""
    return None if column is None else tuple(EventKind(value) for value in column.split(","))


def asks(run: Run, kind: EventKind) -> bool:
    """Whether ``run`` asked for callbacks of ``kind``."""
    return kind is EventKind.COMPLETED if run.events is None else kind in run.events


def event_key(sequence: int) -> str:
    return f"{EVENT_KEY_PREFIX}{sequence}"


def sequence_of(key: str) -> int | None:
    """The sequence an ``event_key`` names; None for a run's end or a result."""
    if not key.startswith(EVENT_KEY_PREFIX):
        return None
    return int(key.removeprefix(EVENT_KEY_PREFIX))


def event_webhook_id(run_id: UUID, sequence: int) -> str:
    """The ``webhook-id`` of one intermediate event: its own, the same for every retry and
    redelivery of it."""
    return webhook_id(uuid5(run_id, str(sequence)))


@dataclass(frozen=True, slots=True)
class Progress:
    """What a model said of how far it is (``ctx.progress``)."""

    fraction: float
    message: str | None

    def to_json(self) -> dict[str, object]:
        return {"fraction": self.fraction, "message": self.message}


def check_progress(fraction: float) -> float:
    """``fraction`` if it lies in [0, 1]; ``ValueError`` otherwise (a model's mistake)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"progress is a fraction from 0 to 1, not {fraction!r}")
    return float(fraction)


class LogTail:
    """A run's log as events show it: the last ``limit`` characters, cut at a line start,
    so snapshots stay bounded however much a model writes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lines: deque[str] = deque()
        self._size = 0
        self.dropped = 0
        """Lines that fell out of the tail."""

    def add(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            line = line[-self._limit :]
            self._lines.append(line)
            self._size += len(line) + 1
            while self._size - 1 > self._limit and len(self._lines) > 1:  # no last newline
                self._size -= len(self._lines.popleft()) + 1
                self.dropped += 1

    def text(self) -> str | None:
        return "\n".join(self._lines) if self._lines else None
