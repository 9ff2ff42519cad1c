"""Ordered delivery, as the serving half sees it: which URLs are ordered (a per-process
cache, for the in-process hand-off), switching them on and off, and releasing a stuck head.

The store's flag on each delivery, set at its insert, is what claims go by; this cache only
keeps the outbox from handing an ordered delivery to this process's dispatcher (which would
send it without a claim, out of turn). It is read again at most every ``refresh`` seconds,
and at once after this process switches a URL: so for up to ``refresh`` seconds after
another process switches ordering on, a callback to that URL ended here may still be handed
over and sent beside the one before it (documented in ``docs/ordered-delivery.md``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from runback import metrics
from runback.core.clock import Clock
from runback.core.delivery import FailureReason
from runback.core.records import Delivery, OrderedCallback
from runback.core.urls import loggable
from runback.store import OrderedUrl, Store

log = logging.getLogger(__name__)

REFRESH_SECONDS = 1.0
"""How stale this process's view of the ordered URLs may be, at most."""


class Ordering:
    """Ordered callback URLs of every organization."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        on_delivery: Callable[[], None] = lambda: None,
        refresh: float = REFRESH_SECONDS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_delivery = on_delivery
        self._refresh = refresh
        self._known: set[tuple[UUID, str]] = set()
        self._read_at: datetime | None = None
        self._reading = asyncio.Lock()

    async def is_ordered(self, organization_id: UUID, callback_url: str) -> bool:
        """Whether the organization's callbacks to ``callback_url`` are ordered, as this
        process last read it (no older than ``refresh`` seconds)."""
        if self._stale():
            async with self._reading:  # one read for everyone asking meanwhile
                if self._stale():
                    read_at = self._clock.now()
                    self._known = await self._store.ordering.all()
                    self._read_at = read_at
        return (organization_id, callback_url) in self._known

    def _stale(self) -> bool:
        return (
            self._read_at is None
            or (self._clock.now() - self._read_at).total_seconds() >= self._refresh
        )

    def forget(self) -> None:
        """Read the ordered URLs again at the next question."""
        self._read_at = None

    async def switch_on(
        self, organization_id: UUID, callback_url: str
    ) -> tuple[OrderedCallback, bool]:
        """Order the organization's callbacks to ``callback_url`` made from now on;
        answers the row and whether ordering was off before."""
        made = await self._store.ordering.switch_on(
            organization_id, callback_url, now=self._clock.now()
        )
        self.forget()
        return made

    async def switch_off(self, organization_id: UUID, callback_url: str) -> bool:
        """Stop ordering callbacks to ``callback_url`` (those in flight go out side by side
        at once); answers whether it was on."""
        removed = await self._store.ordering.switch_off(
            organization_id, callback_url, now=self._clock.now()
        )
        self.forget()
        self._on_delivery()  # what waited its turn may be due now
        return removed

    async def listing(self, organization_id: UUID) -> list[OrderedUrl]:
        """The organization's ordered URLs, each with its head."""
        return await self._store.ordering.listing(organization_id)

    async def release(self, organization_id: UUID, callback_url: str) -> Delivery:
        """Give up the head of an ordered URL: it fails with ``released``, and the next
        one goes."""
        released = await self._store.ordering.release_head(
            organization_id, callback_url, now=self._clock.now()
        )
        log.warning(
            "ordered callback released: delivery %s (run %s) to %s failed by an operator "
            "after %d attempts; the next one goes",
            released.id,
            released.run_id,
            loggable(callback_url),
            released.attempt_count,
        )
        metrics.delivery_failed(FailureReason.RELEASED)
        self._on_delivery()
        return released
