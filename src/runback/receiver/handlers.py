"""Handlers: your functions, run for received events after they are safely stored.

```python
handlers = HandlerRegistry()

@handlers.on("run.completed")
async def store_result(event: ReceivedEvent) -> None:
    ...  # runs at least once per event: make it idempotent (key on event.dedupe_key)
```

A handler runs at least once per event (not per arrival: duplicates are not handled again),
outside the request, and is retried with backoff when it raises. Plain ``def`` handlers run
in a worker thread. ``"*"`` matches every event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

ANY_EVENT = "*"


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """A received callback, as a handler sees it."""

    id: UUID
    source: str
    event: str | None
    dedupe_key: str
    payload: Any
    """The parsed JSON body of its latest arrival."""
    body: bytes
    attempt: int
    """1 the first time this handler runs for the event; more on retries."""


Handler = Callable[[ReceivedEvent], Awaitable[None] | None]


class HandlerRegistry:
    """Handlers by event type."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def on(self, event: str = ANY_EVENT) -> Callable[[Handler], Handler]:
        """Register the decorated function for events of type ``event`` (``"*"``: all)."""

        def register(handler: Handler) -> Handler:
            self._handlers.setdefault(event, []).append(handler)
            return handler

        return register

    def include(self, other: HandlerRegistry) -> None:
        for event, handlers in other._handlers.items():
            self._handlers.setdefault(event, []).extend(handlers)

    def for_event(self, event: str | None) -> list[Handler]:
        """The handlers of an event type, the specific ones first."""
        specific = self._handlers.get(event, []) if event is not None else []
        return [*specific, *self._handlers.get(ANY_EVENT, [])]

    def __bool__(self) -> bool:
        return any(self._handlers.values())
