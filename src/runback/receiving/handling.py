"""Running the user's handlers for received events: at least once, outside the request.

An event's handlers run together; if one raises, the event is retried with backoff (its
handlers run again: they must be idempotent), and after the last attempt it is ``failed``,
with the error kept, until ``runback inbox replay`` asks for another round.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import orjson

from runback import logs
from runback.core.clock import Clock
from runback.core.inbox import HandlerState, InboxEvent, next_handler_attempt
from runback.core.retry import Random
from runback.errors import ConfigError
from runback.receiver.handlers import Handler, HandlerRegistry, ReceivedEvent
from runback.store import Store
from runback.work_loop import WorkLoop

log = logging.getLogger(__name__)

_LEASE = timedelta(minutes=10)


async def _call(handler: Handler, event: ReceivedEvent) -> None:
    """Await an async handler; run any other in a thread, awaiting what it may return."""
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - an object with async __call__
    ):
        await handler(event)  # type: ignore[misc]
        return
    result = await asyncio.to_thread(handler, event)
    if inspect.isawaitable(result):
        await result


def load_handlers(registry: HandlerRegistry, modules: Sequence[str]) -> list[str]:
    """Add the handlers of each module (its ``handlers`` registry or ``register(registry)``)."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import handlers module {name}: {exc}") from None
        found = getattr(module, "handlers", None)
        if isinstance(found, HandlerRegistry):
            registry.include(found)
        elif callable(getattr(module, "register", None)):
            module.register(registry)
        else:
            raise ConfigError(
                f"handlers module {name} has neither a HandlerRegistry named 'handlers' nor "
                "a register(registry) function"
            )
    return list(modules)


class HandlerRunner(WorkLoop):
    """Runs due events' handlers, at most ``capacity`` events at once."""

    def __init__(
        self,
        *,
        store: Store,
        handlers: HandlerRegistry,
        clock: Clock,
        random: Random,
        worker_id: str,
        capacity: int,
        poll_interval: float,
    ) -> None:
        super().__init__(capacity=capacity, poll_interval=poll_interval)
        self._store = store
        self._handlers = handlers
        self._clock = clock
        self._random = random
        self._worker_id = worker_id
        self._next_upkeep = datetime.min.replace(tzinfo=UTC)

    async def handle_due(self) -> int:
        """Run every due event's handlers and wait for them (for tests and tools)."""
        ran = 0
        while started := await self._start_due():
            ran += started
            await self._settle()
        return ran

    async def _round(self) -> float:
        now = self._clock.now()
        if now >= self._next_upkeep:  # take back the events of receivers that died
            self._next_upkeep = now + _LEASE / 3
            await self._store.inbox.release_claims(now=now, expired_only=True)
        await self._start_due()
        return self._poll_interval

    async def _start_due(self) -> int:
        if self.room <= 0:
            return 0
        now = self._clock.now()
        claimed = await self._store.inbox.claim_handlers(
            worker=self._worker_id, limit=self.room, now=now, lease_until=now + _LEASE
        )
        for event, body in claimed:
            self._spawn(self._handle(event, body), name=f"handlers of {event.id}")
        return len(claimed)

    async def _handle(self, event: InboxEvent, body: bytes) -> None:
        attempt = event.handler_attempts + 1
        logs.start(event_id=event.id, run_id=event.run_id, attempt=attempt)
        received = ReceivedEvent(
            id=event.id,
            source=event.source,
            event=event.event,
            dedupe_key=event.dedupe_key,
            payload=orjson.loads(body),
            body=body,
            attempt=attempt,
        )
        try:
            for handler in self._handlers.for_event(event.event):
                await _call(handler, received)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("a handler of event %s failed (attempt %d): %s", event.id, attempt, error)
            due = next_handler_attempt(attempt, now=self._clock.now(), random=self._random)
            state = HandlerState.PENDING if due is not None else HandlerState.FAILED
            await self._store.inbox.finish_handler(
                event.id, state=state, attempts=attempt, error=error, next_at=due
            )
            return
        await self._store.inbox.finish_handler(
            event.id, state=HandlerState.SUCCEEDED, attempts=attempt, error=None, next_at=None
        )
